"""The methods page of a map: a methods-section paragraph written from its lineage, with citations."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from werkzeug.routing import BuildError

from scipion_kg.methods_text import methods_for
from scipion_kg.namespaces import compact

from ..context import viewer
from ..links import entity_iri_or_404, run_token

__all__ = ["bp"]

bp = Blueprint("methods", __name__)


def _run_link(iri: str) -> str | None:
    token = run_token(iri)
    if token is None:
        return None
    try:
        return url_for("runs.run_page", token=token)
    except BuildError:
        return None


@bp.route("/methods/<token>")
def methods_page(token: str) -> str:
    """The generated paragraph, one sentence per upstream run, and the reference list."""
    iri = entity_iri_or_404(token)
    with viewer().store() as store:
        text = methods_for(store, iri)
    sentences = [(sentence, _run_link(sentence.run)) for sentence in text.sentences]
    return render_template(
        "methods.html",
        token=token,
        entity=compact(iri),
        text=text,
        sentences=sentences,
    )
