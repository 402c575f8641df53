"""Keeping a copy of the ontology in the store, so SPARQL users can query labels and the class tree."""

from __future__ import annotations

import hashlib

import pyoxigraph as ox

from .graphs import graph_quads, remove_graph
from .namespaces import SKG, ledger_graph_iri
from .store import Store
from .terms import Lit
from .vocabulary import module_files, parse_modules

__all__ = ["ONTOLOGY_GRAPH", "sync_ontology_graph"]

ONTOLOGY_GRAPH = "https://w3id.org/scipion-kg/ontology"


def sync_ontology_graph(store: Store) -> bool:
    """Load the installed ontology into its graph unless the store already holds this version."""
    files = module_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    sha = digest.hexdigest()
    ledger = ledger_graph_iri()
    rows = store.select(
        f"SELECT ?sha WHERE {{ GRAPH <{ledger}> {{ <{ONTOLOGY_GRAPH}> <{SKG}bundleSha256> ?sha }} }}"
    )
    if any(isinstance(row.get("sha"), Lit) and str(row["sha"]) == sha for row in rows):
        return False
    store.update(f"DELETE WHERE {{ GRAPH <{ledger}> {{ <{ONTOLOGY_GRAPH}> ?p ?o }} }}")
    remove_graph(store, ONTOLOGY_GRAPH)
    quads = graph_quads(ONTOLOGY_GRAPH, (q.triple for q in parse_modules(files)))
    quads.append(
        ox.Quad(
            ox.NamedNode(ONTOLOGY_GRAPH),
            ox.NamedNode(SKG + "bundleSha256"),
            ox.Literal(sha),
            ox.NamedNode(ledger),
        )
    )
    store.add_quads(quads)
    return True
