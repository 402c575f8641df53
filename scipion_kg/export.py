"""Lineage exports: text for people, JSON for programs, and PROV as Turtle, JSON-LD, PROV-JSON, PROV-N."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pyoxigraph as ox
from prov.model import PROV, PROV_ROLE, PROV_TYPE, ProvDocument

from .errors import LineageError
from .lineage import Lineage, _chunks
from .namespaces import ID, PREFIXES, SKG, UNIT, compact
from .queries import fill_query
from .store import Store

__all__ = ["EXPORT_FORMATS", "export_lineage", "lineage_triples", "to_prov_document", "to_text"]

EXPORT_FORMATS = ("text", "json", "turtle", "json-ld", "prov-json", "prov-n")

_PROV_NAMESPACES = {
    "skg": SKG,
    "unit": UNIT,
    "entity": ID + "entity/",
    "run": ID + "run/",
    "software": ID + "software/",
    "user": ID + "user/",
    "param": ID + "parameter/",
}


def lineage_triples(store: Store, lineage: Lineage) -> list[ox.Triple]:
    """The RDF triples describing every run and entity of a lineage."""
    triples: set[ox.Triple] = set()
    for chunk in _chunks([*lineage.entities, *lineage.runs]):
        triples.update(store.construct(fill_query("lineage-describe", nodes=chunk)))
    return sorted(triples, key=str)


def _short(iri: str) -> str:
    for prefix, base in _PROV_NAMESPACES.items():
        if iri.startswith(base):
            return f"{prefix}:{iri[len(base) :]}"
    return compact(iri)


def _prov_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def to_prov_document(lineage: Lineage) -> ProvDocument:
    """The lineage as a ``prov`` package document (serialisable to PROV-JSON, PROV-N, PROV-XML)."""
    document = ProvDocument()
    for prefix, base in _PROV_NAMESPACES.items():
        document.add_namespace(prefix, base)

    def name(iri: str) -> Any:
        """A PROV qualified name (not a string literal) for an IRI under a declared namespace."""
        return document.valid_qualified_name(_short(iri))

    for entity in sorted(lineage.entities.values(), key=lambda e: e.iri):
        attributes: list[tuple[Any, Any]] = [(PROV_TYPE, name(c)) for c in entity.classes]
        if entity.sha256:
            attributes.append(("skg:sha256", entity.sha256))
        if entity.size is not None:
            attributes.append(("skg:byteSize", entity.size))
        attributes += [("skg:filePath", path) for path in entity.paths]
        attributes += [("skg:hasFormat", name(fmt)) for fmt in entity.formats]
        document.entity(_short(entity.iri), attributes)
    agents: set[str] = set()
    for run in lineage.runs_in_order():
        attributes = [(PROV_TYPE, name(run.step)), ("skg:runStatus", name(run.status))]
        if run.host:
            attributes.append(("skg:hostName", run.host))
        if run.error:
            attributes.append(("skg:errorMessage", run.error))
        for parameter in run.parameters:
            value = (
                parameter.value
                if isinstance(parameter.value, str | int | float | bool)
                else json.dumps(parameter.value)
            )
            attributes.append((f"param:{parameter.name}", value))
            if parameter.unit:
                attributes.append((f"param:{parameter.name}.unit", name(parameter.unit)))
        activity = document.activity(
            _short(run.iri), _prov_time(run.started), _prov_time(run.ended), attributes
        )
        for software in run.software:
            agent = _short(software["agent"] or "")
            if agent not in agents:
                agents.add(agent)
                document.agent(
                    agent,
                    [
                        (PROV_TYPE, PROV["SoftwareAgent"]),
                        ("skg:softwareName", software["name"] or ""),
                        ("skg:softwareVersion", software["version"] or ""),
                    ],
                )
            document.wasAssociatedWith(activity, agent)
        if run.user:
            agent = f"user:{run.user}"
            if agent not in agents:
                agents.add(agent)
                document.agent(agent, [(PROV_TYPE, PROV["Person"])])
            document.wasAssociatedWith(activity, agent)
        for used, role in run.used:
            document.used(activity, _short(used), other_attributes=[(PROV_ROLE, role)] if role else None)
        for generated, role in run.generated:
            document.wasGeneratedBy(
                _short(generated),
                activity,
                _prov_time(run.ended),
                other_attributes=[(PROV_ROLE, role)] if role else None,
            )
    return document


def to_text(lineage: Lineage) -> str:
    out = io.StringIO()
    root = lineage.entities.get(lineage.root)
    where = f" ({root.paths[0]})" if root and root.paths else ""
    out.write(f"{lineage.direction.capitalize()} lineage of {compact(lineage.root)}{where}\n")
    out.write(f"{len(lineage.runs)} runs, {len(lineage.entities)} entities\n")

    def describe(iri: str) -> str:
        node = lineage.entities.get(iri)
        if node is None:
            return compact(iri)
        path = node.paths[0] if node.paths else compact(iri)
        return f"{path} (sha256 {node.sha256[:12] if node.sha256 else '?'}, {node.size} bytes)"

    for run in lineage.runs_in_order():
        out.write(f"\n{compact(run.step)}  {compact(run.status)}  {run.started} -> {run.ended or '?'}\n")
        out.write(f"  run {run.iri}\n")
        if run.user or run.host:
            out.write(f"  by {run.user or '?'} on {run.host or '?'}\n")
        for software in run.software:
            algorithm = f" ({software['algorithm']})" if software.get("algorithm") else ""
            out.write(f"  software {software['name']} {software['version']}{algorithm}\n")
        for parameter in run.parameters:
            unit = f" {compact(parameter.unit)}" if parameter.unit else ""
            out.write(f"  parameter {parameter.name} = {parameter.value!r}{unit}\n")
        for entity, role in run.used:
            out.write(f"  used      {role or '-'}: {describe(entity)}\n")
        for entity, role in run.generated:
            out.write(f"  generated {role or '-'}: {describe(entity)}\n")
        if run.error:
            out.write(f"  error: {run.error}\n")
    return out.getvalue()


def export_lineage(store: Store, lineage: Lineage, format: str) -> str:
    """Render a lineage in one of :data:`EXPORT_FORMATS`."""
    if format == "text":
        return to_text(lineage)
    if format == "json":
        return json.dumps(asdict(lineage), indent=2, sort_keys=True, default=str) + "\n"
    if format in ("turtle", "json-ld"):
        rdf_format = ox.RdfFormat.TURTLE if format == "turtle" else ox.RdfFormat.JSON_LD
        data = ox.serialize(
            lineage_triples(store, lineage),
            format=rdf_format,
            prefixes=PREFIXES if format == "turtle" else None,
        )
        assert data is not None
        return data.decode("utf-8")
    if format == "prov-json":
        return str(to_prov_document(lineage).serialize(format="json", indent=2)) + "\n"
    if format == "prov-n":
        return str(to_prov_document(lineage).get_provn()) + "\n"
    raise LineageError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
