"""Running a real OWL 2 DL reasoner (HermiT, through owlready2 on the machine's Java) on the ontology.

owlready2 reads RDF/XML or N-Triples, not Turtle, and would try to download ``owl:imports``; the merged
graph is therefore written as RDF/XML without its import statements (every module is already merged).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import rdflib
from rdflib.namespace import OWL

from .errors import OntologyError

__all__ = ["ReasonerResult", "run_hermit"]


@dataclass(frozen=True)
class ReasonerResult:
    consistent: bool
    unsatisfiable: tuple[str, ...]
    message: str


def run_hermit(graph: rdflib.Graph) -> ReasonerResult:
    """Classify ``graph`` with HermiT; report consistency and the unsatisfiable classes."""
    if shutil.which("java") is None:
        raise OntologyError(
            "the HermiT reasoner needs Java on PATH (install a JRE, e.g. openjdk-17-jre-headless)"
        )
    import owlready2  # imported late: it is slow to import and only the reasoner needs it

    merged = rdflib.Graph()
    for triple in graph:
        if triple[1] != OWL.imports:
            merged.add(triple)
    with tempfile.TemporaryDirectory(prefix="scipion-kg-reasoner-") as folder:
        rdf_xml = Path(folder) / "ontology.owl"
        merged.serialize(rdf_xml, format="xml")
        world = owlready2.World()
        world.get_ontology(rdf_xml.as_uri()).load()
        try:
            with world.get_ontology("http://scipion-kg.invalid/inferences#"):
                owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
        except owlready2.OwlReadyInconsistentOntologyError as error:
            return ReasonerResult(False, (), f"HermiT: the ontology is inconsistent ({error})")
        unsatisfiable = tuple(
            sorted(
                str(getattr(cls, "iri", cls))
                for cls in world.inconsistent_classes()
                if getattr(cls, "iri", "") != str(OWL.Nothing)
            )
        )
        world.close()
    message = (
        "HermiT: consistent, no unsatisfiable class"
        if not unsatisfiable
        else f"HermiT: {len(unsatisfiable)} unsatisfiable classes: {', '.join(unsatisfiable)}"
    )
    return ReasonerResult(True, unsatisfiable, message)
