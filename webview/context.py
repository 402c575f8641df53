"""What every view needs: the project, a read-only store opened per request, the viewer's limits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from scipion_kg.errors import ProjectError
from scipion_kg.locking import STORE_LOCK, store_access
from scipion_kg.project import Project, StoreConfig
from scipion_kg.store import Store

__all__ = ["ViewerConfig", "ViewerContext", "viewer"]

EXTENSION_KEY = "scipion_kg"


@dataclass(frozen=True)
class ViewerConfig:
    """How the viewer was started. ``writable`` is off unless the user asked for it explicitly."""

    project_dir: Path | None = None
    endpoint: str | None = None
    writable: bool = False
    sparql_timeout_seconds: float = 10.0
    sparql_result_limit: int = 10_000
    page_size: int = 100
    store_wait_seconds: float = 30.0


class ViewerContext:
    """The project a viewer serves. The store is opened read-only for each request, so runs recorded
    by a pipeline running in the same project appear without a restart."""

    def __init__(self, config: ViewerConfig) -> None:
        self.config = config
        if config.project_dir is not None:
            self.project: Project | None = Project.find(config.project_dir)
        elif config.endpoint is not None:
            self.project = None
        else:
            raise ProjectError("the viewer needs a project directory or a SPARQL endpoint")

    @property
    def root(self) -> Path | None:
        return self.project.root if self.project is not None else None

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A read-only store for one request."""
        if self.project is not None and self.config.endpoint is None:
            with self.embedded_store_access(), self.project.open_store(write=False) as store:
                yield store
            return
        endpoint = self.config.endpoint
        assert endpoint is not None
        remote = Project(Path("."), StoreConfig(endpoint=endpoint))
        with remote.open_store(write=False) as store:
            yield store

    @contextmanager
    def embedded_store_access(self) -> Iterator[None]:
        """Shared access to the embedded store for one request: a writer (a pipeline step's ingest)
        finishes before the store is opened, and waits for the request to end before writing."""
        if self.project is None or self.project.store_config.endpoint is not None:
            yield
            return
        lock = self.project.control_dir / STORE_LOCK
        with store_access(lock, exclusive=False, timeout=self.config.store_wait_seconds):
            yield

    def project_file(self, recorded: str) -> Path | None:
        """The file a recorded path names, or None when it is outside the project or not a file.

        Every file the viewer reads goes through here: nothing outside the project root is ever served.
        """
        if self.project is None:
            return None
        root = self.project.root.resolve()
        candidate = self.project.resolve_path(recorded).resolve()
        if candidate != root and root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None


def viewer() -> ViewerContext:
    """The viewer context of the running application."""
    context: ViewerContext = current_app.extensions[EXTENSION_KEY]
    return context
