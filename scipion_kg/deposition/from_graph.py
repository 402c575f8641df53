"""Filling the deposition from the provenance graph: every ``em_*`` item the recorded runs can give.

Each value carries its evidence: the run, parameter or file it came from, or ``computed`` for what the
deposition computes itself (the resolution from the FSC of the two half maps).

The ``_em_software.category`` of a step's software comes from the ontology: the ``skg:emSoftwareCategory``
annotations of the step class or its superclasses (query ``deposition-software-categories``). PDBx 5.362
has no category for motion correction, so motion-correction software is listed as ``OTHER`` with details
(``_UNANNOTATED_CATEGORIES`` below).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DepositionError
from ..lineage import EntityNode, Lineage, RunNode, lineage
from ..namespaces import SKG
from ..project import Project
from ..queries import load_query
from ..store import Store
from ..terms import Lit
from ..vocabulary import Vocabulary, vocabulary
from .fsc import FSCCurve, half_map_fsc, masked_half_map_fsc
from .halfmaps import HalfMapProof, ProvedFile, run_label, sparql_query
from .map_header import em_map_row, map_geometry
from .model import Deposition, Evidence, FieldValue

__all__ = [
    "FSC_THRESHOLD",
    "DepositionSources",
    "GraphDeposition",
    "deposition_from_graph",
    "fill_from_graph",
    "normalise_point_group",
]

FSC_THRESHOLD = 0.143
RESOLUTION_METHOD = "FSC 0.143 CUT-OFF"
_CHUNK = 1000

# Step classes the ontology gives no _em_software.category, and what PDBx 5.362 offers for them.
_UNANNOTATED_CATEGORIES = {SKG + "MotionCorrection": "OTHER"}
# _em_euler_angle_assignment.type by the program that assigned the angles (lower-case name).
_ANGLE_ASSIGNMENT_BY_SOFTWARE = {
    "relion": "MAXIMUM LIKELIHOOD",
    "cryosparc": "MAXIMUM LIKELIHOOD",
    "scipion-kg": "PROJECTION MATCHING",
}
# Programs whose 3D reconstruction is a direct Fourier inversion (lower-case name).
_FOURIER_RECONSTRUCTION_SOFTWARE = {"relion", "cryosparc"}
_CTF_FULL = "PHASE FLIPPING AND AMPLITUDE CORRECTION"
# skg:motionCorrectionType values -> _em_motion_correction.type (EMDB XSD 3.0.11 motion_correction/type).
_MOTION_CORRECTION_TYPES = {
    "whole frame": "WHOLE MICROGRAPH",
    "whole micrograph": "WHOLE MICROGRAPH",
    "global": "WHOLE MICROGRAPH",
    "patch": "MICROGRAPH PATCHES",
    "patches": "MICROGRAPH PATCHES",
    "local": "MICROGRAPH PATCHES",
    "per particle": "PER PARTICLE",
    "none": "NONE",
}
_POINT_GROUP = re.compile(r"(?P<family>[CD])(?P<order>[1-9][0-9]*)|(?P<cubic>[TOI])[1-5]?")


@dataclass(frozen=True)
class DepositionSources:
    """The files the deposition package is made of, each proven unchanged, and the recomputed FSC."""

    map: ProvedFile
    half_maps: tuple[ProvedFile, ProvedFile]
    mask: ProvedFile | None
    fsc: FSCCurve
    refinement_run: str


@dataclass(frozen=True)
class GraphDeposition:
    deposition: Deposition
    sources: DepositionSources


def normalise_point_group(symbol: str, where: str) -> str:
    """``c1`` -> ``C1``, ``I3`` -> ``I``: the point group as EMDB writes it (C\\d+, D\\d+, T, O, I)."""
    match = _POINT_GROUP.fullmatch(symbol.strip().upper())
    if match is None:
        raise DepositionError(
            f"symmetry {symbol!r} of {where} is not a point group EMDB accepts (Cn, Dn, T, O or I)"
        )
    return match["cubic"] or f"{match['family']}{int(match['order'])}"


def _plain(value: object) -> object:
    return value.to_python() if isinstance(value, Lit) else value


@dataclass
class _Upstream:
    """The upstream lineage of the map with the set-level values recorded about every output."""

    lineage: Lineage
    entities: dict[str, EntityNode]  # the closure and every other output of its runs
    properties: dict[str, dict[str, object]]
    vocab: Vocabulary

    def label(self, step: str) -> str:
        return self.vocab.labels.get(step, step.rsplit("#", 1)[-1])

    def runs(self, *steps: str) -> list[RunNode]:
        """Runs of these step classes (or their subclasses), oldest first."""
        return [
            run
            for run in self.lineage.runs_in_order()
            if run.step and any(self.vocab.is_subclass(run.step, step) for step in steps)
        ]

    def latest(self, *steps: str) -> RunNode | None:
        found = self.runs(*steps)
        return found[-1] if found else None

    def outputs(self, run: RunNode, role: str | None = None) -> list[str]:
        return sorted({entity for entity, found in run.generated if role is None or found == role})

    def value(self, entity: str, name: str) -> object | None:
        return self.properties.get(entity, {}).get(name)

    def first_value(self, run: RunNode, name: str) -> tuple[str, object] | None:
        """(entity, value) of the first output of ``run`` that states ``skg:<name>``."""
        for entity in self.outputs(run):
            found = self.value(entity, name)
            if found is not None:
                return entity, found
        return None

    def path(self, entity: str) -> str:
        node = self.entities.get(entity)
        return node.paths[0] if node is not None and node.paths else entity

    def classes(self, entity: str) -> list[str]:
        node = self.entities.get(entity)
        return node.classes if node is not None else []

    def is_a(self, entity: str, data_class: str) -> bool:
        return any(self.vocab.is_subclass(found, data_class) for found in self.classes(entity))

    def run_text(self, run: RunNode) -> str:
        return run_label(run.iri, run.step)


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(items)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _upstream(store: Store, map_iri: str) -> _Upstream:
    graph = lineage(store, map_iri)
    entities = dict(graph.entities)
    outputs = {e for run in graph.runs.values() for e, _ in run.generated}
    for chunk in _chunks(outputs - set(entities)):
        for row in store.select(sparql_query("entity-details", entities=chunk)):
            node = entities.setdefault(str(row["entity"]), EntityNode(str(row["entity"])))
            for key, bucket in (("class", node.classes), ("path", node.paths)):
                value = row.get(key)
                if value is not None and str(value) not in bucket:
                    bucket.append(str(value))
    properties: dict[str, dict[str, object]] = {}
    for chunk in _chunks(entities):
        for row in store.select(sparql_query("deposition-entity-properties", entities=chunk)):
            name = str(row["property"]).rsplit("#", 1)[-1]
            properties.setdefault(str(row["entity"]), {})[name] = _plain(row["value"])
    return _Upstream(graph, entities, properties, vocabulary())


def _categories(store: Store, steps: Iterable[str]) -> dict[str, list[str]]:
    if not store.ask(load_query("deposition-ontology-loaded")):
        raise DepositionError(
            "the store of this project holds no ontology graph (no skg:emSoftwareCategory); load it with "
            "'scipion-kg ingest' and prepare the deposition again"
        )
    found: dict[str, list[str]] = {}
    step_list = sorted(set(steps))
    if step_list:
        for row in store.select(sparql_query("deposition-software-categories", steps=step_list)):
            found.setdefault(str(row["step"]), []).append(str(row["category"]))
    return {step: sorted(categories) for step, categories in found.items()}


class _Filler:
    """Fills one deposition from the upstream lineage of a proven map."""

    def __init__(self, store: Store, project: Project, proof: HalfMapProof, entry_id: str) -> None:
        self.store = store
        self.project = project
        self.proof = proof
        self.up = _upstream(store, proof.map.iri)
        self.deposition = Deposition(method="SINGLE PARTICLE", entry_id=entry_id)
        self.fsc_note = ""
        refinement = self.up.lineage.runs.get(proof.refinement_run)
        if refinement is None:
            raise DepositionError(f"run {run_label(proof.refinement_run)} is not upstream of the map")
        self.refinement = refinement

    # -- helpers --------------------------------------------------------------------------------------
    def set(self, category: str, item: str, value: FieldValue, evidence: Evidence, row: int = 0) -> None:
        self.deposition.set(category, item, value, evidence, row)

    def run_evidence(self, run: RunNode, text: str) -> Evidence:
        return Evidence("run", f"{text} (run {self.up.run_text(run)})", run=run.iri)

    def entity_evidence(self, run: RunNode, entity: str, text: str) -> Evidence:
        return Evidence(
            "run",
            f"{text}: {self.up.path(entity)} from run {self.up.run_text(run)}",
            run=run.iri,
            entity=entity,
        )

    def parameter_evidence(self, run: RunNode, name: str, text: str) -> Evidence:
        return Evidence(
            "parameter",
            f"{text}: parameter {name} of run {self.up.run_text(run)}",
            run=run.iri,
            parameter=name,
        )

    @staticmethod
    def parameter(run: RunNode, name: str) -> object | None:
        return next((p.value for p in run.parameters if p.name == name), None)

    @staticmethod
    def software_names(run: RunNode) -> list[str]:
        return [(software["name"] or "").lower() for software in run.software]

    # -- categories -----------------------------------------------------------------------------------
    def links(self) -> None:
        entry = self.deposition.entry_id
        link = Evidence.default("key linking the single image processing, imaging and sample rows")
        refinement = self.refinement
        self.deposition.add_row(
            "em_experiment",
            {"entry_id": entry, "id": "1", "entity_assembly_id": "1"},
            link,
        )
        method = self.run_evidence(refinement, "single-particle workflow: particle images refined into a map")
        self.set("em_experiment", "reconstruction_method", self.deposition.method, method)
        self.set("em_experiment", "aggregation_state", "PARTICLE", method)
        self.deposition.add_row("em_image_processing", {"id": "1", "image_recording_id": "1"}, link)
        self.deposition.add_row("em_imaging", {"entry_id": entry, "id": "1", "specimen_id": "1"}, link)
        self.deposition.add_row("em_image_recording", {"id": "1", "imaging_id": "1"}, link)

    def software(self) -> None:
        runs = self.up.lineage.runs_in_order()
        categories = _categories(self.store, (run.step for run in runs if run.step))
        rows: dict[tuple[str, str, str], tuple[list[str], RunNode]] = {}
        for run in runs:
            step_categories = categories.get(run.step) or (
                [_UNANNOTATED_CATEGORIES[run.step]] if run.step in _UNANNOTATED_CATEGORIES else []
            )
            for software in run.software:
                name, version = software["name"] or "", software["version"] or ""
                detail = self.up.label(run.step)
                if software["algorithm"]:
                    detail += f": {software['algorithm']}"
                for category in step_categories:
                    details, _ = rows.setdefault((name, version, category), ([], run))
                    if detail not in details:
                        details.append(detail)
        for index, ((name, version, category), (details, run)) in enumerate(rows.items(), start=1):
            self.deposition.add_row(
                "em_software",
                {
                    "id": str(index),
                    "name": name,
                    "version": version,
                    "category": category,
                    "image_processing_id": "1",
                    "details": "; ".join(details),
                },
                self.run_evidence(run, f"{name} {version} ran the {self.up.label(run.step)} step"),
            )

    def particle_selection(self) -> None:
        picking = self.up.latest(SKG + "ParticlePicking")
        if picking is None:
            return
        outputs = sorted(self.up.outputs(picking), key=lambda e: not self.up.is_a(e, SKG + "CoordinateSet"))
        counted = next((e for e in outputs if self.up.value(e, "itemCount") is not None), None)
        link = Evidence.default("key of the particle selection of image processing 1")
        self.deposition.add_row("em_particle_selection", {"id": "1", "image_processing_id": "1"}, link)
        if counted is not None:
            self.set(
                "em_particle_selection",
                "num_particles_selected",
                int(str(self.up.value(counted, "itemCount"))),
                self.entity_evidence(picking, counted, "particles picked"),
            )
        algorithms = [s["algorithm"] for s in picking.software if s["algorithm"]]
        if algorithms:
            self.set(
                "em_particle_selection",
                "method",
                "; ".join(sorted(set(algorithms))),
                self.run_evidence(picking, "picking algorithm"),
            )

    def reconstruction(self, curve: FSCCurve) -> None:
        refinement = self.refinement
        up = self.up
        entry = self.deposition.entry_id
        link = Evidence.default("keys of the final reconstruction of image processing 1")
        self.deposition.add_row(
            "em_3d_reconstruction", {"entry_id": entry, "id": "1", "image_processing_id": "1"}, link
        )
        self.deposition.add_row(
            "em_single_particle_entity", {"entry_id": entry, "id": "1", "image_processing_id": "1"}, link
        )
        maps = [e for e in up.outputs(refinement, "map")] or up.outputs(refinement)
        used = next((e for e in maps if up.value(e, "numberOfParticlesUsed") is not None), None)
        if used is not None:
            self.set(
                "em_3d_reconstruction",
                "num_particles",
                int(str(up.value(used, "numberOfParticlesUsed"))),
                self.entity_evidence(refinement, used, "particles used in the map"),
            )
        else:
            particles = next(
                (e for e in up.outputs(refinement, "particles") if up.value(e, "itemCount") is not None), None
            )
            if particles is not None:
                self.set(
                    "em_3d_reconstruction",
                    "num_particles",
                    int(str(up.value(particles, "itemCount"))),
                    self.entity_evidence(refinement, particles, "particles in the refined particle set"),
                )
        self.symmetry(refinement, maps)
        if self.fourier_reconstruction(refinement):
            self.set(
                "em_3d_reconstruction",
                "algorithm",
                "FOURIER SPACE",
                self.run_evidence(refinement, "the map was reconstructed by direct Fourier inversion"),
            )
        if up.vocab.is_subclass(refinement.step, SKG + "Refinement3D"):
            self.set(
                "em_3d_reconstruction",
                "refinement_type",
                "HALF-MAPS REFINED INDEPENDENTLY",
                self.run_evidence(refinement, "gold-standard refinement: two half maps refined apart"),
            )
        self.resolution(curve)
        geometry = map_geometry(self.proof.map.file)
        self.set(
            "em_3d_reconstruction",
            "actual_pixel_size",
            round(float(geometry.voxel_size[0]), 6),
            Evidence("file", f"voxel size in the header of {self.proof.map.path}", entity=self.proof.map.iri),
        )

    def fourier_reconstruction(self, run: RunNode) -> bool:
        algorithms = " ".join((s["algorithm"] or "").lower() for s in run.software)
        return "fourier" in algorithms or bool(
            set(self.software_names(run)) & _FOURIER_RECONSTRUCTION_SOFTWARE
        )

    def symmetry(self, refinement: RunNode, maps: list[str]) -> None:
        stated = next((e for e in maps if self.up.value(e, "pointGroup") is not None), None)
        if stated is not None:
            symbol = str(self.up.value(stated, "pointGroup"))
            evidence = self.entity_evidence(refinement, stated, "symmetry applied to the map")
        elif self.parameter(refinement, "symmetry") is not None:
            symbol = str(self.parameter(refinement, "symmetry"))
            evidence = self.parameter_evidence(refinement, "symmetry", "symmetry applied in the refinement")
        else:
            return
        point_group = normalise_point_group(symbol, f"run {self.up.run_text(refinement)}")
        self.set("em_3d_reconstruction", "symmetry_type", "POINT", evidence)
        self.set("em_single_particle_entity", "point_symmetry", point_group, evidence)

    def resolution(self, curve: FSCCurve) -> None:
        halves = self.proof.half_maps
        value = round(float(curve.resolution(FSC_THRESHOLD)), 2)
        text = (
            f"resolution {value:.2f} Å: FSC {FSC_THRESHOLD} of half maps {halves[0].path} and "
            f"{halves[1].path} {self.fsc_note}, computed by this deposition; "
            f"run {self.up.run_text(self.refinement)} generated them"
        )
        recorded = []
        for run in self.up.lineage.runs_in_order():
            if run.iri not in (self.proof.map_run, self.refinement.iri):
                continue
            for entity in self.up.outputs(run):
                stated = self.up.value(entity, "resolution")
                if stated is not None and self.up.is_a(entity, SKG + "Map"):
                    recorded.append(
                        f"run {self.up.run_text(run)} recorded {stated} Å for {self.up.path(entity)}"
                    )
        if recorded:
            text += f" (for comparison: {'; '.join(recorded)})"
        evidence = Evidence("computed", text, run=self.refinement.iri, entity=self.proof.map.iri)
        self.set("em_3d_reconstruction", "resolution", value, evidence)
        self.set("em_3d_reconstruction", "resolution_method", RESOLUTION_METHOD, evidence)

    def angle_assignment(self) -> None:
        refinement = self.refinement
        initial = self.up.latest(SKG + "InitialModel")
        # A start model made from a reference does not assign angles: the refinement's first rounds do.
        if initial is not None and any("reference" in (role or "") for _, role in initial.used):
            initial = None
        for index, (order, run) in enumerate((("INITIAL", initial or refinement), ("FINAL", refinement)), 1):
            kind = self.angle_type(run)
            if kind is None:
                continue
            self.deposition.add_row(
                "em_euler_angle_assignment",
                {"id": str(index), "image_processing_id": "1", "order": order, "type": kind},
                self.run_evidence(run, f"{order.lower()} angles assigned by {self.program(run)}"),
            )

    def program(self, run: RunNode) -> str:
        return ", ".join(f"{s['name']} {s['version']}" for s in run.software) or "an unrecorded program"

    def angle_type(self, run: RunNode) -> str | None:
        algorithms = " ".join((s["algorithm"] or "").lower() for s in run.software)
        if "projection matching" in algorithms:
            return "PROJECTION MATCHING"
        if "maximum likelihood" in algorithms or "maximum-likelihood" in algorithms:
            return "MAXIMUM LIKELIHOOD"
        for name in self.software_names(run):
            if name in _ANGLE_ASSIGNMENT_BY_SOFTWARE:
                return _ANGLE_ASSIGNMENT_BY_SOFTWARE[name]
        return None

    def ctf_correction(self) -> None:
        refinement = self.refinement
        stated = self.parameter(refinement, "ctf")
        evidence: Evidence | None = None
        kind = None
        if isinstance(stated, bool):
            kind = _CTF_FULL if stated else "NONE"
            evidence = self.parameter_evidence(refinement, "ctf", "CTF correction in the reconstruction")
        else:
            algorithms = " ".join((s["algorithm"] or "").lower() for s in refinement.software)
            ctf_estimated = self.up.latest(SKG + "CTFEstimation") is not None
            if "ctf-corrected" in algorithms or "ctf corrected" in algorithms:
                kind = _CTF_FULL
                evidence = self.run_evidence(
                    refinement, "the reconstruction corrects the CTF (Wiener filter)"
                )
            elif ctf_estimated and set(self.software_names(refinement)) & _FOURIER_RECONSTRUCTION_SOFTWARE:
                kind = _CTF_FULL
                evidence = self.run_evidence(
                    refinement, "the refinement corrects the CTF of particles that carry CTF parameters"
                )
        link = Evidence.default("keys of the CTF correction of image processing 1")
        self.deposition.add_row("em_ctf_correction", {"id": "1", "em_image_processing_id": "1"}, link)
        if kind is not None and evidence is not None:
            self.set("em_ctf_correction", "type", kind, evidence)
        contrast = self.acquisition_value("amplitudeContrast")
        if contrast is not None:
            run, entity, value = contrast
            self.set(
                "em_ctf_correction",
                "details",
                f"amplitude contrast {value}",
                self.entity_evidence(run, entity, "amplitude contrast of the CTF model"),
            )

    def motion_correction(self) -> None:
        motion = self.up.latest(SKG + "MotionCorrection")
        if motion is None:
            return
        found = self.up.first_value(motion, "motionCorrectionType")
        if found is None:
            return
        entity, stated = found
        kind = _MOTION_CORRECTION_TYPES.get(str(stated).strip().lower())
        if kind is None:
            raise DepositionError(
                f"motion correction type {stated!r} recorded for {self.up.path(entity)} is not one of "
                f"{', '.join(sorted(_MOTION_CORRECTION_TYPES))}"
            )
        evidence = self.entity_evidence(motion, entity, f"motion corrected as {stated!r}")
        self.deposition.add_row(
            "em_motion_correction", {"id": "1", "image_processing_id": "1", "type": kind}, evidence
        )

    def start_model(self) -> None:
        initial = self.up.latest(SKG + "InitialModel")
        if initial is None:
            return
        values: dict[str, FieldValue] = {"id": "1", "image_processing_id": "1"}
        models = [e for e, _ in initial.used if self.up.is_a(e, SKG + "AtomicModel")]
        maps = [e for e, _ in initial.used if self.up.is_a(e, SKG + "Map")]
        if models or maps:
            source = models[0] if models else maps[0]
            kind = "atomic model" if models else "map"
            values |= {
                "type": "OTHER",
                "other": f"computed from the {kind} {Path(self.up.path(source)).name}",
            }
        else:
            algorithms = "; ".join(s["algorithm"] or "" for s in initial.software if s["algorithm"])
            values |= {"type": "INSILICO MODEL", "insilico_model": algorithms or self.up.label(initial.step)}
        self.deposition.add_row("em_start_model", values, self.run_evidence(initial, "start model"))

    def final_classification(self) -> None:
        classification = self.up.latest(SKG + "Classification2D")
        if classification is None:
            return
        counts = [
            (int(str(self.up.value(e, "numberOfClasses"))), e)
            for e in self.up.outputs(classification)
            if self.up.value(e, "numberOfClasses") is not None
        ]
        if counts:
            # The class averages hold every class; a selection output holds fewer.
            number, entity = max(counts)
            evidence = self.entity_evidence(classification, entity, "classes of the final 2D classification")
        elif isinstance(self.parameter(classification, "classes"), int):
            number = int(str(self.parameter(classification, "classes")))
            evidence = self.parameter_evidence(classification, "classes", "classes asked for")
        else:
            return
        self.deposition.add_row(
            "em_final_classification",
            {"id": "1", "image_processing_id": "1", "type": "2D", "num_classes": number},
            evidence,
        )

    def imaging(self) -> None:
        voltage = self.acquisition_value("accelerationVoltage")
        if voltage is not None:
            run, entity, value = voltage
            kilovolts = float(str(value))
            if kilovolts > 1000:  # stated in volts
                kilovolts /= 1000
            self.set(
                "em_imaging",
                "accelerating_voltage",
                round(kilovolts),
                self.entity_evidence(run, entity, "acceleration voltage (kV)"),
            )
        cs = self.acquisition_value("sphericalAberration")
        if cs is not None:
            run, entity, value = cs
            self.set(
                "em_imaging",
                "nominal_cs",
                float(str(value)),
                self.entity_evidence(run, entity, "spherical aberration (mm)"),
            )
        self.image_recording()

    def acquisition_outputs(self) -> Iterator[tuple[RunNode, str]]:
        """(run, output) pairs, the movie imports' outputs first."""
        imports = self.up.runs(SKG + "Import")
        for run in (*imports, *(run for run in self.up.lineage.runs_in_order() if run not in imports)):
            for entity in self.up.outputs(run):
                yield run, entity

    def acquisition_value(self, name: str) -> tuple[RunNode, str, object] | None:
        """A value of the acquisition (voltage, Cs, ...) stated on the first output that has it."""
        for run, entity in self.acquisition_outputs():
            found = self.up.value(entity, name)
            if found is not None:
                return run, entity, found
        return None

    def image_recording(self) -> None:
        for run, entity in self.acquisition_outputs():
            per_frame = self.up.value(entity, "dosePerFrame")
            frames = self.up.value(entity, "numberOfFrames")
            if per_frame is not None and frames is not None:
                self.set(
                    "em_image_recording",
                    "avg_electron_dose_per_image",
                    round(float(str(per_frame)) * float(str(frames)), 3),
                    self.entity_evidence(run, entity, f"dose {per_frame} e/Å² per frame × {frames} frames"),
                )
                break
        movies = self.up.latest(SKG + "ImportMovies")
        if movies is not None:
            counted = next(
                (
                    e
                    for e in self.up.outputs(movies)
                    if self.up.is_a(e, SKG + "MovieSet") and self.up.value(e, "itemCount") is not None
                ),
                None,
            )
            if counted is not None:
                self.set(
                    "em_image_recording",
                    "num_real_images",
                    int(str(self.up.value(counted, "itemCount"))),
                    self.entity_evidence(movies, counted, "movies imported"),
                )

    def maps(self, mask: ProvedFile | None) -> None:
        entry = self.deposition.entry_id
        files: list[tuple[ProvedFile, str]] = [(self.proof.map, "primary map")]
        files += [(half, "half map") for half in self.proof.half_maps]
        if mask is not None:
            files.append((mask, "mask"))
        for index, (proved, kind) in enumerate(files, start=1):
            row = em_map_row(proved.file, kind, file_name=proved.file.name)
            self.deposition.add_row(
                "em_map",
                {**row, "id": str(index), "entry_id": entry},
                Evidence("file", f"header and data of {proved.path} ({kind})", entity=proved.iri),
            )


def fill_from_graph(
    store: Store, project: Project, map_iri: str, proof: HalfMapProof, *, entry_id: str = "EMD-0000"
) -> GraphDeposition:
    """The deposition items the graph gives for ``map_iri`` and the files of its package."""
    if proof.map.iri != map_iri:
        raise DepositionError(f"the half-map proof given is for {proof.map.path}, not for {map_iri}")
    filler = _Filler(store, project, proof, entry_id)
    halves = (proof.half_maps[0].file, proof.half_maps[1].file)
    if proof.mask is not None:
        # What depositors report and what post-processing computes: the FSC within the mask, corrected
        # for the mask's own correlation; the unmasked value is kept in the evidence.
        masked = masked_half_map_fsc(*halves, proof.mask.file)
        curve = masked.corrected
        filler.fsc_note = (
            f"within mask {proof.mask.path}, corrected for the mask by phase randomisation "
            f"(Chen et al. 2013); unmasked FSC: {masked.unmasked.resolution(FSC_THRESHOLD):.2f} Å"
        )
    else:
        curve = half_map_fsc(*halves)
        filler.fsc_note = "without a mask (no mask is recorded with the map)"
    filler.links()
    filler.software()
    filler.particle_selection()
    filler.reconstruction(curve)
    filler.angle_assignment()
    filler.ctf_correction()
    filler.motion_correction()
    filler.start_model()
    filler.final_classification()
    filler.imaging()
    filler.maps(proof.mask)
    sources = DepositionSources(proof.map, proof.half_maps, proof.mask, curve, proof.refinement_run)
    return GraphDeposition(filler.deposition, sources)


def deposition_from_graph(
    store: Store, project: Project, map_iri: str, proof: HalfMapProof, *, entry_id: str = "EMD-0000"
) -> Deposition:
    """Every ``em_*`` item the provenance of ``map_iri`` can give, each with its evidence."""
    return fill_from_graph(store, project, map_iri, proof, entry_id=entry_id).deposition
