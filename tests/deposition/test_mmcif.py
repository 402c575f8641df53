"""mmCIF rendering and validation: a hand-filled deposition against the PDBx dictionary, the verdicts
on EMDB's own example files."""

from __future__ import annotations

import re
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from gemmi import cif

from scipion_kg.deposition.map_header import em_map_row
from scipion_kg.deposition.mmcif import mmcif_report, render_mmcif, validate_mmcif
from scipion_kg.deposition.model import Deposition, Evidence, FieldValue

# Verdicts of `gemmi validate` with the v5.362 dictionary, as the EMDB corpus README states them.
EXAMPLE_VERDICTS = [
    ("EMD-0000_cif_emdb_translator.cif", False),
    ("emd-0000_tests-emdb.cif", True),
    ("emd-0001_translated_from_xml.cif", False),
    ("emharvest_EPU_SPA_dep.cif", True),
    ("emharvest_tomo_dep.cif", False),
    ("json_to_mmcif_SPA_data.cif", True),
    ("json_to_mmcif_TOMO_data.cif", False),
]

EVIDENCE = Evidence("metadata", "test metadata")


@pytest.fixture
def dictionary(shared_data: Path) -> Path:
    return shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"


def _small_map(path: Path) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.linspace(-1, 2, 6 * 6 * 6, dtype=np.float32).reshape(6, 6, 6))
        mrc.voxel_size = 1.06
    return path


def _deposition(tmp_path: Path) -> Deposition:
    deposition = Deposition(entry_id="EMD-99999")
    entry = deposition.entry_id
    rows: dict[str, list[dict[str, FieldValue]]] = {
        "em_entity_assembly": [
            {
                "id": "1",
                "parent_id": 0,
                "name": "Spike glycoprotein with nanobody",
                "source": "RECOMBINANT",
                "type": "COMPLEX",
            },
        ],
        "em_experiment": [
            {
                "entry_id": entry,
                "id": "1",
                "reconstruction_method": "SINGLE PARTICLE",
                "aggregation_state": "PARTICLE",
                "entity_assembly_id": "1",
            },
        ],
        "em_specimen": [
            {
                "id": "1",
                "experiment_id": "1",
                "embedding_applied": False,
                "shadowing_applied": False,
                "staining_applied": False,
                "vitrification_applied": True,
            },
        ],
        "em_imaging": [
            {
                "entry_id": entry,
                "id": "1",
                "specimen_id": "1",
                "microscope_model": "TFS KRIOS",
                "illumination_mode": "FLOOD BEAM",
                "mode": "BRIGHT FIELD",
                "electron_source": "FIELD EMISSION GUN",
                "accelerating_voltage": 300,
                "nominal_cs": 2.7,
                "nominal_defocus_min": 800.0,
                "nominal_defocus_max": 2500.0,
            },
        ],
        "em_image_recording": [
            {
                "id": "1",
                "imaging_id": "1",
                "film_or_detector_model": "GATAN K3 (6k x 4k)",
                "avg_electron_dose_per_image": 50.5,
                "detector_mode": "COUNTING",
            },
        ],
        "em_image_processing": [{"id": "1", "image_recording_id": "1"}],
        "em_software": [
            {
                "id": "1",
                "name": "RELION",
                "version": "3.1.2",
                "category": "RECONSTRUCTION",
                "image_processing_id": "1",
            },
            {
                "id": "2",
                "name": "CTFFIND",
                "version": "4.1.14",
                "category": "CTF CORRECTION",
                "image_processing_id": "1",
                "details": "per-micrograph 'defocus' fit\nthen refined",
            },
        ],
        "em_ctf_correction": [
            {"id": "1", "em_image_processing_id": "1", "type": "PHASE FLIPPING AND AMPLITUDE CORRECTION"},
        ],
        "em_3d_reconstruction": [
            {
                "entry_id": entry,
                "id": "1",
                "image_processing_id": "1",
                "num_particles": 396910,
                "resolution": 2.93,
                "resolution_method": "FSC 0.143 CUT-OFF",
                "symmetry_type": "POINT",
                "algorithm": "FOURIER SPACE",
                "actual_pixel_size": 1.06,
            },
        ],
        "em_motion_correction": [{"id": "1", "image_processing_id": "1", "type": "MICROGRAPH PATCHES"}],
    }
    for category, category_rows in rows.items():
        for row in category_rows:
            deposition.add_row(category, row, EVIDENCE)
    for index, (kind, name) in enumerate([("primary map", "map.mrc"), ("half map", "half_1.mrc")], 1):
        values = em_map_row(_small_map(tmp_path / name), kind, file_name=name, contour_level=0.5)
        deposition.add_row("em_map", {"id": str(index), "entry_id": entry, **values}, EVIDENCE)
    return deposition


def _expected_text(value: FieldValue) -> str:
    """How the value reads back from CIF, worked out without the renderer."""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)


def test_rendered_deposition_reads_back_with_the_same_values(tmp_path: Path) -> None:
    deposition = _deposition(tmp_path)
    text = render_mmcif(deposition)
    block = cif.read_string(text).sole_block()
    assert block.name == "EMD-99999"
    assert block.find_value("_entry.id") == "EMD-99999"
    for category, index, item, found in deposition.fields():
        column = block.find_values(f"_{category}.{item}")
        assert len(column) == len(deposition.rows(category)), (category, item)
        written = cif.as_string(column[index])
        if isinstance(found.value, float):
            assert float(written) == found.value, (category, item)
        else:
            assert written == _expected_text(found.value), (category, item)
    # Integers stay integers and whole floats lose their '.0'.
    assert re.search(r"^_em_imaging\.accelerating_voltage\s+300$", text, re.MULTILINE)
    assert re.search(r"^_em_imaging\.nominal_defocus_min\s+800$", text, re.MULTILINE)
    assert ".0 " not in text and not re.search(r"\.0$", text, re.MULTILINE)
    assert render_mmcif(_deposition(tmp_path)) == text


def test_rendered_deposition_is_valid_but_for_newer_tags(tmp_path: Path, dictionary: Path) -> None:
    text = render_mmcif(_deposition(tmp_path))
    errors, notes = mmcif_report(text, dictionary)
    assert errors == []
    assert sorted(re.findall(r"unknown tag (\S+)", " ".join(notes))) == [
        "_em_motion_correction.id",
        "_em_motion_correction.image_processing_id",
        "_em_motion_correction.type",
    ]
    assert validate_mmcif(text, dictionary) == []


@pytest.mark.parametrize(
    ("category", "item", "value", "words"),
    [
        (
            "em_imaging",
            "illumination_mode",
            "PARALLEL",
            "_em_imaging.illumination_mode: PARALLEL is not one of",
        ),
        ("em_3d_reconstruction", "symmetry_type", "C1", "C1 is not one of the allowed values: POINT"),
        ("em_map", "contour_level_source", "EMDB", "EMDB is not one of the allowed values: author"),
        ("em_map", "size_kb", 0, "0 does not match the positive_int regex"),
        ("em_imaging", "electron_gun", "FEG", "unknown tag _em_imaging.electron_gun"),
    ],
)
def test_wrong_values_are_reported(
    tmp_path: Path, dictionary: Path, category: str, item: str, value: FieldValue, words: str
) -> None:
    deposition = _deposition(tmp_path)
    deposition.set(category, item, value, EVIDENCE)
    errors = validate_mmcif(render_mmcif(deposition), dictionary)
    assert len(errors) == 1 and words in errors[0], errors


def test_missing_key_is_an_error_unless_only_gemmi_s_verdict_is_asked(
    tmp_path: Path, dictionary: Path
) -> None:
    deposition = _deposition(tmp_path)
    del deposition.categories["em_imaging"][0]["id"]
    text = render_mmcif(deposition)
    errors, _ = mmcif_report(text, dictionary)
    assert any("missing mandatory tag: _em_imaging.id" in e for e in errors)
    assert mmcif_report(text, dictionary, require_mandatory=False)[0] == []


@pytest.mark.parametrize(("name", "passes"), EXAMPLE_VERDICTS)
def test_example_files_get_the_readme_verdicts(
    shared_data: Path, dictionary: Path, name: str, passes: bool
) -> None:
    path = shared_data / "emdb" / "mmcif" / name
    errors, _ = mmcif_report(path.read_text(), dictionary, source=name, require_mandatory=False)
    assert (errors == []) is passes, errors
    assert all(e.startswith(name) or e.startswith("[") for e in errors)


def test_harvester_output_lacks_the_keys_the_notes_mention(shared_data: Path, dictionary: Path) -> None:
    path = shared_data / "emdb" / "mmcif" / "emharvest_EPU_SPA_dep.cif"
    errors, notes = mmcif_report(path.read_text(), dictionary)
    assert any("missing mandatory tag: _em_imaging.id" in e for e in errors)
    assert any("_em_imaging.objective_aperture" in n for n in notes)
