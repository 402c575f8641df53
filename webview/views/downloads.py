"""Downloads: an entity's file (only from inside the project) and its lineage in the PROV formats."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, abort, request, send_file

from scipion_kg.export import export_lineage
from scipion_kg.lineage import Direction, lineage

from ..context import viewer
from ..links import entity_iri_or_404
from .entities import entity_file, load_entity

__all__ = ["LINEAGE_FORMATS", "bp"]

bp = Blueprint("downloads", __name__)

# URL suffix -> (export format, media type, file extension)
LINEAGE_FORMATS: dict[str, tuple[str, str, str]] = {
    "prov-json": ("prov-json", "application/json", "json"),
    "provn": ("prov-n", "text/provenance-notation", "provn"),
    "ttl": ("turtle", "text/turtle", "ttl"),
    "jsonld": ("json-ld", "application/ld+json", "jsonld"),
}
# Served as themselves; anything else is an opaque download, so no project file is ever rendered as a page.
_INLINE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@bp.get("/file/<token>")
def file(token: str) -> Response:
    context = viewer()
    details = load_entity(token, 0)
    found = entity_file(context, details)
    if found is None:
        abort(404, "the entity's file is not inside the project (or is missing, or has changed since)")
    return send_file(
        found,
        mimetype=_INLINE_TYPES.get(found.suffix.lower(), "application/octet-stream"),
        as_attachment=True,
        download_name=found.name,
    )


def direction_argument() -> Direction:
    value = request.args.get("direction", "upstream")
    if value not in ("upstream", "downstream"):
        abort(400, f"direction={value!r} is not accepted: use upstream or downstream")
    return cast(Direction, value)


@bp.get("/entity/<token>/lineage.<fmt>")
def lineage_download(token: str, fmt: str) -> Response:
    if fmt not in LINEAGE_FORMATS:
        abort(404, f"no lineage format {fmt!r}; the formats are {', '.join(LINEAGE_FORMATS)}")
    iri = entity_iri_or_404(token)
    direction = direction_argument()
    export_format, media_type, extension = LINEAGE_FORMATS[fmt]
    with viewer().store() as store:
        text = export_lineage(store, lineage(store, iri, direction), export_format)
    response = Response(text, mimetype=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{token}-{direction}.{extension}"'
    return response
