"""URLs of entities and runs: the last segment of their IRI (``/entity/sha256-…``, ``/run/<signature>``).

Every entity and run the project records is named under ``https://w3id.org/scipion-kg/id/``; a token that
is not a plain segment is refused, so a URL can never name anything else.
"""

from __future__ import annotations

import re

from flask import abort

from scipion_kg.namespaces import ID

__all__ = ["entity_iri_of", "entity_iri_or_404", "entity_token", "run_iri_of", "run_iri_or_404", "run_token"]

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")
_ENTITY = ID + "entity/"
_RUN = ID + "run/"


def _token(iri: str, prefix: str) -> str | None:
    if not iri.startswith(prefix):
        return None
    token = iri[len(prefix) :]
    return token if _TOKEN.fullmatch(token) else None


def entity_token(iri: str) -> str | None:
    """The URL token of an entity IRI, or None if the IRI is not one of the project's entities."""
    return _token(iri, _ENTITY)


def run_token(iri: str) -> str | None:
    """The URL token of a run IRI, or None."""
    return _token(iri, _RUN)


def entity_iri_of(token: str) -> str | None:
    """The entity IRI a URL token names, or None when the token is malformed."""
    return _ENTITY + token if _TOKEN.fullmatch(token) else None


def run_iri_of(token: str) -> str | None:
    return _RUN + token if _TOKEN.fullmatch(token) else None


def entity_iri_or_404(token: str) -> str:
    """The entity IRI of a URL token; a malformed token ends the request with a 404 page."""
    iri = entity_iri_of(token)
    if iri is None:
        abort(404, description=f"{token!r} does not name an entity (expected sha256-<64 hex digits>)")
    return iri


def run_iri_or_404(token: str) -> str:
    """The run IRI of a URL token; a malformed token ends the request with a 404 page."""
    iri = run_iri_of(token)
    if iri is None:
        abort(404, description=f"{token!r} does not name a run (expected the run's signature)")
    return iri
