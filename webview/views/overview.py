"""The overview: runs newest first (paginated), counts of runs and entities, the project's maps.

It also registers the template helpers every area's templates may use (links to entities and runs,
unit symbols, ontology labels, sizes).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request, url_for
from werkzeug.routing import BuildError

from scipion_kg.browse import format_size, label_of, overview_page, unit_symbol
from scipion_kg.namespaces import compact

from ..context import viewer
from ..links import entity_token, run_token

__all__ = ["bp", "optional_url"]

bp = Blueprint("overview", __name__)


def optional_url(endpoint: str, **values: Any) -> str | None:
    """The URL of ``endpoint``, or None when the viewer has no such page (an area left out)."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


@bp.app_template_global()
def entity_url(iri: str, endpoint: str = "entities.entity_page", **values: Any) -> str | None:
    """The URL of a page about an entity (its page by default), or None for IRIs of other projects."""
    token = entity_token(iri)
    return optional_url(endpoint, token=token, **values) if token else None


@bp.app_template_global()
def run_url(iri: str) -> str | None:
    token = run_token(iri)
    return optional_url("runs.run_page", token=token) if token else None


bp.add_app_template_global(optional_url, "optional_url")
bp.add_app_template_global(unit_symbol, "unit_symbol")
bp.add_app_template_global(label_of, "label_of")
bp.add_app_template_global(format_size, "format_size")
bp.add_app_template_global(compact, "compact")


@bp.get("/")
def index() -> str:
    context = viewer()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    with context.store() as store:
        overview = overview_page(store, page, context.config.page_size)
    return render_template("overview.html", overview=overview)
