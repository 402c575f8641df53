"""The run page (parameters, software, times, inputs and outputs, logs, figures, validation reports) and
the route serving a run's figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_file, url_for

from scipion_kg.browse import RunDetails, recorded_file, run_details
from scipion_kg.namespaces import SKG
from scipion_kg.vocabulary import vocabulary

from ..context import ViewerContext, viewer
from ..links import run_iri_or_404

__all__ = ["LOG_BYTES_SHOWN", "bp"]

bp = Blueprint("runs", __name__)

LOG_BYTES_SHOWN = 64 * 1024
_LOG_PATTERNS = ("*.log", "*.out", "*.err")
_MAX_LOGS = 20
_MAX_FIGURES = 60
_MAX_REPORTS = 10


@dataclass(frozen=True)
class TextFile:
    """A log or report as the page shows it: the last ``LOG_BYTES_SHOWN`` bytes at most."""

    name: str
    size: int
    text: str

    @property
    def truncated(self) -> bool:
        return self.size > LOG_BYTES_SHOWN


def _run_iri(token: str) -> str:
    iri = run_iri_or_404(token)
    return iri


def _details(token: str) -> RunDetails:
    iri = _run_iri(token)
    with viewer().store() as store:
        return run_details(store, iri)


def run_directory(context: ViewerContext, recorded: str | None) -> Path | None:
    """The run's directory when it is a folder inside the project (never the project root itself)."""
    if context.project is None or not recorded:
        return None
    root = context.project.root.resolve()
    candidate = context.project.resolve_path(recorded).resolve()
    if root not in candidate.parents or not candidate.is_dir():
        return None
    return candidate


def _tail(path: Path) -> TextFile:
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(size - LOG_BYTES_SHOWN, 0))
        data = handle.read(LOG_BYTES_SHOWN)
    return TextFile(path.name, size, data.decode("utf-8", errors="replace"))


def _inside(directory: Path, recorded: str, context: ViewerContext) -> Path | None:
    """``recorded`` (a path under the run directory) as a file inside both the run directory and the
    project, or None."""
    found = context.project_file(recorded)
    if found is None or directory not in found.parents:
        return None
    return found


def _logs(context: ViewerContext, details: RunDetails, directory: Path) -> list[TextFile]:
    names = sorted({p.name for pattern in _LOG_PATTERNS for p in directory.glob(pattern)})[:_MAX_LOGS]
    logs = []
    for name in names:
        found = _inside(directory, f"{details.directory}/{name}", context)
        if found is not None:
            logs.append(_tail(found))
    return logs


def _figures(directory: Path) -> list[str]:
    figures = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.png") if p.is_file())
    return figures[:_MAX_FIGURES]


def _reports(context: ViewerContext, details: RunDetails) -> list[TextFile]:
    vocab = vocabulary()
    reports = []
    for output in details.outputs:
        if any(vocab.is_subclass(c, SKG + "ValidationReport") for c in output.classes):
            found = recorded_file(output.paths, output.size, context.project_file)
            if found is not None:
                reports.append(_tail(found))
    return reports[:_MAX_REPORTS]


@bp.get("/run/<token>")
def run_page(token: str) -> str:
    context = viewer()
    details = _details(token)
    directory = run_directory(context, details.directory)
    logs = _logs(context, details, directory) if directory is not None else []
    figures = [
        (name, url_for("runs.run_figure", token=token, name=name))
        for name in (_figures(directory) if directory is not None else [])
    ]
    return render_template(
        "run.html",
        run=details,
        token=token,
        logs=logs,
        figures=figures,
        reports=_reports(context, details),
        log_bytes_shown=LOG_BYTES_SHOWN,
    )


@bp.get("/run/<token>/figure/<path:name>")
def run_figure(token: str, name: str) -> Response:
    context = viewer()
    details = _details(token)
    directory = run_directory(context, details.directory)
    if directory is None or not name.lower().endswith(".png"):
        abort(404, f"no figure {name!r} in the directory of this run")
    found = _inside(directory, f"{details.directory}/{name}", context)
    if found is None:
        abort(404, f"no figure {name!r} in the directory of this run")
    return send_file(found, mimetype="image/png", max_age=3600)
