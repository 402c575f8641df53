"""A scipion-kg project: a directory with run directories, a store and a hash cache.

``scipion-kg init DIR`` makes one; commands find the project that contains the current directory, as git
finds its repository, unless ``--project DIR`` names one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import ProjectError
from .hashing import HashCache
from .locking import STORE_LOCK, WriteLock, store_access
from .ontology_graph import sync_ontology_graph
from .store import Store
from .store_endpoint import EndpointStore
from .store_oxigraph import OxigraphStore

__all__ = ["CONTROL_DIR", "Project", "StoreConfig"]

CONTROL_DIR = ".scipion-kg"
CONFIG_FILE = "project.json"
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class StoreConfig:
    """Where a project's graph lives: the embedded Oxigraph store, or a SPARQL 1.1 endpoint."""

    endpoint: str | None = None
    update_endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.endpoint is None:
            return {"kind": "oxigraph", "path": f"{CONTROL_DIR}/store"}
        return {
            "kind": "sparql-endpoint",
            "query": self.endpoint,
            "update": self.update_endpoint or self.endpoint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path) -> StoreConfig:
        kind = data.get("kind")
        if kind == "oxigraph":
            return cls()
        if kind == "sparql-endpoint" and isinstance(data.get("query"), str):
            return cls(endpoint=data["query"], update_endpoint=data.get("update"))
        raise ProjectError(
            f"{source}: field 'store' must be an oxigraph store or a SPARQL endpoint, got {data!r}"
        )


@dataclass
class Project:
    """An initialised project directory (use :meth:`init` or :meth:`find`)."""

    root: Path
    store_config: StoreConfig = field(default_factory=StoreConfig)
    _hash_cache: HashCache | None = field(default=None, repr=False)

    @property
    def control_dir(self) -> Path:
        return self.root / CONTROL_DIR

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def store_path(self) -> Path:
        return self.control_dir / "store"

    @property
    def hash_cache(self) -> HashCache:
        if self._hash_cache is None:
            self._hash_cache = HashCache(self.control_dir / "hash-cache.sqlite")
        return self._hash_cache

    @classmethod
    def init(cls, root: Path, *, store: StoreConfig | None = None) -> Project:
        """Create a project in ``root`` (created if missing); refuse to re-initialise or nest one."""
        root = root.resolve()
        if (root / CONTROL_DIR / CONFIG_FILE).exists():
            raise ProjectError(f"{root} is already a scipion-kg project")
        enclosing = _find_root(root.parent)
        if enclosing is not None:
            raise ProjectError(f"{root} is inside the project {enclosing}; projects cannot be nested")
        store = store or StoreConfig()
        (root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
        (root / "runs").mkdir(exist_ok=True)
        config = {"scipion_kg_project": LAYOUT_VERSION, "store": store.to_json()}
        _atomic_write_text(root / CONTROL_DIR / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        project = cls(root, store)
        with project.open_store(write=True) as opened:
            sync_ontology_graph(opened)
        return project

    @classmethod
    def find(cls, explicit: Path | None = None, start: Path | None = None) -> Project:
        """The project at ``explicit``, or the one containing ``start`` (default: the current directory)."""
        if explicit is not None:
            root = explicit.resolve()
            if not (root / CONTROL_DIR / CONFIG_FILE).is_file():
                raise ProjectError(
                    f"{root} is not a scipion-kg project (no {CONTROL_DIR}/{CONFIG_FILE}); "
                    f"create one with 'scipion-kg init {explicit}'"
                )
        else:
            here = (start or Path.cwd()).resolve()
            found = _find_root(here)
            if found is None:
                raise ProjectError(
                    f"{here} is not inside a scipion-kg project; "
                    "pass --project DIR or run 'scipion-kg init DIR'"
                )
            root = found
        return cls(root, _read_config(root / CONTROL_DIR / CONFIG_FILE))

    @classmethod
    def find_optional(cls, start: Path) -> Project | None:
        """The project containing ``start``, or None outside any project."""
        found = _find_root(start.resolve())
        return cls(found, _read_config(found / CONTROL_DIR / CONFIG_FILE)) if found is not None else None

    @contextmanager
    def open_store(self, *, write: bool = False) -> Iterator[Store]:
        """Open the project's store; writing the embedded store takes the project's write lock."""
        if self.store_config.endpoint is not None:
            endpoint = EndpointStore(
                self.store_config.endpoint, self.store_config.update_endpoint, read_only=not write
            )
            try:
                yield endpoint
            finally:
                endpoint.close()
            return
        if not write:
            if not self.store_path.exists():
                raise ProjectError(f"project {self.root} has no store at {self.store_path}")
            store = OxigraphStore(self.store_path, read_only=True)
            try:
                yield store
            finally:
                store.close()
            return
        with (
            WriteLock(self.control_dir / "write.lock", self.root),
            store_access(self.control_dir / STORE_LOCK, exclusive=True),
        ):
            store = OxigraphStore(self.store_path)
            try:
                yield store
            finally:
                store.close()

    def relative_path(self, path: Path) -> str:
        """A file's path relative to the project root ('/'-separated), or its absolute path if outside."""
        resolved = path.resolve()
        try:
            return resolved.relative_to(self.root).as_posix()
        except ValueError:
            return resolved.as_posix()

    def resolve_path(self, recorded: str) -> Path:
        """The file a recorded path names (relative paths are relative to the project root)."""
        path = Path(recorded)
        return path if path.is_absolute() else self.root / path

    def close(self) -> None:
        if self._hash_cache is not None:
            self._hash_cache.close()
            self._hash_cache = None


def _find_root(start: Path) -> Path | None:
    for candidate in (start, *start.parents):
        if (candidate / CONTROL_DIR / CONFIG_FILE).is_file():
            return candidate
    return None


def _read_config(path: Path) -> StoreConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ProjectError(f"{path}: unreadable project configuration: {error}") from error
    if not isinstance(data, dict) or data.get("scipion_kg_project") != LAYOUT_VERSION:
        raise ProjectError(f"{path}: not a layout-version {LAYOUT_VERSION} scipion-kg project configuration")
    store = data.get("store")
    if not isinstance(store, dict):
        raise ProjectError(f"{path}: field 'store' is missing")
    return StoreConfig.from_json(store, path)


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
