"""The SPARQL 1.1 Protocol endpoint ``/sparql`` (read-only, time- and size-limited) and its HTML page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.routing import BuildError

from scipion_kg.errors import StoreError
from scipion_kg.namespaces import compact
from scipion_kg.sparql_guard import (
    N_TRIPLES,
    RESULTS_JSON,
    TURTLE,
    CheckedQuery,
    GraphFormat,
    QueryRefusedError,
    QueryResult,
    QuerySource,
    QuerySyntaxError,
    QueryTimeoutError,
    check_query,
    default_runner,
    example_queries,
    refuse_update,
)

from ..context import ViewerContext, viewer
from ..links import entity_token, run_token

__all__ = ["bp"]

bp = Blueprint("sparql", __name__)

_HTML = "text/html"
_OFFERED = [RESULTS_JSON, "application/json", TURTLE, N_TRIPLES, _HTML]
_UPDATE_TYPE = "application/sparql-update"
_QUERY_TYPE = "application/sparql-query"


@dataclass(frozen=True)
class _Cell:
    text: str
    href: str | None = None
    title: str | None = None


def _source(context: ViewerContext) -> QuerySource:
    if context.config.endpoint is not None:
        return QuerySource(endpoint=context.config.endpoint)
    project = context.project
    assert project is not None
    if project.store_config.endpoint is not None:
        return QuerySource(endpoint=project.store_config.endpoint)
    return QuerySource(store_path=str(project.store_path))


def _query_text() -> str | None:
    if request.method == "POST" and request.mimetype == _QUERY_TYPE:
        return request.get_data(as_text=True)
    if request.method == "POST":
        return request.form.get("query")
    return request.args.get("query")


def _is_update_request() -> bool:
    return request.mimetype == _UPDATE_TYPE or "update" in request.args or "update" in request.form


def _wants_html(has_query: bool) -> bool:
    best = request.accept_mimetypes.best_match(_OFFERED)
    if not has_query:
        # A client asking for SPARQL results without a query gets a protocol error, anyone else the page.
        return best == _HTML or not request.accept_mimetypes or best not in (RESULTS_JSON, "application/json")
    return best == _HTML


def _graph_format() -> GraphFormat:
    best = request.accept_mimetypes.best_match([TURTLE, N_TRIPLES])
    return N_TRIPLES if best == N_TRIPLES else TURTLE


def _link(endpoint: str, token: str) -> str | None:
    try:
        return url_for(endpoint, token=token)
    except BuildError:
        return None


def _cell(term: dict[str, Any]) -> _Cell:
    value = str(term.get("value", ""))
    if term.get("type") == "uri":
        href = None
        if (token := entity_token(value)) is not None:
            href = _link("entities.entity_page", token)
        elif (token := run_token(value)) is not None:
            href = _link("runs.run_page", token)
        return _Cell(compact(value), href, value)
    if term.get("type") == "bnode":
        return _Cell(f"_:{value}")
    language = term.get("xml:lang")
    datatype = term.get("datatype")
    title = f"@{language}" if language else (compact(str(datatype)) if datatype else None)
    return _Cell(value, None, title)


def _table(result: QueryResult) -> tuple[list[str], list[list[_Cell]], bool | None]:
    document = json.loads(result.body)
    if "boolean" in document:
        return [], [], bool(document["boolean"])
    names: list[str] = document["head"]["vars"]
    rows = [
        [_cell(binding[name]) if name in binding else _Cell("") for name in names]
        for binding in document["results"]["bindings"]
    ]
    return names, rows, None


def _page(
    text: str | None,
    *,
    result: QueryResult | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    names: list[str] = []
    rows: list[list[_Cell]] = []
    boolean: bool | None = None
    graph_text: str | None = None
    if result is not None:
        if result.content_type == RESULTS_JSON:
            names, rows, boolean = _table(result)
        else:
            graph_text = result.body.decode("utf-8")
    html = render_template(
        "sparql.html",
        query=text or "",
        examples=example_queries(),
        result=result,
        names=names,
        rows=rows,
        boolean=boolean,
        graph_text=graph_text,
        error=error,
        limits=viewer().config,
    )
    return html, status


def _refusal(message: str, status: int, text: str | None, html: bool) -> ResponseReturnValue:
    if html:
        return _page(text, error=message, status=status)
    return Response(message + "\n", status=status, mimetype="text/plain")


def _run(checked: CheckedQuery, graph_format: GraphFormat) -> QueryResult:
    context = viewer()
    with context.embedded_store_access():
        return default_runner().run(
            _source(context),
            checked,
            timeout=context.config.sparql_timeout_seconds,
            limit=context.config.sparql_result_limit,
            graph_format=graph_format,
        )


@bp.route("/sparql", methods=["GET", "POST"])
def sparql() -> ResponseReturnValue:
    """SPARQL 1.1 Protocol: GET ?query=, POST form query=, POST application/sparql-query; updates refused."""
    text = _query_text()
    html = _wants_html(text is not None)
    if _is_update_request():
        update_text = request.values.get("update") or (
            request.get_data(as_text=True) if request.mimetype == _UPDATE_TYPE else ""
        )
        return _refusal(str(refuse_update(update_text)), 403, text, html)
    if text is None:
        if html:
            return _page(None)
        return _refusal(
            "no query given: send query= (GET or POST form) or an application/sparql-query body",
            400,
            None,
            False,
        )
    try:
        checked = check_query(text)
    except QueryRefusedError as error:
        return _refusal(str(error), 403, text, html)
    except QuerySyntaxError as error:
        return _refusal(str(error), 400, text, html)
    if not html and request.accept_mimetypes and request.accept_mimetypes.best_match(_OFFERED) is None:
        offered = ", ".join(_OFFERED[:-1])
        return _refusal(
            f"none of the requested media types can be served; this endpoint offers {offered}",
            406,
            text,
            False,
        )
    graph_format = TURTLE if html else _graph_format()
    try:
        result = _run(checked, graph_format)
    except QueryTimeoutError as error:
        return _refusal(str(error), 503, text, html)
    except QuerySyntaxError as error:
        return _refusal(str(error), 400, text, html)
    except StoreError as error:
        return _refusal(str(error), 502, text, html)
    if html:
        return _page(text, result=result)
    response = Response(result.body, mimetype=result.content_type)
    if result.content_type != RESULTS_JSON:
        response.headers["Content-Type"] = f"{result.content_type}; charset=utf-8"
    response.headers["X-Result-Limit"] = str(result.limit)
    response.headers["X-Result-Truncated"] = "true" if result.truncated else "false"
    return response
