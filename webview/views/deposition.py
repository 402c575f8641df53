"""The deposition page of a map: what the graph fills (with evidence), what is missing, the half-map
proof, and the packages already prepared for it (downloadable as zip)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template

from scipion_kg.deposition.preview import package_zip, preview_deposition, recorded_packages
from scipion_kg.deposition.report import value_rows
from scipion_kg.errors import DepositionError
from scipion_kg.namespaces import compact

from ..context import viewer
from ..links import entity_iri_or_404, run_iri_of, run_token

__all__ = ["bp"]

bp = Blueprint("deposition", __name__)


@bp.route("/deposition/<token>")
def deposition_page(token: str) -> str:
    iri = entity_iri_or_404(token)
    context = viewer()
    if context.project is None:
        abort(404, description="deposition needs the project's files; this viewer serves only an endpoint")
    with context.store() as store:
        if not store.ask(f"ASK {{ <{iri}> ?p ?o }}"):
            abort(404, description=f"{compact(iri)} is not recorded in this project")
        preview = preview_deposition(store, context.project, iri)
        packages = recorded_packages(store, iri)
    return render_template(
        "deposition.html",
        token=token,
        entity=compact(iri),
        preview=preview,
        values=value_rows(preview.deposition) if preview.deposition is not None else [],
        packages=[(package, run_token(package.run)) for package in packages],
    )


@bp.route("/deposition/<token>/package/<run>.zip")
def package_download(token: str, run: str) -> Response:
    iri = entity_iri_or_404(token)
    run_iri = run_iri_of(run)
    context = viewer()
    if run_iri is None or context.project is None:
        abort(404, description="no such deposition package")
    with context.store() as store:
        packages = {package.run: package for package in recorded_packages(store, iri)}
    package = packages.get(run_iri)
    if package is None:
        abort(404, description=f"run {run} is not a deposition of {compact(iri)}")
    try:
        data = package_zip(context.project, package)
    except DepositionError as error:
        abort(404, description=str(error))
    return Response(
        data,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="deposition-{run[:12]}.zip"'},
    )
