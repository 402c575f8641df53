"""The embedded store: an on-disk Oxigraph (RocksDB) database inside the project directory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyoxigraph as ox

from .errors import StoreError
from .store import Row, Store, to_term

__all__ = ["OxigraphStore"]


class OxigraphStore(Store):
    """Oxigraph on disk (``path``) or in memory (``path=None``)."""

    def __init__(self, path: Path | None, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.location = str(path) if path is not None else "memory"
        try:
            if path is None:
                self._store = ox.Store()
            elif read_only:
                self._store = ox.Store.read_only(str(path))
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._store = ox.Store(str(path))
        except OSError as error:
            raise StoreError(f"cannot open the Oxigraph store at {path}: {error}") from error

    @property
    def native(self) -> ox.Store:
        """The underlying pyoxigraph store, for bulk paths that need it."""
        return self._store

    def _query(self, query: str) -> object:
        try:
            return self._store.query(query)
        except SyntaxError as error:
            raise StoreError(f"invalid SPARQL query: {error}") from error
        except OSError as error:
            raise StoreError(f"the store at {self.location} failed to answer: {error}") from error

    def select(self, query: str) -> list[Row]:
        solutions = self._query(query)
        if not isinstance(solutions, ox.QuerySolutions):
            raise StoreError("select() needs a SELECT query")
        names = [variable.value for variable in solutions.variables]
        rows: list[Row] = []
        for solution in solutions:
            row: Row = {}
            for name in names:
                value = solution[name]
                if value is not None:
                    row[name] = to_term(value)
            rows.append(row)
        return rows

    def select_iris(self, query: str, variable: str) -> list[str]:
        """Fast path: the IRI values of one variable (no term conversion)."""
        solutions = self._query(query)
        if not isinstance(solutions, ox.QuerySolutions):
            raise StoreError("select_iris() needs a SELECT query")
        return [node.value for solution in solutions if (node := solution[variable]) is not None]

    def ask(self, query: str) -> bool:
        return bool(self._query(query))

    def construct(self, query: str) -> list[ox.Triple]:
        triples = self._query(query)
        if not isinstance(triples, ox.QueryTriples):
            raise StoreError("construct() needs a CONSTRUCT or DESCRIBE query")
        return list(triples)

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"the store at {self.location} is open read-only")

    def update(self, update: str) -> None:
        self._check_writable()
        try:
            self._store.update(update)
        except SyntaxError as error:
            raise StoreError(f"invalid SPARQL update: {error}") from error

    def add_quads(self, quads: Iterable[ox.Quad]) -> None:
        self._check_writable()
        self._store.extend(quads)

    def add_quads_bulk(self, quads: Iterable[ox.Quad]) -> None:
        # The bulk loader writes sorted files directly: about 2.5x faster than extend() for 10^5+ quads.
        self._check_writable()
        self._store.bulk_extend(quads)

    def drop_graphs(self, graphs: Iterable[str]) -> None:
        self._check_writable()
        for graph in graphs:
            node = ox.NamedNode(graph)
            if self._store.contains_named_graph(node):
                self._store.remove_graph(node)

    def graph_names(self) -> set[str]:
        return {graph.value for graph in self._store.named_graphs() if isinstance(graph, ox.NamedNode)}

    def quads(self) -> Iterator[ox.Quad]:
        return iter(self._store.quads_for_pattern(None, None, None, None))

    def close(self) -> None:
        if not self.read_only and hasattr(self, "_store"):
            self._store.flush()
        # pyoxigraph closes RocksDB when the object is dropped.
        self.__dict__.pop("_store", None)
