"""Running the viewer: ``serve()`` is what ``scipion-kg serve`` calls."""

from __future__ import annotations

from pathlib import Path

from werkzeug.serving import run_simple

from scipion_kg.project import Project

from .app import create_app
from .context import ViewerConfig

__all__ = ["serve"]


def serve(
    project_dir: Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    endpoint: str | None = None,
    writable: bool = False,
) -> None:
    """Serve the project at ``project_dir`` (default: the one containing the current directory), or the
    SPARQL ``endpoint``, on ``host:port`` until interrupted. Local only and read-only unless told."""
    if project_dir is None and endpoint is None:
        project_dir = Project.find().root
    app = create_app(ViewerConfig(project_dir=project_dir, endpoint=endpoint, writable=writable))
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
