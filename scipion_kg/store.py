"""The store interface: one API over the embedded Oxigraph store and any SPARQL 1.1 endpoint.

Reads return light terms (:mod:`scipion_kg.terms`); writes take pyoxigraph quads, the one in-memory RDF
form the recorder and ingest build. Every bundle lives in its own named graph and is mirrored into the
default graph (:mod:`scipion_kg.graphs`); queries read the default graph, so any SPARQL 1.1 server works
with its default settings.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from types import TracebackType

import pyoxigraph as ox

from .terms import IRI, BNode, Lit, Term

__all__ = ["Row", "Store", "to_term"]

Row = dict[str, Term]


def to_term(node: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> Term:
    """Convert a pyoxigraph term into a light term."""
    if isinstance(node, ox.NamedNode):
        return IRI(node.value)
    if isinstance(node, ox.BlankNode):
        return BNode(node.value)
    if isinstance(node, ox.Literal):
        return Lit(node.value, node.datatype.value, node.language)
    raise TypeError(f"RDF-star triple terms are not used by scipion-kg: {node!r}")


class Store(abc.ABC):
    """A quad store that answers SPARQL 1.1 queries (over its default graph unless they say GRAPH)."""

    read_only: bool = False
    location: str = ""

    @abc.abstractmethod
    def select(self, query: str) -> list[Row]:
        """Rows of a SELECT query; unbound variables are absent from a row."""

    @abc.abstractmethod
    def ask(self, query: str) -> bool: ...

    @abc.abstractmethod
    def construct(self, query: str) -> list[ox.Triple]:
        """Triples of a CONSTRUCT or DESCRIBE query."""

    @abc.abstractmethod
    def update(self, update: str) -> None:
        """Run a SPARQL 1.1 update."""

    @abc.abstractmethod
    def add_quads(self, quads: Iterable[ox.Quad]) -> None:
        """Add quads in one transaction (all or nothing)."""

    def add_quads_bulk(self, quads: Iterable[ox.Quad]) -> None:
        """Add many quads as fast as the store allows; not atomic (callers order writes to be safe)."""
        self.add_quads(quads)

    @abc.abstractmethod
    def drop_graphs(self, graphs: Iterable[str]) -> None:
        """Remove named graphs and everything in them (missing graphs are ignored)."""

    @abc.abstractmethod
    def graph_names(self) -> set[str]: ...

    @abc.abstractmethod
    def quads(self) -> Iterator[ox.Quad]:
        """Every quad of the store (for dumps and tests)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files, locks and connections."""

    def count(self) -> int:
        rows = self.select("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
        value = rows[0]["n"]
        return int(value.lexical) if isinstance(value, Lit) else 0

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
