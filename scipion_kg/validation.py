"""Graph-level SHACL validation with pySHACL (bundles, sets, depositions: small graphs)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyshacl
import rdflib

from .errors import BundleError
from .vocabulary import ontology_dir

__all__ = ["ShaclReport", "shapes_graph", "validate_bundle_shacl", "validate_graph"]


@dataclass(frozen=True)
class ShaclReport:
    conforms: bool
    results: tuple[str, ...]
    text: str


@cache
def shapes_graph(name: str) -> rdflib.Graph:
    """The shapes of ``ontology/shapes/<name>.ttl``."""
    return rdflib.Graph().parse(ontology_dir() / "shapes" / f"{name}.ttl", format="turtle")


def validate_graph(data: rdflib.Graph, shapes: str) -> ShaclReport:
    conforms, report_graph, text = pyshacl.validate(
        data, shacl_graph=shapes_graph(shapes), inference="none", advanced=True, allow_warnings=True
    )
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    results = tuple(
        sorted(
            f"{report_graph.value(result, sh.focusNode)}: {report_graph.value(result, sh.resultMessage)}"
            for result in report_graph.subjects(rdflib.RDF.type, sh.ValidationResult)
        )
    )
    return ShaclReport(bool(conforms), results, str(text))


def validate_bundle_shacl(path: Path) -> ShaclReport:
    """Validate one bundle file against ``run-bundle`` shapes; an unreadable file raises BundleError."""
    try:
        data = rdflib.Graph().parse(path, format="turtle")
    except Exception as error:  # rdflib raises parser-specific types
        raise BundleError(f"{path}: not a valid Turtle bundle: {error}") from error
    return validate_graph(data, "run-bundle")
