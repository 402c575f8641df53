"""Filling the deposition from a recorded project: every value against what the test recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mrcfile
import pytest

from scipion_kg.deposition.from_graph import (
    GraphDeposition,
    deposition_from_graph,
    fill_from_graph,
    normalise_point_group,
)
from scipion_kg.deposition.fsc import masked_half_map_fsc
from scipion_kg.deposition.halfmaps import prove_half_maps
from scipion_kg.deposition.mmcif import mmcif_report, render_mmcif
from scipion_kg.deposition.model import Deposition
from scipion_kg.errors import DepositionError
from scipion_kg.project import Project
from scipion_kg.recorder import Recorder, Software
from scipion_kg.store import Store

from .recorded_spa import (
    ACQUISITION,
    BOX,
    COUNTS,
    POSTPROCESS_RESOLUTION,
    SOFTWARE,
    VOXEL,
    RecordedSPA,
    record_refinement,
    record_spa,
)

RELION = SOFTWARE["refine"].version


@pytest.fixture
def spa(project: Project, store: Store) -> RecordedSPA:
    return record_spa(project, store)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecordedSPA, GraphDeposition]]:
    """One recorded project and its filled deposition, shared by the tests that only read them."""
    project = Project.init(tmp_path_factory.mktemp("spa") / "project")
    with project.open_store(write=True) as store:
        spa = record_spa(project, store)
        map_iri = spa.entities["postprocess_map"]
        yield spa, fill_from_graph(store, project, map_iri, prove_half_maps(store, project, map_iri))
    project.close()


@pytest.fixture
def filled(recorded: tuple[RecordedSPA, GraphDeposition]) -> GraphDeposition:
    return recorded[1]


@pytest.fixture
def recorded_spa(recorded: tuple[RecordedSPA, GraphDeposition]) -> RecordedSPA:
    return recorded[0]


def _rows(deposition: Deposition, category: str) -> list[dict[str, object]]:
    return [{item: found.value for item, found in row.items()} for row in deposition.rows(category)]


def test_software_rows_one_per_program_version_and_category(
    filled: GraphDeposition, recorded_spa: RecordedSPA
) -> None:
    rows = _rows(filled.deposition, "em_software")
    assert {(row["name"], row["version"], row["category"]) for row in rows} == {
        ("MotionCor2", "1.6.4", "OTHER"),
        ("CTFFIND", "4.1.14", "CTF CORRECTION"),
        ("crYOLO", "1.9.6", "PARTICLE SELECTION"),
        ("RELION", RELION, "CLASSIFICATION"),
        ("RELION", RELION, "INITIAL EULER ASSIGNMENT"),
        ("RELION", RELION, "FINAL EULER ASSIGNMENT"),
        ("RELION", RELION, "RECONSTRUCTION"),
        ("RELION", RELION, "MASKING"),
    }
    assert len(rows) == 8
    assert sorted(int(str(row["id"])) for row in rows) == list(range(1, 9))
    assert {row["image_processing_id"] for row in rows} == {"1"}
    motion = next(row for row in rows if row["category"] == "OTHER")
    assert "motion correction" in str(motion["details"])
    by_category = {
        row["category"].value: index for index, row in enumerate(filled.deposition.rows("em_software"))
    }
    for category, run in (
        ("CTF CORRECTION", "ctf"),
        ("PARTICLE SELECTION", "pick"),
        ("MASKING", "postprocess"),
    ):
        evidence = filled.deposition.get("em_software", "name", by_category[category])
        assert evidence is not None and evidence.evidence.run == recorded_spa.runs[run]


@pytest.mark.parametrize(
    ("category", "item", "expected", "run", "entity"),
    [
        ("em_particle_selection", "num_particles_selected", COUNTS["picked"], "pick", "coordinates"),
        ("em_3d_reconstruction", "num_particles", COUNTS["refined"], "refine", "refine_map"),
        ("em_single_particle_entity", "point_symmetry", "D2", "refine", "refine_map"),
        ("em_3d_reconstruction", "symmetry_type", "POINT", "refine", "refine_map"),
        ("em_imaging", "accelerating_voltage", int(ACQUISITION["voltage"]), "import", "movies"),
        ("em_imaging", "nominal_cs", ACQUISITION["cs"], "import", "movies"),
        (
            "em_image_recording",
            "avg_electron_dose_per_image",
            ACQUISITION["dose_per_frame"] * ACQUISITION["frames"],
            "import",
            "movies",
        ),
        ("em_image_recording", "num_real_images", COUNTS["movies"], "import", "movies"),
        ("em_motion_correction", "type", "MICROGRAPH PATCHES", "motion", "micrographs"),
        ("em_final_classification", "num_classes", COUNTS["classes"], "class2d", "class_averages"),
    ],
)
def test_values_from_recorded_outputs(
    filled: GraphDeposition,
    recorded_spa: RecordedSPA,
    category: str,
    item: str,
    expected: object,
    run: str,
    entity: str,
) -> None:
    found = filled.deposition.get(category, item)
    assert found is not None, f"{category}.{item} not filled"
    assert found.value == expected
    assert type(found.value) is type(expected)
    assert found.evidence.run == recorded_spa.runs[run]
    assert found.evidence.entity == recorded_spa.entities[entity]


@pytest.mark.parametrize(
    ("category", "item", "expected", "run"),
    [
        ("em_3d_reconstruction", "algorithm", "FOURIER SPACE", "refine"),
        ("em_3d_reconstruction", "refinement_type", "HALF-MAPS REFINED INDEPENDENTLY", "refine"),
        ("em_ctf_correction", "type", "PHASE FLIPPING AND AMPLITUDE CORRECTION", "refine"),
        ("em_experiment", "reconstruction_method", "SINGLE PARTICLE", "refine"),
        ("em_experiment", "aggregation_state", "PARTICLE", "refine"),
        ("em_particle_selection", "method", "crYOLO general model", "pick"),
        ("em_start_model", "type", "INSILICO MODEL", "initial"),
    ],
)
def test_values_from_runs(
    filled: GraphDeposition, recorded_spa: RecordedSPA, category: str, item: str, expected: object, run: str
) -> None:
    found = filled.deposition.get(category, item)
    assert found is not None and found.value == expected
    assert found.evidence.run == recorded_spa.runs[run]


def test_angle_assignment_by_the_programs_that_ran(
    filled: GraphDeposition, recorded_spa: RecordedSPA
) -> None:
    rows = _rows(filled.deposition, "em_euler_angle_assignment")
    assert [(row["order"], row["type"]) for row in rows] == [
        ("INITIAL", "MAXIMUM LIKELIHOOD"),
        ("FINAL", "MAXIMUM LIKELIHOOD"),
    ]
    runs = [row["order"].evidence.run for row in filled.deposition.rows("em_euler_angle_assignment")]
    assert runs == [recorded_spa.runs["initial"], recorded_spa.runs["refine"]]


def test_resolution_recomputed_from_the_half_maps(filled: GraphDeposition, recorded_spa: RecordedSPA) -> None:
    # With a mask recorded beside the map, the resolution is the mask-corrected FSC of the half maps
    # (what post-processing reports); the unmasked value is quoted in the evidence.
    masked = masked_half_map_fsc(
        recorded_spa.files["refine_half_map_1"],
        recorded_spa.files["refine_half_map_2"],
        recorded_spa.files["mask"],
    )
    truth = masked.corrected
    expected = round(truth.resolution(0.143), 2)
    found = filled.deposition.get("em_3d_reconstruction", "resolution")
    assert found is not None and found.value == pytest.approx(expected, abs=0.005)
    assert found.value != POSTPROCESS_RESOLUTION
    assert 2 * VOXEL <= float(found.value) < BOX * VOXEL
    assert filled.deposition.value("em_3d_reconstruction", "resolution_method") == "FSC 0.143 CUT-OFF"
    evidence = found.evidence
    assert evidence.kind == "computed" and evidence.run == recorded_spa.runs["refine"]
    for half in ("refine_half_map_1", "refine_half_map_2"):
        assert recorded_spa.files[half].relative_to(recorded_spa.project.root).as_posix() in evidence.text
    assert f"recorded {POSTPROCESS_RESOLUTION} Å" in evidence.text
    assert f"unmasked FSC: {masked.unmasked.resolution(0.143):.2f} Å" in evidence.text
    assert filled.sources.fsc.resolution(0.143) == pytest.approx(truth.resolution(0.143))


def test_pixel_size_and_map_rows_from_the_files(filled: GraphDeposition, recorded_spa: RecordedSPA) -> None:
    assert filled.deposition.value("em_3d_reconstruction", "actual_pixel_size") == pytest.approx(VOXEL)
    rows = filled.deposition.rows("em_map")
    assert [row["type"].value for row in rows] == ["primary map", "half map", "half map", "mask"]
    keys = ["postprocess_map", "refine_half_map_1", "refine_half_map_2", "postprocess_mask"]
    assert [row["type"].evidence.entity for row in rows] == [recorded_spa.entities[key] for key in keys]
    assert [row["id"].value for row in rows] == ["1", "2", "3", "4"]
    for row, key in zip(
        rows, ["postprocess_map", "refine_half_map_1", "refine_half_map_2", "mask"], strict=True
    ):
        with mrcfile.open(recorded_spa.files[key]) as mrc:
            assert row["statistics_maximum"].value == pytest.approx(float(mrc.data.max()), rel=1e-5)
        assert row["file"].value == recorded_spa.files[key].name
    assert (
        filled.sources.mask is not None
        and filled.sources.mask.iri == recorded_spa.entities["postprocess_mask"]
    )
    assert filled.sources.refinement_run == recorded_spa.runs["refine"]


def test_link_items(filled: GraphDeposition) -> None:
    deposition = filled.deposition
    assert deposition.value("em_experiment", "entity_assembly_id") == "1"
    assert deposition.value("em_image_processing", "image_recording_id") == "1"
    assert deposition.value("em_image_recording", "imaging_id") == "1"
    assert deposition.value("em_imaging", "id") == "1"
    for category in ("em_3d_reconstruction", "em_single_particle_entity", "em_experiment", "em_imaging"):
        assert deposition.value(category, "entry_id") == deposition.entry_id


def test_builtin_refinement_of_a_refined_map(spa: RecordedSPA, project: Project, store: Store) -> None:
    builtin = Software(
        "scipion-kg",
        "0.1.0",
        algorithm="gold-standard projection matching, CTF-corrected direct Fourier reconstruction",
    )
    record_refinement(Recorder(project, store), spa, "builtin", seed=3, symmetry="c1", software=builtin)
    map_iri = spa.entities["builtin_map"]
    result = fill_from_graph(store, project, map_iri, prove_half_maps(store, project, map_iri))
    deposition = result.deposition
    orders = {row["order"].value: row["type"].value for row in deposition.rows("em_euler_angle_assignment")}
    assert orders == {"INITIAL": "MAXIMUM LIKELIHOOD", "FINAL": "PROJECTION MATCHING"}
    assert deposition.value("em_3d_reconstruction", "algorithm") == "FOURIER SPACE"
    assert deposition.value("em_ctf_correction", "type") == "PHASE FLIPPING AND AMPLITUDE CORRECTION"
    assert deposition.value("em_single_particle_entity", "point_symmetry") == "C1"
    assert result.sources.mask is None
    assert [row["type"].value for row in deposition.rows("em_map")] == ["primary map", "half map", "half map"]
    categories = {(row["name"].value, row["category"].value) for row in deposition.rows("em_software")}
    assert ("scipion-kg", "FINAL EULER ASSIGNMENT") in categories
    assert ("RELION", "MASKING") not in categories  # the post-processing run is not upstream of this map


def test_a_proof_of_another_map_is_refused(spa: RecordedSPA, project: Project, store: Store) -> None:
    proof = prove_half_maps(store, project, spa.entities["refine_map"])
    with pytest.raises(DepositionError, match="proof given is for"):
        deposition_from_graph(store, project, spa.entities["postprocess_map"], proof)


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("C1", "C1"),
        ("c7", "C7"),
        (" d2 ", "D2"),
        ("D12", "D12"),
        ("T", "T"),
        ("o", "O"),
        ("I3", "I"),
        ("I", "I"),
    ],
)
def test_point_groups_as_emdb_writes_them(symbol: str, expected: str) -> None:
    assert normalise_point_group(symbol, "run R") == expected


@pytest.mark.parametrize("symbol", ["C0", "H", "helical", "P 21 21 21", "D", ""])
def test_point_groups_emdb_does_not_accept(symbol: str) -> None:
    with pytest.raises(DepositionError, match="run R"):
        normalise_point_group(symbol, "run R")


def test_filled_items_render_to_valid_mmcif(filled: GraphDeposition, shared_data: Path) -> None:
    dictionary = shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"
    errors, newer = mmcif_report(render_mmcif(filled.deposition), dictionary)
    # What is left is only what the user's metadata supplies (microscope and modes).
    user_items = ("_em_imaging.microscope_model", "_em_imaging.illumination_mode", "_em_imaging.mode")
    assert errors and all("missing mandatory" in e and e.endswith(user_items) for e in errors), errors
    assert all("em_motion_correction" in note for note in newer)


def test_a_store_without_the_ontology_is_refused(spa: RecordedSPA, project: Project, store: Store) -> None:
    from scipion_kg.graphs import remove_graph
    from scipion_kg.ontology_graph import ONTOLOGY_GRAPH

    map_iri = spa.entities["postprocess_map"]
    proof = prove_half_maps(store, project, map_iri)
    remove_graph(store, ONTOLOGY_GRAPH)
    with pytest.raises(DepositionError, match="no ontology graph"):
        deposition_from_graph(store, project, map_iri, proof)
