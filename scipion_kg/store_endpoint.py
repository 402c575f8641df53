"""A store behind a SPARQL 1.1 endpoint (query + update), for facilities sharing one server.

Speaks the SPARQL 1.1 Protocol only (no vendor API), so Oxigraph server, Fuseki, Virtuoso or GraphDB all
work with their default settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import pyoxigraph as ox
import requests

from .errors import StoreError
from .store import Row, Store, to_term

__all__ = ["EndpointStore"]

_UPDATE_BATCH = 20_000


class EndpointStore(Store):
    """SPARQL 1.1 Protocol client; ``update_url`` defaults to ``query_url`` (Fuseki-style datasets)."""

    def __init__(
        self,
        query_url: str,
        update_url: str | None = None,
        *,
        read_only: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.query_url = query_url
        self.update_url = update_url or query_url
        self.read_only = read_only
        self.location = query_url
        self.timeout = timeout
        self._session = requests.Session()

    def _post(self, url: str, field: str, text: str, accept: str) -> bytes:
        try:
            response = self._session.post(
                url,
                data={field: text},
                headers={"Accept": accept},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise StoreError(f"the SPARQL endpoint {url} cannot be reached: {error}") from error
        if response.status_code >= 400:
            raise StoreError(
                f"the SPARQL endpoint {url} answered {response.status_code}: {response.text[:500]}"
            )
        return response.content

    def _results(self, query: str) -> ox.QuerySolutions | ox.QueryBoolean:
        body = self._post(self.query_url, "query", query, "application/sparql-results+json")
        try:
            return ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)
        except SyntaxError as error:
            raise StoreError(
                f"the SPARQL endpoint {self.query_url} sent unreadable results: {error}"
            ) from error

    def select(self, query: str) -> list[Row]:
        solutions = self._results(query)
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

    def ask(self, query: str) -> bool:
        return bool(self._results(query))

    def construct(self, query: str) -> list[ox.Triple]:
        body = self._post(self.query_url, "query", query, "application/n-triples")
        try:
            return [quad.triple for quad in ox.parse(body, format=ox.RdfFormat.N_TRIPLES)]
        except SyntaxError as error:
            raise StoreError(
                f"the SPARQL endpoint {self.query_url} sent unreadable triples: {error}"
            ) from error

    def update(self, update: str) -> None:
        if self.read_only:
            raise StoreError(f"the SPARQL endpoint {self.update_url} is configured read-only")
        self._post(self.update_url, "update", update, "*/*")

    def add_quads(self, quads: Iterable[ox.Quad]) -> None:
        by_graph: dict[str, list[str]] = defaultdict(list)
        for quad in quads:
            graph = quad.graph_name
            key = graph.value if isinstance(graph, ox.NamedNode) else ""
            by_graph[key].append(f"{quad.subject} {quad.predicate} {quad.object} .")
        # One request per batch: the protocol has no transaction spanning requests, so callers keep
        # batches small enough to be applied whole.
        parts: list[str] = []
        size = 0
        for graph_iri, lines in by_graph.items():
            for start in range(0, len(lines), _UPDATE_BATCH):
                chunk = "\n".join(lines[start : start + _UPDATE_BATCH])
                parts.append(f"GRAPH <{graph_iri}> {{\n{chunk}\n}}" if graph_iri else chunk)
                size += min(_UPDATE_BATCH, len(lines) - start)
                if size >= _UPDATE_BATCH:
                    self.update("INSERT DATA {\n" + "\n".join(parts) + "\n}")
                    parts, size = [], 0
        if parts:
            self.update("INSERT DATA {\n" + "\n".join(parts) + "\n}")

    def drop_graphs(self, graphs: Iterable[str]) -> None:
        statements = [f"DROP SILENT GRAPH <{graph}>" for graph in graphs]
        if statements:
            self.update(" ;\n".join(statements))

    def graph_names(self) -> set[str]:
        solutions = self._results("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
        assert isinstance(solutions, ox.QuerySolutions)
        return {node.value for solution in solutions if isinstance(node := solution["g"], ox.NamedNode)}

    def quads(self) -> Iterator[ox.Quad]:
        solutions = self._results("SELECT ?s ?p ?o ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
        assert isinstance(solutions, ox.QuerySolutions)
        for solution in solutions:
            subject, predicate, obj, graph = solution["s"], solution["p"], solution["o"], solution["g"]
            if isinstance(subject, ox.NamedNode | ox.BlankNode) and isinstance(predicate, ox.NamedNode):
                assert obj is not None and isinstance(graph, ox.NamedNode | ox.BlankNode)
                yield ox.Quad(subject, predicate, obj, graph)

    def close(self) -> None:
        self._session.close()
