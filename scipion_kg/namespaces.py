"""IRIs of the vocabularies scipion-kg writes and of the instance data it mints."""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = [
    "DCTERMS",
    "ID",
    "OWL",
    "PREFIXES",
    "PROV",
    "QUDT",
    "RDF",
    "RDFS",
    "SKG",
    "SKOS",
    "UNIT",
    "XSD",
    "compact",
    "entity_iri",
    "expand",
    "ledger_graph_iri",
    "role_iri",
    "run_iri",
    "sha256_of_entity_iri",
    "software_iri",
    "user_iri",
]

SKG = "https://w3id.org/scipion-kg/ontology#"
ID = "https://w3id.org/scipion-kg/id/"
PROV = "http://www.w3.org/ns/prov#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
DCTERMS = "http://purl.org/dc/terms/"
QUDT = "http://qudt.org/schema/qudt/"
UNIT = "http://qudt.org/vocab/unit/"

PREFIXES: dict[str, str] = {
    "skg": SKG,
    "prov": PROV,
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "xsd": XSD,
    "skos": SKOS,
    "dcterms": DCTERMS,
    "qudt": QUDT,
    "unit": UNIT,
}

_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTITY_PREFIX = ID + "entity/sha256-"


def expand(term: str) -> str:
    """Expand ``prefix:local`` with the known prefixes; full IRIs pass through unchanged."""
    if "://" in term or term.startswith("urn:"):
        return term
    prefix, sep, local = term.partition(":")
    if sep and prefix in PREFIXES:
        return PREFIXES[prefix] + local
    # A bare name is taken as a term of the scipion-kg ontology.
    if not sep:
        return SKG + term
    return term


def compact(iri: str) -> str:
    """Return ``prefix:local`` for IRIs under a known prefix, else the IRI itself."""
    for prefix, base in PREFIXES.items():
        if iri.startswith(base) and len(iri) > len(base):
            return f"{prefix}:{iri[len(base) :]}"
    return iri


def entity_iri(sha256: str) -> str:
    """A file or table entity is named by its content hash (DESIGN.md decision 3)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lowercase hexadecimal SHA-256: {sha256!r}")
    return _ENTITY_PREFIX + sha256


def sha256_of_entity_iri(iri: str) -> str | None:
    """The content hash an entity IRI was minted from, or None for other IRIs."""
    if iri.startswith(_ENTITY_PREFIX):
        digest = iri[len(_ENTITY_PREFIX) :]
        if _SHA256.fullmatch(digest):
            return digest
    return None


def run_iri(signature: str) -> str:
    """A run is named by the hash of its step type, significant parameters and input hashes."""
    return f"{ID}run/{signature}"


def software_iri(name: str, version: str, algorithm: str | None = None) -> str:
    """A program at a version; built-in programs are told apart by the algorithm they run."""
    base = f"{ID}software/{quote(name, safe='')}/{quote(version, safe='')}"
    return f"{base}/{quote(algorithm, safe='')}" if algorithm else base


def user_iri(name: str) -> str:
    return f"{ID}user/{quote(name, safe='')}"


def role_iri(role: str) -> str:
    return f"{ID}role/{quote(role, safe='')}"


def ledger_graph_iri() -> str:
    """The named graph where ingest keeps which bundle (and which version of it) each graph holds."""
    return f"{ID}ledger"
