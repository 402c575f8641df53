"""The application factory: one blueprint per area (``views/``), read-only unless configured."""

from __future__ import annotations

from importlib import import_module

from flask import Flask, Response, render_template
from werkzeug.exceptions import HTTPException

from scipion_kg.errors import LineageError, ProjectLockedError
from scipion_kg.version import __version__

from .context import EXTENSION_KEY, ViewerConfig, ViewerContext
from .views import VIEW_MODULES

__all__ = ["create_app"]


def create_app(config: ViewerConfig) -> Flask:
    """A Flask application serving ``config``'s project (or SPARQL endpoint)."""
    app = Flask(__name__)
    app.extensions[EXTENSION_KEY] = ViewerContext(config)
    app.config["SCIPION_KG_WRITABLE"] = config.writable
    app.jinja_env.globals["scipion_kg_version"] = __version__
    for name in VIEW_MODULES:
        module = import_module(f"{__package__}.views.{name}")
        app.register_blueprint(module.bp)

    @app.errorhandler(LineageError)
    def unknown_term(error: LineageError) -> tuple[str, int]:
        return render_template("error.html", code=404, message=str(error)), 404

    @app.errorhandler(ProjectLockedError)
    def store_busy(error: ProjectLockedError) -> tuple[str, int]:
        return render_template("error.html", code=503, message=str(error)), 503

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        return render_template("error.html", code=code, message=error.description), code

    @app.after_request
    def security_headers(response: Response) -> Response:
        # No inline scripts and nothing from other origins: every script and style is served from /static.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
