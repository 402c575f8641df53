"""Compare two entities' histories side by side; the first difference is highlighted."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from scipion_kg.compare import compare_histories
from scipion_kg.namespaces import compact

from ..context import viewer
from ..links import entity_iri_of

__all__ = ["bp"]

bp = Blueprint("compare", __name__)


def _entity(parameter: str) -> str:
    token = request.args.get(parameter, "").strip()
    iri = entity_iri_of(token)
    if iri is None:
        abort(404, description=f"parameter {parameter}={token!r} does not name an entity (sha256-<hex>)")
    return iri


@bp.route("/compare")
def compare_page() -> str:
    """``?a=<token>&b=<token>``; without both, a form asking for them."""
    a_token, b_token = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    if not a_token or not b_token:
        return render_template("compare.html", comparison=None, a=a_token, b=b_token)
    a_iri, b_iri = _entity("a"), _entity("b")
    with viewer().store() as store:
        comparison = compare_histories(store, a_iri, b_iri)
    first = comparison.first_difference
    return render_template(
        "compare.html",
        comparison=comparison,
        a=a_token,
        b=b_token,
        a_name=compact(a_iri),
        b_name=compact(b_iri),
        first_step=first[0] if first else None,
        first_value=first[1] if first else None,
    )
