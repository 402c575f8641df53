"""The interactive lineage graph of an entity: the page, and the laid-out graph it draws as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for
from werkzeug.routing import BuildError

from scipion_kg.lineage import Direction, lineage
from scipion_kg.lineage_graph import GraphNode, build_lineage_graph, describe_entity, graph_json

from ..context import viewer
from ..links import entity_iri_or_404, entity_token, run_token

__all__ = ["bp"]

bp = Blueprint("lineage", __name__)

_DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream")
_MAX_EXPAND_IDS = 500


def _direction() -> Direction:
    value = request.args.get("direction", "upstream")
    for direction in _DIRECTIONS:
        if value == direction:
            return direction
    abort(400, f"direction={value!r} is not accepted: use upstream or downstream")


def _root_iri(token: str) -> str:
    iri = entity_iri_or_404(token)
    return iri


def _url(endpoint: str, **values: Any) -> str | None:
    # An area missing from a trimmed-down viewer leaves the node without a link rather than failing.
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def _links(node: GraphNode) -> Mapping[str, str | None]:
    if node.kind == "entity" and node.iri is not None:
        token = entity_token(node.iri)
        if token is not None:
            return {
                "token": token,
                "url": _url("entities.entity_page", token=token),
                "lineage_url": url_for("lineage.lineage_page", token=token),
            }
    if node.kind == "run" and node.iri is not None:
        token = run_token(node.iri)
        if token is not None:
            return {"token": token, "url": _url("runs.run_page", token=token)}
    return {"token": None, "url": None}


@bp.get("/lineage/<token>")
def lineage_page(token: str) -> str:
    """The page: title, direction toggle, legend and the canvas ``lineage.js`` draws into."""
    iri = _root_iri(token)
    direction = _direction()
    with viewer().store() as store:
        root = describe_entity(store, iri)
    return render_template(
        "lineage.html",
        token=token,
        root=root,
        direction=direction,
        entity_url=_url("entities.entity_page", token=token),
        graph_url=url_for("lineage.lineage_graph", token=token),
        downloads=[
            (label, _url("downloads.lineage_download", token=token, fmt=fmt, direction=direction))
            for label, fmt in (("PROV-JSON", "prov-json"), ("PROV-N", "provn"), ("Turtle", "ttl"))
        ],
    )


@bp.get("/lineage/<token>/graph.json")
def lineage_graph(token: str) -> Response:
    """Nodes (with positions), edges and collapse groups; ``expand=<group id>,...`` or ``expand=all``."""
    iri = _root_iri(token)
    direction = _direction()
    requested = [part for part in request.args.get("expand", "").split(",") if part][:_MAX_EXPAND_IDS]
    with viewer().store() as store:
        history = lineage(store, iri, direction)
    graph = build_lineage_graph(history, requested, expand_all="all" in requested)
    return jsonify(graph_json(graph, _links))
