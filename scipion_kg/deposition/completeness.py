"""What a deposition still lacks before EMDB takes it, in plain words.

The deposition becomes a small RDF graph (one node per category row, one property per item) checked by
pySHACL against ``ontology/shapes/deposition.ttl``; the shapes say which items EMDB's XML schema and
OneDep require of a single-particle entry, with labels and hints. A category with no row at all is
reported as every required item of that category.

    for missing in missing_items(deposition):
        print(missing.label, f"_{missing.category}.{missing.item}", missing.why, missing.hint)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import rdflib
from pyshacl import validate
from rdflib.namespace import RDF, SH

from ..errors import DepositionError
from ..vocabulary import ontology_dir
from .model import Deposition

__all__ = ["SHAPES_NAMESPACE", "MissingItem", "deposition_graph", "missing_items", "shapes_path"]

SHAPES_NAMESPACE = rdflib.Namespace("https://w3id.org/scipion-kg/shapes#")
ENTRY = SHAPES_NAMESPACE["deposition"]


@dataclass(frozen=True)
class MissingItem:
    """A required item with no value: ``row`` is the category row lacking it, None when no row has it."""

    category: str
    item: str
    label: str
    why: str  # "EMDB XML schema" or "OneDep"
    hint: str
    row: int | None = None


@dataclass(frozen=True)
class _Requirement:
    category: str
    item: str
    label: str
    why: str
    hint: str
    order: int


def shapes_path() -> Path:
    return ontology_dir() / "shapes" / "deposition.ttl"


@cache
def _shapes(path: str) -> rdflib.Graph:
    try:
        return rdflib.Graph().parse(path, format="turtle")
    except OSError as error:
        raise DepositionError(f"{path}: cannot read the deposition shapes: {error}") from error


def _text(shapes: rdflib.Graph, shape: rdflib.term.Node, predicate: rdflib.URIRef) -> str:
    value = shapes.value(shape, predicate)
    return str(value) if value is not None else ""


def _requirement(shapes: rdflib.Graph, shape: rdflib.term.Node) -> _Requirement | None:
    """The item a shape is about (its sh:path, or skgsh:item for node shapes), or None for other shapes."""
    declared = shapes.value(shape, SHAPES_NAMESPACE["item"])
    path = shapes.value(shape, SH.path)
    if declared is not None:
        name = str(declared)
    elif isinstance(path, rdflib.URIRef) and str(path).startswith(str(SHAPES_NAMESPACE)):
        name = str(path)[len(str(SHAPES_NAMESPACE)) :]
    else:
        return None
    if "." not in name:
        return None
    category, item = name.split(".", 1)
    order = shapes.value(shape, SH.order)
    return _Requirement(
        category,
        item,
        _text(shapes, shape, SH.name) or f"{category}.{item}",
        _text(shapes, shape, SHAPES_NAMESPACE["requiredBy"]),
        _text(shapes, shape, SHAPES_NAMESPACE["hint"]),
        int(order.toPython()) if isinstance(order, rdflib.Literal) else 10**6,
    )


def _row_requirements(shapes: rdflib.Graph, category: str) -> list[_Requirement]:
    """Every required item of a row of ``category``: its row shape's properties and item-level node shapes."""
    row_class = SHAPES_NAMESPACE[f"Deposition_{category}"]
    found: list[_Requirement] = []
    for shape in shapes.subjects(SH.targetClass, row_class):
        for candidate in [shape, *shapes.objects(shape, SH.property)]:
            requirement = _requirement(shapes, candidate)
            if requirement is not None and requirement.category == category:
                found.append(requirement)
    return found


def _row_node(category: str, index: int) -> rdflib.URIRef:
    return SHAPES_NAMESPACE[f"row/{category}/{index}"]


def deposition_graph(deposition: Deposition) -> rdflib.Graph:
    """The deposition as the data graph of the completeness shapes (empty strings count as missing)."""
    graph = rdflib.Graph()
    graph.add((ENTRY, RDF.type, SHAPES_NAMESPACE["Deposition"]))
    for category, rows in sorted(deposition.categories.items()):
        for index, row in enumerate(rows):
            node = _row_node(category, index)
            graph.add((node, RDF.type, SHAPES_NAMESPACE[f"Deposition_{category}"]))
            graph.add((ENTRY, SHAPES_NAMESPACE[f"has_{category}"], node))
            for item, found in row.items():
                if isinstance(found.value, str) and not found.value.strip():
                    continue
                graph.add((node, SHAPES_NAMESPACE[f"{category}.{item}"], rdflib.Literal(found.value)))
    return graph


def _row_of(focus: rdflib.term.Node) -> int | None:
    text = str(focus)
    prefix = str(SHAPES_NAMESPACE["row/"])
    return int(text.rsplit("/", 1)[1]) if text.startswith(prefix) else None


def missing_items(deposition: Deposition, shapes: Path | None = None) -> list[MissingItem]:
    """Every required item the deposition lacks, in the shapes' order (sh:order), then by row."""
    shapes_graph = _shapes(str(shapes or shapes_path()))
    _, report, _ = validate(
        deposition_graph(deposition), shacl_graph=shapes_graph, inference="none", advanced=False, debug=False
    )
    if not isinstance(report, rdflib.Graph):
        raise DepositionError("pySHACL returned no report graph for the deposition shapes")
    found: dict[tuple[str, str, str, int | None], tuple[int, MissingItem]] = {}

    def add(requirement: _Requirement, row: int | None) -> None:
        missing = MissingItem(
            requirement.category, requirement.item, requirement.label, requirement.why, requirement.hint, row
        )
        found[(missing.category, missing.item, missing.label, row)] = (requirement.order, missing)

    for result in report.subjects(RDF.type, SH.ValidationResult):
        shape = report.value(result, SH.sourceShape)
        focus = report.value(result, SH.focusNode)
        if shape is None or focus is None:
            continue
        requirement = _requirement(shapes_graph, shape)
        if requirement is not None:
            add(requirement, _row_of(focus))
            continue
        path = shapes_graph.value(shape, SH.path)
        link = str(SHAPES_NAMESPACE["has_"])
        if isinstance(path, rdflib.URIRef) and str(path).startswith(link):
            for each in _row_requirements(shapes_graph, str(path)[len(link) :]):
                add(each, None)
    ordered = sorted(found.values(), key=lambda pair: (pair[0], -1 if pair[1].row is None else pair[1].row))
    return [missing for _, missing in ordered]
