"""Named graphs mirrored into the default graph.

Each bundle (and the ontology) lives in its own named graph, so it can be replaced whole; the default
graph holds the set union of all of them, and every query reads the default graph. A triple that several
bundles assert (an agent, an input file's description) is then one triple, not one per bundle: union-
default-graph evaluation in Oxigraph yields one solution per graph holding a triple, which multiplied
joins over shared nodes (measured: 30,400 rows instead of 10 for 40 runs sharing one user).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyoxigraph as ox

from .store import Store

__all__ = ["drop_graph_update", "graph_quads", "remove_graph", "replace_graph_update"]


def graph_quads(graph: str, triples: Iterable[ox.Triple | ox.Quad]) -> list[ox.Quad]:
    """Quads putting ``triples`` into the named graph ``graph`` and into the default graph."""
    node = ox.NamedNode(graph)
    default = ox.DefaultGraph()
    quads: list[ox.Quad] = []
    for triple in triples:
        quads.append(ox.Quad(triple.subject, triple.predicate, triple.object, node))
        quads.append(ox.Quad(triple.subject, triple.predicate, triple.object, default))
    return quads


def _lines(triples: Iterable[ox.Triple | ox.Quad]) -> str:
    return "\n".join(f"{t.subject} {t.predicate} {t.object} ." for t in triples)


def replace_graph_update(
    graph: str, triples: Sequence[ox.Triple | ox.Quad], extra: Sequence[ox.Quad] = ()
) -> str:
    """One SPARQL update (applied whole) that replaces a named graph and its share of the default graph.

    Triples of the old graph that no other named graph asserts leave the default graph; the new ones
    enter both. ``extra`` quads (ledger entries) are inserted in their own graphs.
    """
    extra_blocks = "\n".join(
        f"GRAPH {quad.graph_name} {{ {quad.subject} {quad.predicate} {quad.object} . }}" for quad in extra
    )
    return (
        f"DELETE {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }}\n"
        f"  FILTER NOT EXISTS {{ GRAPH ?other {{ ?s ?p ?o }} FILTER(?other != <{graph}>) }} }} ;\n"
        f"DROP SILENT GRAPH <{graph}> ;\n"
        f"INSERT DATA {{\n{_lines(triples)}\nGRAPH <{graph}> {{\n{_lines(triples)}\n}}\n{extra_blocks}\n}}"
    )


def drop_graph_update(graph: str) -> str:
    """One SPARQL update removing a named graph and its share of the default graph."""
    return (
        f"DELETE {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }}\n"
        f"  FILTER NOT EXISTS {{ GRAPH ?other {{ ?s ?p ?o }} FILTER(?other != <{graph}>) }} }} ;\n"
        f"DROP SILENT GRAPH <{graph}>"
    )


def remove_graph(store: Store, graph: str) -> None:
    store.update(drop_graph_update(graph))
