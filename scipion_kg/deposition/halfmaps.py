"""The half-map proof: a map's two half maps come unmodified from one refinement run upstream of it.

EMDB requires the two unfiltered, unmasked half maps of the refinement that gave the map, in the map's box
and frame. The proof reads the provenance graph and the files:

- a map made by a post-processing run: its half maps are that run's inputs with roles ``half_map_1`` and
  ``half_map_2``; a map made by a refinement or reconstruction run: that run's outputs with those roles;
- one run generated both half maps, and it is a refinement or reconstruction run upstream of the map;
- every file still hashes to the sha256 recorded when it was made (hashed afresh, not through the cache);
- each half map has the map's box, voxel size and origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DepositionError
from ..hashing import hash_file
from ..namespaces import SKG, compact, expand
from ..project import Project
from ..queries import fill_query, iri_term
from ..store import Store
from ..terms import IRI
from ..vocabulary import vocabulary
from .map_header import MapGeometry, map_geometry, same_frame

__all__ = [
    "HALF_MAP_ROLES",
    "RECONSTRUCTION_STEPS",
    "HalfMapProof",
    "ProvedFile",
    "RecordedEntity",
    "prove_half_maps",
    "recorded_entity",
    "run_label",
    "sparql_query",
    "verify_file",
]

HALF_MAP_ROLES = ("half_map_1", "half_map_2")
# Steps whose outputs are half maps of their own (gold-standard refinement, reconstruction from halves).
RECONSTRUCTION_STEPS = (SKG + "Refinement3D", SKG + "Reconstruction", SKG + "SubtomogramAveraging")


def sparql_query(name: str, **iris: Iterable[str] | str) -> str:
    """The query ``<name>.rq`` with each ``{{key}}`` replaced by the IRI (or IRIs) given for it."""
    values = {}
    for key, value in iris.items():
        items = [value] if isinstance(value, str) else sorted(value)
        values[key] = " ".join(iri_term(item) for item in items)
    return fill_query(name, **values)


def run_label(run: str, step: str | None = None) -> str:
    """A short name for a run: ``Refinement3D-891ad5db001a`` (its step and signature prefix)."""
    signature = run.rstrip("/").rsplit("/", 1)[-1][:12]
    return f"{expand(step).rsplit('#', 1)[-1]}-{signature}" if step else compact(run)


@dataclass(frozen=True)
class RecordedEntity:
    """What the graph records about a file: sha256, paths (project-relative) and data classes."""

    iri: str
    sha256: str
    paths: tuple[str, ...]
    classes: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.paths[0] if self.paths else compact(self.iri)


@dataclass(frozen=True)
class ProvedFile:
    """A recorded file found unchanged on disk."""

    iri: str
    path: str  # as recorded, relative to the project root
    file: Path  # where it is on disk now
    sha256: str


@dataclass(frozen=True)
class HalfMapProof:
    """The map, its two half maps, the run that made them, and each check done, in plain words.

    ``mask`` is the mask the run that made the map generated or used (post-processing), proven unchanged
    too; None when that run recorded none.
    """

    map: ProvedFile
    half_maps: tuple[ProvedFile, ProvedFile]
    refinement_run: str
    map_run: str
    mask: ProvedFile | None = None
    checks: tuple[str, ...] = field(default=())

    @property
    def run(self) -> str:
        """The refinement run that generated both half maps (same as ``refinement_run``)."""
        return self.refinement_run


@dataclass(frozen=True)
class _Generation:
    entity: str
    run: str
    step: str
    role: str | None


def recorded_entity(store: Store, iri: str) -> RecordedEntity:
    """The recorded hash, paths and classes of one entity; DepositionError if the store lacks it."""
    rows = store.select(sparql_query("entity-details", entities=iri))
    if not rows:
        raise DepositionError(f"{compact(iri)} is not a file recorded in this project's provenance")
    paths: list[str] = []
    classes: list[str] = []
    for row in rows:
        for key, bucket in (("path", paths), ("class", classes)):
            value = row.get(key)
            if value is not None and str(value) not in bucket:
                bucket.append(str(value))
    return RecordedEntity(iri, str(rows[0]["sha256"]), tuple(sorted(paths)), tuple(sorted(classes)))


def _generations(store: Store, entities: Sequence[str]) -> list[_Generation]:
    found = []
    for row in store.select(sparql_query("deposition-generators", entities=entities)):
        if str(row["status"]) != SKG + "Succeeded":
            continue
        role = row.get("role")
        found.append(
            _Generation(str(row["entity"]), str(row["run"]), str(row["step"]), str(role) if role else None)
        )
    return sorted(found, key=lambda g: (g.run, g.role or ""))


def _role_entities(store: Store, query: str, run: str) -> dict[str, list[str]]:
    by_role: dict[str, list[str]] = {}
    for row in store.select(sparql_query(query, runs=run)):
        role = row.get("role")
        if role is not None and isinstance(row.get("entity"), IRI):
            by_role.setdefault(str(role), []).append(str(row["entity"]))
    return by_role


def verify_file(project: Project, entity: RecordedEntity, what: str, recorded_by: str) -> ProvedFile:
    """The file of ``entity`` on disk, hashed afresh; DepositionError if it changed or is gone."""
    changed: list[tuple[str, str]] = []
    for path in entity.paths:
        location = project.resolve_path(path)
        if not location.is_file():
            continue
        now = hash_file(location).sha256  # no cache: a rewrite that kept size and mtime is still caught
        if now == entity.sha256:
            return ProvedFile(entity.iri, path, location, entity.sha256)
        changed.append((path, now))
    if changed:
        path, now = changed[0]
        raise DepositionError(
            f"{what} {path} has changed since run {recorded_by} recorded it "
            f"(sha256 {entity.sha256} recorded, now {now}); restore the file or run the step again"
        )
    where = ", ".join(entity.paths) or "no recorded path"
    raise DepositionError(f"{what} of run {recorded_by} is no longer on disk ({where})")


def _is_a(step: str, ancestors: Iterable[str]) -> bool:
    vocab = vocabulary()
    return any(vocab.is_subclass(step, ancestor) for ancestor in ancestors)


def _single(by_role: dict[str, list[str]], role: str, run_text: str, kind: str) -> str:
    entities = sorted(set(by_role.get(role, [])))
    if len(entities) != 1:
        found = "none" if not entities else f"{len(entities)} files"
        raise DepositionError(
            f"run {run_text} recorded {found} as {kind} with role {role!r}; exactly one half map per role "
            f"({', '.join(HALF_MAP_ROLES)}) is needed"
        )
    return entities[0]


def _half_maps_of(store: Store, generation: _Generation) -> tuple[str, str, str]:
    """(half map 1, half map 2, how they were found) for the run that made the map."""
    run_text = run_label(generation.run, generation.step)
    if _is_a(generation.step, (SKG + "PostProcessing",)):
        used = _role_entities(store, "run-usages", generation.run)
        first, second = (_single(used, role, run_text, "an input") for role in HALF_MAP_ROLES)
        return first, second, f"the half maps are the inputs {' and '.join(HALF_MAP_ROLES)} of run {run_text}"
    if _is_a(generation.step, RECONSTRUCTION_STEPS):
        made = _role_entities(store, "run-generations", generation.run)
        first, second = (_single(made, role, run_text, "an output") for role in HALF_MAP_ROLES)
        return (
            first,
            second,
            f"the half maps are the outputs {' and '.join(HALF_MAP_ROLES)} of run {run_text}",
        )
    raise DepositionError(f"run {run_text} ({compact(generation.step)}) makes no half maps")


def _map_generation(store: Store, map_entity: RecordedEntity) -> _Generation:
    generations = _generations(store, [map_entity.iri])
    if not generations:
        raise DepositionError(
            f"map {map_entity.label} has no recorded lineage: no recorded run generated it; deposit a map "
            "made by a recorded refinement or post-processing run"
        )
    computed = [g for g in generations if not _is_a(g.step, (SKG + "Import",))]
    if not computed:
        importer = generations[0]
        raise DepositionError(
            f"map {map_entity.label} has no recorded lineage: it was imported by run "
            f"{run_label(importer.run, importer.step)}, not computed by a recorded refinement or "
            "post-processing run, so its half maps cannot be proven"
        )
    for generation in computed:
        if _is_a(generation.step, (SKG + "PostProcessing", *RECONSTRUCTION_STEPS)):
            return generation
    other = computed[0]
    raise DepositionError(
        f"map {map_entity.label} was generated by run {run_label(other.run, other.step)} "
        f"({compact(other.step)}), which is neither a post-processing nor a refinement or reconstruction "
        "run; deposit the map such a run made"
    )


def _half_map_run(store: Store, halves: tuple[RecordedEntity, RecordedEntity]) -> _Generation:
    """The one run that generated half map 1 as ``half_map_1`` and half map 2 as ``half_map_2``."""
    makers: list[list[_Generation]] = []
    for number, (half, role) in enumerate(zip(halves, HALF_MAP_ROLES, strict=True), start=1):
        made = [g for g in _generations(store, [half.iri]) if g.role == role]
        if not made:
            raise DepositionError(
                f"half map {number} {half.label} was not generated by any recorded run as {role!r}"
            )
        makers.append(made)
    common = sorted({g.run for g in makers[0]} & {g.run for g in makers[1]})
    if not common:
        first, second = makers[0][0], makers[1][0]
        raise DepositionError(
            f"half map 2 {halves[1].label} was generated by run {run_label(second.run, second.step)}, "
            f"not by {run_label(first.run, first.step)} which made half map 1 {halves[0].label}; both "
            "half maps must come from the same refinement"
        )
    return next(g for g in makers[0] if g.run == common[0])


def _check_frame(
    what: str, path: str, geometry: MapGeometry, map_path: str, map_geometry_: MapGeometry
) -> None:
    differences = same_frame(map_geometry_, geometry)
    if differences:
        raise DepositionError(
            f"{what} {path} is not in the frame of map {map_path}: {'; '.join(differences)}; EMDB needs "
            "half maps with the map's box, voxel size and origin"
        )


def _mask(store: Store, project: Project, generation: _Generation) -> ProvedFile | None:
    """The mask the map's run generated (or else used), checked on disk; None if it recorded none."""
    vocab = vocabulary()
    run_text = run_label(generation.run, generation.step)
    for query in ("run-generations", "run-usages"):
        candidates = sorted(
            {e for entities in _role_entities(store, query, generation.run).values() for e in entities}
        )
        for iri in candidates:
            entity = recorded_entity(store, iri)
            if any(vocab.is_subclass(found, SKG + "Mask") for found in entity.classes):
                return verify_file(project, entity, "mask", run_text)
    return None


def prove_half_maps(store: Store, project: Project, map_iri: str) -> HalfMapProof:
    """Prove which two half maps belong to ``map_iri`` (see the module docstring); DepositionError if
    any check fails, naming the file or run at fault."""
    map_entity = recorded_entity(store, map_iri)
    made_map = _map_generation(store, map_entity)
    map_run_text = run_label(made_map.run, made_map.step)
    checks = [f"map {map_entity.label} was generated by run {map_run_text} ({compact(made_map.step)})"]
    first_iri, second_iri, how = _half_maps_of(store, made_map)
    checks.append(how)
    if first_iri == second_iri:
        raise DepositionError(
            f"half map 1 and half map 2 of run {map_run_text} are the same file content "
            f"({compact(first_iri)}); two independent half maps are needed"
        )
    halves = (recorded_entity(store, first_iri), recorded_entity(store, second_iri))
    refinement = _half_map_run(store, halves)
    refinement_text = run_label(refinement.run, refinement.step)
    if not _is_a(refinement.step, RECONSTRUCTION_STEPS):
        raise DepositionError(
            f"the half maps were generated by run {refinement_text} ({compact(refinement.step)}), which is "
            "not a refinement or reconstruction run"
        )
    checks.append(
        f"both half maps were generated by run {refinement_text} ({compact(refinement.step)}) "
        f"with roles {' and '.join(HALF_MAP_ROLES)}"
    )
    upstream = sparql_query("deposition-upstream-run", entity=map_iri, run=refinement.run)
    if not store.ask(upstream):
        raise DepositionError(
            f"run {refinement_text}, which made the half maps, is not upstream of map {map_entity.label}"
        )
    checks.append(f"run {refinement_text} is upstream of the map")
    proved_map = verify_file(project, map_entity, "map", map_run_text)
    proved_halves = tuple(
        verify_file(project, half, f"half map {number}", refinement_text)
        for number, half in enumerate(halves, start=1)
    )
    for proved, what in ((proved_map, "map"), *zip(proved_halves, ("half map 1", "half map 2"), strict=True)):
        checks.append(f"{what} {proved.path} still has the recorded sha256 {proved.sha256}")
    frame = map_geometry(proved_map.file)
    for number, half in enumerate(proved_halves, start=1):
        _check_frame(f"half map {number}", half.path, map_geometry(half.file), proved_map.path, frame)
    checks.append("both half maps have the map's box, voxel size and origin")
    mask = _mask(store, project, made_map)
    if mask is not None:
        checks.append(f"mask {mask.path} of run {map_run_text} still has the recorded sha256 {mask.sha256}")
    return HalfMapProof(
        map=proved_map,
        half_maps=(proved_halves[0], proved_halves[1]),
        refinement_run=refinement.run,
        map_run=made_map.run,
        mask=mask,
        checks=tuple(checks),
    )
