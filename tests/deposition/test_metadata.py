"""The user's metadata file: values in the right PDBx items and units, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import pytest
import yaml

from scipion_kg.deposition.metadata import load_metadata
from scipion_kg.deposition.model import Deposition, Evidence, FieldValue
from scipion_kg.errors import DepositionError

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "deposition-demo.yaml"
MODEL = REPOSITORY / "scipion_kg" / "data" / "models" / "1BD2-atoms.cif.gz"

MINIMAL = {
    "title": "A test entry",
    "authors": ["Doe, J.", {"name": "Roe, R.", "orcid": "0000-0002-1825-0097"}],
    "sample": {
        "name": "a complex",
        "supramolecules": [
            {"id": 1, "parent": 0, "source": "natural", "organism": "Homo sapiens", "ncbi_taxid": 9606},
        ],
    },
    "specimen": {"buffer": {"ph": 7.4}, "vitrification": {"cryogen": "ethane", "humidity_percent": 95}},
    "microscope": {"model": "Glacios", "nominal_defocus_min_um": 1.2, "nominal_defocus_max_um": 2.0},
    "detector": {"model": "Falcon 4i", "mode": "counting"},
}


def _write(tmp_path: Path, content: object, name: str = "metadata.yaml") -> Path:
    path = tmp_path / name
    text = json.dumps(content) if name.endswith(".json") else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _loaded(path: Path) -> Deposition:
    deposition = Deposition()
    load_metadata(path, deposition)
    return deposition


@pytest.mark.parametrize(
    ("category", "item", "row", "expected"),
    [
        ("em_imaging", "microscope_model", 0, "TFS KRIOS"),  # "Titan Krios G4": sold after the rename
        ("em_imaging", "nominal_defocus_min", 0, 800.0),  # 0.8 µm in nm
        ("em_imaging", "nominal_defocus_max", 0, 2500.0),
        ("em_imaging", "electron_source", 0, "FIELD EMISSION GUN"),
        ("em_imaging", "specimen_holder_model", 0, "FEI TITAN KRIOS AUTOGRID HOLDER"),
        ("em_image_recording", "film_or_detector_model", 0, "GATAN K3 BIOQUANTUM (6k x 4k)"),
        ("em_image_recording", "detector_mode", 0, "COUNTING"),
        ("em_buffer", "pH", 0, 7.5),
        ("em_buffer_component", "concentration", 1, 150.0),
        ("em_buffer_component", "concentration_units", 1, "mM"),
        ("em_vitrification", "instrument", 0, "FEI VITROBOT MARK IV"),
        ("em_vitrification", "cryogen_name", 0, "ETHANE"),
        ("em_vitrification", "humidity", 0, 100.0),
        ("em_vitrification", "chamber_temperature", 0, 277.0),
        ("em_sample_support", "grid_material", 0, "COPPER"),
        ("em_sample_support", "grid_mesh_size", 0, 300),
        ("em_support_film", "thickness", 0, 120.0),  # 12 nm in Å
        ("em_grid_pretreatment", "type", 0, "GLOW DISCHARGE"),
        ("em_specimen", "vitrification_applied", 0, "YES"),
        ("em_specimen", "staining_applied", 0, "NO"),
        ("em_entity_assembly", "parent_id", 0, 0),
        ("em_entity_assembly", "source", 3, "SYNTHETIC"),
        ("em_entity_assembly_naturalsource", "organism", 0, "Homo sapiens"),
        ("em_entity_assembly_naturalsource", "ncbi_tax_id", 0, 9606),
        ("em_entity_assembly_recombinant", "ncbi_tax_id", 0, 562),
        ("em_entity_assembly_molwt", "units", 0, "MEGADALTONS"),
        ("em_experiment", "aggregation_state", 0, "PARTICLE"),
        ("citation", "journal_abbrev", 0, "To Be Published"),
        ("citation", "unpublished_flag", 0, "Y"),
        ("citation_author", "name", 1, "Roe, R."),
        ("em_author_list", "author", 1, "Roe, R."),
        ("em_author_list", "ordinal", 1, 2),
        ("pdbx_audit_support", "funding_organization", 0, "Other private"),
    ],
)
def test_demo_values_land_in_the_right_items(
    category: str, item: str, row: int, expected: FieldValue
) -> None:
    assert _loaded(EXAMPLE).value(category, item, row) == expected


def test_demo_title_says_the_data_are_simulated() -> None:
    assert "simulated" in str(_loaded(EXAMPLE).value("em_admin", "title")).lower()


def test_demo_sample_matches_the_shipped_model() -> None:
    """The tree names the shipped 1BD2 chains: a 9-residue peptide, HLA-A2 + β2m, the TCR's two chains."""
    structure = gemmi.read_structure(str(MODEL))
    chains = {
        chain.name: gemmi.one_letter_code([residue.name for residue in chain]) for chain in structure[0]
    }
    peptide = next(sequence for sequence in chains.values() if len(sequence) < 20)
    names = [str(row["name"].value) for row in _loaded(EXAMPLE).rows("em_entity_assembly")]
    assert len(chains) == 5
    assert any(peptide in name for name in names)
    assert any("HLA" in name and "microglobulin" in name for name in names)
    assert any("T-cell receptor" in name and "alpha and beta" in name for name in names)


def test_every_value_carries_its_key_path() -> None:
    deposition = _loaded(EXAMPLE)
    found = deposition.get("em_buffer", "pH")
    assert found is not None
    assert found.evidence == Evidence.metadata("deposition-demo.yaml", "specimen.buffer.ph")
    model = deposition.get("em_imaging", "microscope_model")
    assert model is not None and model.evidence.location == "microscope.model"
    kinds = {found.evidence.kind for _, _, _, found in deposition.fields()}
    assert kinds <= {"metadata", "default"}


def test_json_and_yaml_give_the_same_model(tmp_path: Path) -> None:
    from_yaml = _loaded(_write(tmp_path, MINIMAL, "metadata.yaml"))
    from_json = _loaded(_write(tmp_path, MINIMAL, "metadata.json"))
    values = [(c, i, item, f.value) for c, i, item, f in from_yaml.fields()]
    assert values == [(c, i, item, f.value) for c, i, item, f in from_json.fields()]
    assert from_json.value("em_author_list", "identifier_ORCID", 1) == "0000-0002-1825-0097"
    assert from_json.value("em_imaging", "nominal_defocus_min") == 1200.0


def test_metadata_overrides_what_the_graph_filled(tmp_path: Path) -> None:
    deposition = Deposition()
    deposition.set("em_imaging", "accelerating_voltage", 200, Evidence.default("from the optics table"))
    deposition.set("em_imaging", "nominal_cs", 2.7, Evidence.default("from the optics table"))
    load_metadata(_write(tmp_path, {"microscope": {"voltage_kv": 300}}), deposition)
    voltage = deposition.get("em_imaging", "accelerating_voltage")
    assert voltage is not None and voltage.value == 300 and voltage.evidence.kind == "metadata"
    assert deposition.value("em_imaging", "nominal_cs") == 2.7


def test_contour_levels_go_to_the_maps_already_there(tmp_path: Path) -> None:
    deposition = Deposition()
    for map_type in ("primary map", "half map", "half map", "mask"):
        deposition.add_row("em_map", {"type": map_type}, Evidence.default("map"))
    load_metadata(_write(tmp_path, {"contour_level": 0.8, "half_map_contour_level": 0.5}), deposition)
    levels = [deposition.value("em_map", "contour_level", row) for row in range(4)]
    assert levels == [0.8, 0.5, 0.5, None]
    assert deposition.value("em_map", "contour_level_source", 0) == "author"


@pytest.mark.parametrize(
    ("change", "key_path", "accepted"),
    [
        ({"titel": "x"}, "titel", "accepted keys here: title,"),
        ({"specimen": {"buffer": {"ph": 15}}}, "specimen.buffer.ph", "a number from 0 to 14"),
        ({"specimen": {"buffer": {"ph": "7.5"}}}, "specimen.buffer.ph", "a number from 0 to 14"),
        ({"specimen": {"buffer": {"pH": 7}}}, "specimen.buffer.pH", "accepted keys here: ph,"),
        (
            {"specimen": {"vitrification": {"humidity_percent": 120}}},
            "specimen.vitrification.humidity_percent",
            "a number from 0 to 100",
        ),
        (
            {"specimen": {"vitrification": {"cryogen": "dry ice"}}},
            "specimen.vitrification.cryogen",
            "one of 9 accepted values",
        ),
        (
            {
                "sample": {
                    "supramolecules": [
                        {
                            "id": 1,
                            "parent": 0,
                            "source": "natural",
                            "name": "x",
                            "organism": "y",
                            "ncbi_taxid": -5,
                        }
                    ]
                }
            },
            "sample.supramolecules[0].ncbi_taxid",
            "a whole number from 1",
        ),
        (
            {
                "sample": {
                    "supramolecules": [
                        {
                            "id": 1,
                            "parent": 0,
                            "source": "natural",
                            "name": "x",
                            "organism": "y",
                            "ncbi_taxid": 9606.5,
                        }
                    ]
                }
            },
            "sample.supramolecules[0].ncbi_taxid",
            "a whole number",
        ),
        (
            {
                "sample": {
                    "supramolecules": [
                        {"id": 1, "parent": 0, "source": "natural", "name": "x", "organism": "Homo sapiens"}
                    ]
                }
            },
            "sample.supramolecules[0].ncbi_taxid",
            "organism needs ncbi_taxid too",
        ),
        (
            {"sample": {"supramolecules": [{"id": 1, "parent": 0, "source": "wild", "name": "x"}]}},
            "sample.supramolecules[0].source",
            "'RECOMBINANT'",
        ),
        ({"microscope": {"model": "Krios Ultra 9000"}}, "microscope.model", "one of 75 accepted values"),
        (
            {"microscope": {"nominal_defocus_min_um": 3.0, "nominal_defocus_max_um": 1.0}},
            "microscope.nominal_defocus_min_um",
            "min <= max",
        ),
        ({"microscope": {"voltage_kv": 300.5}}, "microscope.voltage_kv", "a whole number from 25"),
        ({"detector": {"mode": "photon counting 2"}}, "detector.mode", "closest:"),
        ({"authors": ["John Doe"]}, "authors[0]", "a name written 'Last, F.'"),
        ({"authors": [{"name": "Doe, J.", "orcid": "1234"}]}, "authors[0].orcid", "an ORCID iD"),
        ({"citation": {"doi": "doi.org/10.1"}}, "citation.doi", "a DOI"),
        ({"specimen": {"staining": "maybe"}}, "specimen.staining", "true or false"),
        ({"keywords": 42}, "keywords", "a list of keywords"),
        ({"funding": [{"grant_number": "1"}]}, "funding[0].organization", "names its organization"),
        (
            {"citation": {"journal": "Nature", "year": 1850}},
            "citation.year",
            "a whole number from 1900 to 2100",
        ),
    ],
)
def test_each_problem_names_file_key_path_and_what_is_accepted(
    tmp_path: Path, change: dict[str, object], key_path: str, accepted: str
) -> None:
    path = _write(tmp_path, {**MINIMAL, **change})
    with pytest.raises(DepositionError) as raised:
        _loaded(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 1 problem in the deposition metadata")
    line = message.splitlines()[1]
    assert line.startswith(f"  - {key_path}: ")
    assert accepted in line


@pytest.mark.parametrize(
    ("supramolecules", "key_path", "problem"),
    [
        (
            [
                {"id": 1, "parent": 0, "source": "natural", "name": "a"},
                {"id": 2, "parent": 0, "source": "natural", "name": "b"},
            ],
            "sample.supramolecules",
            "exactly one supramolecule with parent 0",
        ),
        (
            [
                {"id": 1, "parent": 0, "source": "natural", "name": "a"},
                {"id": 2, "parent": 7, "source": "natural", "name": "b"},
            ],
            "sample.supramolecules[1].parent",
            "7 is not the id of a supramolecule",
        ),
        (
            [
                {"id": 1, "parent": 0, "source": "natural", "name": "a"},
                {"id": 2, "parent": 3, "source": "natural", "name": "b"},
                {"id": 3, "parent": 2, "source": "natural", "name": "c"},
            ],
            "sample.supramolecules[1].parent",
            "its own ancestor",
        ),
        (
            [
                {"id": 1, "parent": 0, "source": "natural", "name": "a"},
                {"id": 1, "parent": 1, "source": "natural", "name": "b"},
            ],
            "sample.supramolecules[1].id",
            "already the id of another supramolecule",
        ),
    ],
)
def test_the_sample_tree_is_checked(
    tmp_path: Path, supramolecules: list[object], key_path: str, problem: str
) -> None:
    path = _write(tmp_path, {"sample": {"supramolecules": supramolecules}})
    with pytest.raises(DepositionError) as raised:
        _loaded(path)
    lines = str(raised.value).splitlines()[1:]
    assert any(line.startswith(f"  - {key_path}: ") and problem in line for line in lines), lines


def test_all_problems_of_a_file_come_in_one_error_and_nothing_is_changed(tmp_path: Path) -> None:
    content = {
        **MINIMAL,
        "titel": "typo",
        "specimen": {"buffer": {"ph": -1}, "vitrification": {"humidity_percent": 101}},
        "microscope": {"model": "Krios Ultra 9000"},
    }
    deposition = Deposition()
    deposition.set("em_imaging", "accelerating_voltage", 300, Evidence.default("graph"))
    with pytest.raises(DepositionError) as raised:
        load_metadata(_write(tmp_path, content), deposition)
    problems = [line.split(":")[0].strip(" -") for line in str(raised.value).splitlines()[1:]]
    assert problems == [
        "titel",
        "specimen.buffer.ph",
        "specimen.vitrification.humidity_percent",
        "microscope.model",
    ]
    assert str(raised.value).startswith(f"{tmp_path / 'metadata.yaml'}: 4 problems")
    assert [(c, item) for c, _, item, _ in deposition.fields()] == [("em_imaging", "accelerating_voltage")]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("metadata.txt", "title: x\n", "must be YAML (.yaml, .yml) or JSON (.json)"),
        ("metadata.yaml", "title: [unclosed\n", "line 2"),
        ("metadata.json", '{"title": }', "line 1, column 11"),
        ("metadata.yaml", "- just\n- a list\n", "expected a mapping of keys"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DepositionError, match=str(path).replace(".", r"\.")) as raised:
        _loaded(path)
    assert problem in str(raised.value)
