"""SPARQL queries of the core, one ``.rq`` file each, loaded by name."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_query"]


@cache
def load_query(name: str) -> str:
    """Return the text of ``<name>.rq`` shipped in this package."""
    return resources.files(__name__).joinpath(f"{name}.rq").read_text(encoding="utf-8")
