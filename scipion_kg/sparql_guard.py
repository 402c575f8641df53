"""Read-only SPARQL for untrusted users: which queries are allowed, and a runner that can stop them.

The check parses the text with rdflib's SPARQL 1.1 grammar, so a keyword inside a string literal or a
comment never decides anything: only SELECT, ASK, CONSTRUCT and DESCRIBE queries pass; any update (INSERT,
DELETE, LOAD, CLEAR, DROP...) and any SERVICE call are refused.

Oxigraph cannot interrupt a query in-process, so queries run in worker processes kept warm in a pool
(started by a fork server): a query that outlives its time limit is stopped by ending its worker, which is
then replaced. A worker opens the store read-only for each query, so it sees runs recorded since the last
one. Results are cut at a row (or triple) limit and say so.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal

import pyoxigraph as ox

from .errors import StoreError
from .namespaces import PREFIXES, XSD

__all__ = [
    "N_TRIPLES",
    "RESULTS_JSON",
    "TURTLE",
    "CheckedQuery",
    "ExampleQuery",
    "GraphFormat",
    "QueryKind",
    "QueryRefusedError",
    "QueryResult",
    "QueryRunner",
    "QuerySource",
    "QuerySyntaxError",
    "QueryTimeoutError",
    "check_query",
    "default_runner",
    "example_queries",
    "refuse_update",
]

QueryKind = Literal["SELECT", "ASK", "CONSTRUCT", "DESCRIBE"]
GraphFormat = Literal["text/turtle", "application/n-triples"]

RESULTS_JSON = "application/sparql-results+json"
TURTLE: GraphFormat = "text/turtle"
N_TRIPLES: GraphFormat = "application/n-triples"

_KINDS: dict[str, QueryKind] = {
    "SelectQuery": "SELECT",
    "AskQuery": "ASK",
    "ConstructQuery": "CONSTRUCT",
    "DescribeQuery": "DESCRIBE",
}
_UPDATE_NAMES = {
    "InsertData": "INSERT DATA",
    "DeleteData": "DELETE DATA",
    "DeleteWhere": "DELETE WHERE",
    "Modify": "DELETE/INSERT",
    "Load": "LOAD",
    "Clear": "CLEAR",
    "Drop": "DROP",
    "Create": "CREATE",
    "Add": "ADD",
    "Move": "MOVE",
    "Copy": "COPY",
}
_FORBIDDEN_PATTERNS = {"ServiceGraphPattern": "SERVICE (federated query to another endpoint)"}


class QueryRefusedError(StoreError):
    """The request is valid SPARQL but not allowed here (an update, a SERVICE call, file loading)."""


class QuerySyntaxError(StoreError):
    """The query text is not SPARQL 1.1; the message carries the parser's line and column."""


class QueryTimeoutError(StoreError):
    """The query ran longer than the time limit and was stopped."""


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed :func:`check_query`."""

    text: str
    kind: QueryKind


def refuse_update(text: str = "") -> QueryRefusedError:
    """The error for any SPARQL update sent to a read-only endpoint."""
    operations = _update_operations(text) if text else []
    named = f" ({', '.join(operations)})" if operations else ""
    return QueryRefusedError(
        f"SPARQL updates are refused{named}: this endpoint is read-only; "
        "send a SELECT, ASK, CONSTRUCT or DESCRIBE query"
    )


def _update_operations(text: str) -> list[str]:
    from rdflib.plugins.sparql.parser import parseUpdate

    try:
        parsed = parseUpdate(text)
    except Exception:
        return []
    return [_UPDATE_NAMES.get(operation.name, operation.name) for operation in parsed.request]


def _pattern_names(node: object) -> Iterator[str]:
    from pyparsing import ParseResults
    from rdflib.plugins.sparql.parserutils import CompValue

    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, CompValue):
            yield item.name
            stack.extend(item.values())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, ParseResults)):
            stack.extend(item)


def check_query(text: str) -> CheckedQuery:
    """The query's kind if it may run here; QueryRefusedError for updates and SERVICE calls,
    QuerySyntaxError (with the parser's message) for text that is not SPARQL."""
    from pyparsing import ParseBaseException
    from rdflib.plugins.sparql.parser import parseQuery

    if not text.strip():
        raise QuerySyntaxError("the query is empty: send a SELECT, ASK, CONSTRUCT or DESCRIBE query")
    try:
        parsed = parseQuery(text)
    except ParseBaseException as error:
        if _update_operations(text):
            raise refuse_update(text) from error
        raise QuerySyntaxError(f"SPARQL syntax error: {error}") from error
    except Exception as error:  # rdflib raises plain exceptions for a few semantic errors (bad prefix...)
        raise QuerySyntaxError(f"invalid SPARQL query: {error}") from error
    kind = _KINDS.get(parsed[1].name)
    if kind is None:
        raise QuerySyntaxError(f"unsupported query form {parsed[1].name}")
    for name in _pattern_names(parsed):
        if name in _FORBIDDEN_PATTERNS:
            raise QueryRefusedError(
                f"{_FORBIDDEN_PATTERNS[name]} is refused: this endpoint answers from its own store only"
            )
    return CheckedQuery(text, kind)


@dataclass(frozen=True)
class ExampleQuery:
    """An example shipped in ``queries/examples/``: its first comment line is the title, the next
    comment lines the description."""

    name: str
    title: str
    description: str
    text: str


def example_queries() -> list[ExampleQuery]:
    """The example queries, sorted by file name."""
    folder = resources.files("scipion_kg.queries").joinpath("examples")
    examples = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".rq"):
            continue
        text = entry.read_text(encoding="utf-8")
        comments = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            comments.append(line.lstrip("#").strip())
        title = comments[0] if comments else entry.name.removesuffix(".rq")
        examples.append(ExampleQuery(entry.name.removesuffix(".rq"), title, " ".join(comments[1:]), text))
    return examples


# -- running ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySource:
    """Where a worker finds the data: an embedded store directory, or a SPARQL endpoint URL."""

    store_path: str | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if (self.store_path is None) == (self.endpoint is None):
            raise StoreError("a query source is either a store directory or an endpoint URL, not both")


@dataclass(frozen=True)
class QueryResult:
    """A serialised answer: ``body`` in ``content_type``; ``count`` rows (or triples) kept; ``truncated``
    when the answer had more than the result limit."""

    kind: QueryKind
    content_type: str
    body: bytes
    count: int
    truncated: bool
    limit: int


@dataclass(frozen=True)
class _Request:
    source: QuerySource
    query: CheckedQuery
    graph_format: GraphFormat
    limit: int


def _term_json(term: Any) -> dict[str, Any]:
    """A term in the W3C SPARQL 1.1 Query Results JSON Format (section 3.2.2)."""
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        encoded: dict[str, Any] = {"type": "literal", "value": term.value}
        if term.language:
            encoded["xml:lang"] = term.language
        elif term.datatype.value != XSD + "string":
            encoded["datatype"] = term.datatype.value
        return encoded
    if isinstance(term, ox.Triple):
        return {
            "type": "triple",
            "value": {
                "subject": _term_json(term.subject),
                "predicate": _term_json(term.predicate),
                "object": _term_json(term.object),
            },
        }
    raise TypeError(f"unexpected term {term!r}")


def _open_results(request: _Request) -> tuple[object, ox.Store | None]:
    source = request.source
    if source.store_path is not None:
        store = ox.Store.read_only(source.store_path)
        return store.query(request.query.text), store
    assert source.endpoint is not None
    import requests

    graph = request.query.kind in ("CONSTRUCT", "DESCRIBE")
    accept = "application/n-triples" if graph else RESULTS_JSON
    response = requests.post(
        source.endpoint, data={"query": request.query.text}, headers={"Accept": accept}, timeout=3600
    )
    if response.status_code >= 400:
        raise StoreError(
            f"the SPARQL endpoint {source.endpoint} answered {response.status_code}: {response.text[:500]}"
        )
    if graph:
        return ox.parse(response.content, format=ox.RdfFormat.N_TRIPLES), None
    return ox.parse_query_results(response.content, format=ox.QueryResultsFormat.JSON), None


def _first(items: Iterable[Any], limit: int) -> tuple[list[Any], bool]:
    kept: list[Any] = []
    for item in items:
        if len(kept) == limit:
            return kept, True
        kept.append(item)
    return kept, False


def _execute(request: _Request) -> QueryResult:
    results, _store = _open_results(request)
    kind, limit = request.query.kind, request.limit
    if isinstance(results, ox.QueryBoolean):
        body = json.dumps({"head": {}, "boolean": bool(results)}).encode("utf-8")
        return QueryResult(kind, RESULTS_JSON, body, 1, False, limit)
    if isinstance(results, ox.QuerySolutions):
        names = [variable.value for variable in results.variables]
        solutions, truncated = _first(results, limit)
        bindings = [
            {name: _term_json(value) for name in names if (value := solution[name]) is not None}
            for solution in solutions
        ]
        document = {"head": {"vars": names}, "results": {"bindings": bindings}}
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return QueryResult(kind, RESULTS_JSON, body, len(bindings), truncated, limit)
    triples, truncated = _first(
        (item.triple if isinstance(item, ox.Quad) else item for item in results),  # type: ignore[attr-defined]
        limit,
    )
    if request.graph_format == N_TRIPLES:
        data = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES)
    else:
        data = ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=PREFIXES)
    return QueryResult(kind, request.graph_format, data or b"", len(triples), truncated, limit)


def _worker_main(connection: Connection) -> None:
    """A worker's loop: one request in, one reply out, until the pipe closes."""
    try:
        while True:
            try:
                request = connection.recv()
            except EOFError:
                return
            try:
                reply: tuple[str, object] = ("ok", _execute(request))
            except SyntaxError as error:
                reply = ("syntax", str(error))
            except Exception as error:
                reply = ("error", f"{type(error).__name__}: {error}")
            connection.send(reply)
    except KeyboardInterrupt:
        return


class _Worker:
    def __init__(self, context: BaseContext) -> None:
        parent, child = context.Pipe(duplex=True)
        self.connection: Connection = parent
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child,), name="scipion-kg-sparql", daemon=True
        )
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(2.0)


def _context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["pyoxigraph", __name__])
        return context
    return multiprocessing.get_context("spawn")


class QueryRunner:
    """Runs checked queries in warm worker processes; at most ``keep`` idle workers are kept."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._context: BaseContext | None = None

    def _acquire(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.stop()
            if self._context is None:
                self._context = _context()
            context = self._context
        return _Worker(context)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(worker)
                return
        worker.stop()

    def warm(self) -> None:
        """Start the idle workers now rather than at the first query."""
        workers = [self._acquire() for _ in range(self._keep)]
        for worker in workers:
            self._release(worker)

    def run(
        self,
        source: QuerySource,
        query: CheckedQuery,
        *,
        timeout: float,
        limit: int,
        graph_format: GraphFormat = TURTLE,
    ) -> QueryResult:
        """Run ``query`` against ``source``; QueryTimeoutError after ``timeout`` seconds."""
        worker: _Worker | None = self._acquire()
        assert worker is not None
        try:
            worker.connection.send(_Request(source, query, graph_format, limit))
            if not worker.connection.poll(timeout):
                worker.stop()
                worker = None
                raise QueryTimeoutError(
                    f"query stopped after {timeout:g} s: it ran longer than this viewer's time limit; "
                    "narrow it (more specific patterns, a LIMIT) or raise the limit"
                )
            status, payload = worker.connection.recv()
        except (EOFError, OSError) as error:
            if worker is not None:
                worker.stop()
                worker = None
            raise StoreError(f"the query worker stopped unexpectedly: {error}") from error
        finally:
            if worker is not None:
                self._release(worker)
        if status == "ok":
            assert isinstance(payload, QueryResult)
            return payload
        if status == "syntax":
            raise QuerySyntaxError(f"the store refused the query: {payload}")
        where = source.store_path or source.endpoint
        raise StoreError(f"the query failed on {where}: {payload}")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


_DEFAULT: QueryRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> QueryRunner:
    """The process-wide runner (its workers serve any store: the source travels with each query)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = QueryRunner()
        return _DEFAULT
