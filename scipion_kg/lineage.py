"""Lineage: the upstream closure of an entity (every run and entity it was derived from) and the
downstream closure (everything derived from it), with parameters, agents and hashes.

The SPARQL lives in ``scipion_kg/queries/*.rq``; this module fills in IRIs and assembles the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal as TypingLiteral

from .errors import LineageError
from .namespaces import SKG, compact, entity_iri, expand
from .project import Project
from .queries import fill_query, iri_term
from .store import Row, Store
from .terms import IRI, Lit, Term

__all__ = [
    "Direction",
    "EntityNode",
    "Lineage",
    "ParameterNode",
    "RunNode",
    "closure",
    "lineage",
    "resolve_target",
]

Direction = TypingLiteral["upstream", "downstream"]
_VALUES_CHUNK = 2000


@dataclass
class ParameterNode:
    name: str
    value: object
    unit: str | None
    significant: bool


@dataclass
class RunNode:
    iri: str
    step: str = ""
    status: str = ""
    started: str = ""
    ended: str | None = None
    host: str | None = None
    user: str | None = None
    command_line: str | None = None
    directory: str | None = None
    error: str | None = None
    parameters: list[ParameterNode] = field(default_factory=list)
    software: list[dict[str, str | None]] = field(default_factory=list)
    used: list[tuple[str, str | None]] = field(default_factory=list)
    generated: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class EntityNode:
    iri: str
    sha256: str | None = None
    size: int | None = None
    classes: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    generated_by: list[str] = field(default_factory=list)


@dataclass
class Lineage:
    root: str
    direction: Direction
    entities: dict[str, EntityNode]
    runs: dict[str, RunNode]

    def runs_in_order(self) -> list[RunNode]:
        return sorted(self.runs.values(), key=lambda run: (run.started, run.iri))


def closure(
    store: Store, root: str, direction: Direction = "upstream"
) -> tuple[set[str], dict[str, set[str]]]:
    """The entities of the closure (root included) and, for each, the runs that generated it."""
    query = fill_query(f"{direction}-closure", root=iri_term(root))
    entities: set[str] = set()
    generated_by: dict[str, set[str]] = {}
    for row in store.select(query):
        entity = row.get("entity")
        if not isinstance(entity, IRI):
            continue
        entities.add(entity)
        run = row.get("run")
        if isinstance(run, IRI):
            generated_by.setdefault(entity, set()).add(run)
    return entities, generated_by


def _chunks(items: Iterable[str]) -> Iterable[str]:
    ordered = sorted(items)
    for start in range(0, len(ordered), _VALUES_CHUNK):
        yield " ".join(iri_term(item) for item in ordered[start : start + _VALUES_CHUNK])


def _select_for(store: Store, query: str, key: str, items: Iterable[str]) -> list[Row]:
    rows: list[Row] = []
    for chunk in _chunks(items):
        rows.extend(store.select(fill_query(query, **{key: chunk})))
    return rows


def _text(row: Row, name: str) -> str | None:
    value = row.get(name)
    return str(value) if value is not None else None


def lineage(store: Store, root: str, direction: Direction = "upstream") -> Lineage:
    """The closure of ``root`` with every run's parameters, software, inputs and outputs."""
    if not store.ask(f"ASK {{ {iri_term(root)} ?p ?o }}"):
        raise LineageError(f"{compact(root)} is not recorded in this store")
    entity_iris, generated_by = closure(store, root, direction)
    if direction == "upstream":
        run_iris = {run for runs in generated_by.values() for run in runs}
    else:
        # Downstream runs are those that used an entity of the closure (failed ones included); the run
        # that made the root itself is upstream, not downstream.
        run_iris = {str(row["run"]) for row in _select_for(store, "run-usages-of", "entities", entity_iris)}
    entities = {iri: EntityNode(iri, generated_by=sorted(generated_by.get(iri, ()))) for iri in entity_iris}
    runs = {iri: RunNode(iri) for iri in run_iris}
    for row in _select_for(store, "entity-details", "entities", entity_iris):
        node = entities[str(row["entity"])]
        node.sha256 = _text(row, "sha256")
        size = row.get("size")
        node.size = int(size.lexical) if isinstance(size, Lit) else None
        for key, bucket in (("class", node.classes), ("format", node.formats), ("path", node.paths)):
            value = _text(row, key)
            if value is not None and value not in bucket:
                bucket.append(value)
    for row in _select_for(store, "run-details", "runs", run_iris):
        run = runs[str(row["run"])]
        step = _text(row, "step")
        if step and step != SKG + "ProcessingStep":
            run.step = step
        run.status = _text(row, "status") or ""
        run.started = _text(row, "started") or ""
        run.ended = _text(row, "ended")
        run.host = _text(row, "host")
        run.user = _text(row, "user")
        run.command_line = _text(row, "command")
        run.directory = _text(row, "directory")
        run.error = _text(row, "error")
    for row in _select_for(store, "run-parameters", "runs", run_iris):
        parameter_value: Term | None = row.get("value")
        significant = row.get("significant")
        runs[str(row["run"])].parameters.append(
            ParameterNode(
                name=str(row["name"]),
                value=parameter_value.to_python() if isinstance(parameter_value, Lit) else parameter_value,
                unit=_text(row, "unit"),
                significant=not isinstance(significant, Lit) or significant.to_python() is True,
            )
        )
    for row in _select_for(store, "run-software", "runs", run_iris):
        runs[str(row["run"])].software.append(
            {
                "agent": _text(row, "agent"),
                "name": _text(row, "name"),
                "version": _text(row, "version"),
                "algorithm": _text(row, "algorithm"),
            }
        )
    for query, attribute in (("run-usages", "used"), ("run-generations", "generated")):
        for row in _select_for(store, query, "runs", run_iris):
            getattr(runs[str(row["run"])], attribute).append((str(row["entity"]), _text(row, "role")))
    for run in runs.values():
        run.parameters.sort(key=lambda parameter: parameter.name)
        run.software.sort(key=lambda software: (software["name"] or "", software["version"] or ""))
        run.used.sort()
        run.generated.sort()
    return Lineage(root, direction, entities, runs)


def resolve_target(project: Project, store: Store, target: str) -> str:
    """The entity IRI a user names by file path, IRI or prefixed name."""
    if target.startswith(("http://", "https://", "urn:")) or (":" in target and not Path(target).exists()):
        iri = expand(target)
        if not store.ask(f"ASK {{ {iri_term(iri)} ?p ?o }}"):
            raise LineageError(f"{target} is not recorded in project {project.root}")
        return iri
    path = Path(target)
    if not path.is_file():
        raise LineageError(f"{target}: no such file, and not an IRI")
    digest = project.hash_cache.digest(path)
    iri = entity_iri(digest.sha256)
    if store.ask(f"ASK {{ {iri_term(iri)} ?p ?o }}"):
        return iri
    relative = project.relative_path(path)
    recorded = store.select(fill_query("entity-by-path", path=Lit(relative).n3()))
    if recorded:
        raise LineageError(
            f"{target} has changed since it was recorded (now sha256 {digest.sha256}; the project knows "
            f"other content at this path: {', '.join(compact(str(r['entity'])) for r in recorded)})"
        )
    raise LineageError(f"{target} (sha256 {digest.sha256}) is not recorded in project {project.root}")
