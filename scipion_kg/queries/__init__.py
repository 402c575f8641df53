"""SPARQL queries of the core, one ``.rq`` file each, loaded by name."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ..errors import LineageError

__all__ = ["fill_query", "iri_term", "load_query"]

_UNSAFE_IRI = re.compile(r'[\s<>"{}|^`\\]')


@cache
def load_query(name: str) -> str:
    """Return the text of ``<name>.rq`` shipped in this package."""
    return resources.files(__name__).joinpath(f"{name}.rq").read_text(encoding="utf-8")


def fill_query(name: str, **values: str) -> str:
    """``<name>.rq`` with each ``{{key}}`` replaced by its value (already SPARQL syntax: see iri_term)."""
    text = load_query(name)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def iri_term(iri: str) -> str:
    """``<iri>`` for a query; a string that could break out of the IRI is refused."""
    if _UNSAFE_IRI.search(iri):
        raise LineageError(f"{iri!r} is not a valid IRI")
    return f"<{iri}>"
