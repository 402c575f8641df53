"""The entity page (classes, format, hash, size, where it came from and what was made from it, set-level
metadata, pictures) and the route serving its pictures."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, render_template

from scipion_kg.browse import EntityDetails, entity_details, recorded_file
from scipion_kg.errors import ScipionKGError
from scipion_kg.namespaces import SKG
from scipion_kg.pictures import PICTURE_KINDS, cached_picture, picture_kinds, render_picture

from ..context import ViewerContext, viewer
from ..links import entity_iri_or_404

__all__ = ["bp", "entity_file", "load_entity"]

bp = Blueprint("entities", __name__)

_PICTURE_TITLES = {
    "slices": "central slices",
    "projection": "projection",
    "fsc": "FSC curve",
    "thumbnail": "thumbnail",
    "angles": "angular distribution",
}
_IMAGE_FORMATS = {SKG + "Format_PNG"}


def load_entity(token: str, used_by_limit: int = 200) -> EntityDetails:
    """The entity a URL token names; 404 when the token is malformed or the entity unknown."""
    iri = entity_iri_or_404(token)
    with viewer().store() as store:
        return entity_details(store, iri, used_by_limit)


def entity_file(context: ViewerContext, details: EntityDetails) -> Path | None:
    """The entity's file, if one of its recorded paths is inside the project and unchanged in size."""
    return recorded_file(details.paths, details.size, context.project_file)


@bp.get("/entity/<token>")
def entity_page(token: str) -> str:
    context = viewer()
    details = load_entity(token, context.config.page_size)
    found = entity_file(context, details)
    pictures = [(kind, _PICTURE_TITLES[kind]) for kind in picture_kinds(details.classes, found)]
    return render_template(
        "entity.html",
        entity=details,
        token=token,
        available=found is not None,
        pictures=pictures,
        is_image=found is not None and bool(set(details.formats) & _IMAGE_FORMATS),
        is_map=details.is_a(SKG + "Map"),
    )


@bp.get("/entity/<token>/image/<kind>.png")
def entity_image(token: str, kind: str) -> Response:
    if kind not in PICTURE_KINDS:
        abort(404, f"no picture kind {kind!r}; the kinds are {', '.join(PICTURE_KINDS)}")
    context = viewer()
    details = load_entity(token, 0)
    found = entity_file(context, details)
    if found is None or details.sha256 is None or context.project is None:
        abort(404, "the entity's file is not inside the project (or has changed since it was recorded)")
    if kind not in picture_kinds(details.classes, found):
        abort(404, f"no {kind} picture for this entity")
    file_path = found
    try:
        data = cached_picture(
            context.project.control_dir / "cache",
            details.sha256,
            kind,
            lambda: render_picture(kind, file_path, context.project_file),
        )
    except (ScipionKGError, ValueError) as error:
        abort(404, f"cannot draw the {kind} picture: {error}")
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
