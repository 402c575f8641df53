"""``scipion-kg deposit`` and ``scipion-kg import-emdb`` end to end, through the CLI, on projects recorded
in the test and on the demo project: a valid package with metadata, exactly the missing items without,
refusals that write nothing, and the real EMDB headers imported into the graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeElementTree
import pytest

from scipion_kg.cli import main
from scipion_kg.demo import DemoResult
from scipion_kg.deposition.fsc import half_map_fsc, masked_half_map_fsc, read_fsc_xml
from scipion_kg.deposition.mmcif import mmcif_report
from scipion_kg.ontology_graph import sync_ontology_graph
from scipion_kg.project import Project
from scipion_kg.recorder import Recorder

from .recorded_spa import RecordedSPA, record_postprocess, record_refinement, record_spa

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deposition-demo.yaml"

# What only the depositor knows (DESIGN.md decision 9; docs/emdb.md §4-5): with no metadata file, the
# completeness report must name exactly these, and nothing the graph gives.
USER_SUPPLIED = {
    ("em_admin", "title"),
    ("em_author_list", "author"),
    ("pdbx_audit_support", "funding_organization"),
    ("struct_keywords", "text"),
    ("citation", "title"),
    ("citation", "journal_abbrev"),
    ("citation", "unpublished_flag"),
    ("citation_author", "name"),
    ("em_entity_assembly", "name"),
    ("em_entity_assembly", "parent_id"),
    ("em_entity_assembly", "source"),
    ("em_entity_assembly", "type"),
    ("em_entity_assembly_naturalsource", "organism"),
    ("em_entity_assembly_naturalsource", "ncbi_tax_id"),
    ("em_specimen", "vitrification_applied"),
    ("em_specimen", "staining_applied"),
    ("em_specimen", "embedding_applied"),
    ("em_specimen", "shadowing_applied"),
    ("em_buffer", "pH"),
    ("em_vitrification", "cryogen_name"),
    ("em_imaging", "microscope_model"),
    ("em_imaging", "illumination_mode"),
    ("em_imaging", "mode"),
    ("em_imaging", "electron_source"),
    ("em_image_recording", "film_or_detector_model"),
    ("em_map", "contour_level"),
}


@pytest.fixture
def spa(project: Project) -> RecordedSPA:
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        return record_spa(project, store)


def _deposit(project: Project, target: Path, out: Path, *extra: str) -> int:
    return main(["deposit", str(target), "--out", str(out), "--project", str(project.root), *extra])


def _validation_arguments(shared_data: Path) -> list[str]:
    emdb = shared_data / "emdb"
    return [
        "--emdb-xsd",
        str(emdb / "xsd" / "emdb.xsd"),
        "--pdbx-dictionary",
        str(emdb / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"),
    ]


def json_fields(evidence: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [
        (category, index, item)
        for category, rows in evidence["categories"].items()
        for index, row in enumerate(rows)
        for item in row
    ]


def _root(path: Path) -> Any:
    root = SafeElementTree.parse(path).getroot()
    assert root is not None
    return root


def _deposition_runs(project: Project) -> list[str]:
    with project.open_store() as store:
        rows = store.select(
            "PREFIX skg: <https://w3id.org/scipion-kg/ontology#> SELECT ?run WHERE { ?run a skg:Deposition }"
        )
    return [str(row["run"]) for row in rows]


def test_a_recorded_project_gives_a_valid_package_with_metadata(
    spa: RecordedSPA,
    project: Project,
    tmp_path: Path,
    shared_data: Path,
    emdb_schema: Any,
    pdbx_dictionary: Path,
) -> None:
    out = tmp_path / "package"
    status = _deposit(
        project,
        spa.files["postprocess_map"],
        out,
        "--metadata",
        str(EXAMPLE),
        *_validation_arguments(shared_data),
    )
    assert status == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "emd_0000.map",
        "emd_0000_half_map_1.map",
        "emd_0000_half_map_2.map",
        "emd_0000_msk_1.map",
        "entry_image.png",
        "evidence.json",
        "fsc.xml",
        "header.xml",
        "metadata.cif",
        "report.html",
    ]
    assert (out / "emd_0000_half_map_1.map").read_bytes() == spa.files["refine_half_map_1"].read_bytes()
    emdb_schema.validate(str(out / "header.xml"))
    errors, _ = mmcif_report((out / "metadata.cif").read_text(), pdbx_dictionary)
    assert errors == []
    # The resolution is the mask-corrected FSC of the two half maps, recomputed, and the FSC XML holds it.
    expected = masked_half_map_fsc(
        spa.files["refine_half_map_1"], spa.files["refine_half_map_2"], spa.files["mask"]
    ).corrected.resolution()
    header = _root(out / "header.xml")
    resolution = header.find(".//final_reconstruction/resolution")
    assert resolution is not None and resolution.text is not None
    assert float(resolution.text) == pytest.approx(expected, abs=0.01)
    assert read_fsc_xml(out / "fsc.xml").resolution() == pytest.approx(expected, abs=0.02)
    assert [half.findtext("file") for half in header.iter("half_map")] == [
        "emd_0000_half_map_1.map",
        "emd_0000_half_map_2.map",
    ]
    report = (out / "report.html").read_text()
    assert "Nothing mandatory is missing" in report and "within mask" in report
    evidence = json.loads((out / "evidence.json").read_text())
    software = {
        (row["name"]["value"], row["category"]["value"]) for row in evidence["categories"]["em_software"]
    }
    assert ("CTFFIND", "CTF CORRECTION") in software
    (run,) = _deposition_runs(project)
    with project.open_store() as store:
        outputs = store.select(
            f"PREFIX prov: <http://www.w3.org/ns/prov#> SELECT ?e WHERE {{ ?e prov:wasGeneratedBy <{run}> }}"
        )
    assert len(outputs) == 6  # header, mmCIF, FSC XML, image, evidence, report
    # Every filled field is in the graph, linked to where it came from.
    with project.open_store() as store:
        fields = store.select(
            f"""PREFIX skg: <https://w3id.org/scipion-kg/ontology#>
            PREFIX prov: <http://www.w3.org/ns/prov#>
            SELECT ?item ?value ?kind ?run ?entity WHERE {{
              ?field skg:fieldOfDeposition <{run}> ; skg:mmcifItem ?item ; skg:fieldValue ?value ;
                     skg:evidenceKind ?kind .
              OPTIONAL {{ ?field skg:evidenceRun ?run }}
              OPTIONAL {{ ?field prov:wasDerivedFrom ?entity }} }}"""
        )
    by_item = {str(row["item"]): row for row in fields}
    assert len(fields) == sum(1 for _ in json_fields(evidence))
    resolution = by_item["_em_3d_reconstruction.resolution"]
    assert float(str(resolution["value"])) == pytest.approx(expected, abs=0.01)
    assert str(resolution["kind"]) == "computed" and str(resolution["run"]) == spa.runs["refine"]
    assert str(by_item["_em_buffer.pH"]["kind"]) == "metadata"
    assert str(by_item["_em_imaging.accelerating_voltage"]["run"]) == spa.runs["import"]


def test_without_metadata_the_report_names_exactly_what_the_user_must_supply(
    spa: RecordedSPA, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scipion_kg.deposition.completeness import missing_items

    status = _deposit(project, spa.files["postprocess_map"], tmp_path / "package")
    assert status == 2  # written, but neither validated (no schema given) nor complete
    printed = capsys.readouterr().out
    assert "mandatory item(s) still to supply" in printed
    evidence = json.loads((tmp_path / "package" / "evidence.json").read_text())
    from scipion_kg.deposition.model import Deposition, Evidence

    deposition = Deposition()
    for category, rows in evidence["categories"].items():
        for index, row in enumerate(rows):
            for item, field in row.items():
                deposition.set(category, item, field["value"], Evidence("import", "test"), index)
    assert {(item.category, item.item) for item in missing_items(deposition)} == USER_SUPPLIED


def test_half_maps_of_another_refinement_are_refused_and_nothing_is_written(
    spa: RecordedSPA, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        record_refinement(recorder, spa, "other", seed=11)
        record_postprocess(recorder, spa, "refine_half_map_1", "other_half_map_2")
    out = tmp_path / "package"
    assert _deposit(project, spa.files["postprocess_map"], out) == 1
    message = capsys.readouterr().err
    assert "half map" in message and "generated by run" in message
    assert not out.exists()
    assert _deposition_runs(project) == []


def test_a_map_changed_since_it_was_recorded_is_refused(
    spa: RecordedSPA, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    half = spa.files["refine_half_map_2"]
    half.write_bytes(half.read_bytes()[:-4] + b"\0\0\0\1")
    assert _deposit(project, spa.files["postprocess_map"], tmp_path / "package") == 1
    assert "changed" in capsys.readouterr().err
    assert not (tmp_path / "package").exists()


def test_an_invalid_metadata_file_names_the_field_and_writes_nothing(
    spa: RecordedSPA, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("Titan Krios G4", "Krios Ultra 9000", 1))
    assert "Krios Ultra 9000" in bad.read_text()
    assert _deposit(project, spa.files["postprocess_map"], tmp_path / "package", "--metadata", str(bad)) == 1
    message = capsys.readouterr().err
    assert "microscope" in message and "Krios Ultra 9000" in message
    assert not (tmp_path / "package").exists()
    assert _deposition_runs(project) == []


@pytest.mark.slow
def test_the_demo_project_gives_a_complete_valid_package(
    demo: DemoResult, tmp_path: Path, shared_data: Path, emdb_schema: Any, pdbx_dictionary: Path
) -> None:
    project = Project.find(demo.project)
    out = tmp_path / "demo-package"
    arguments = ["--metadata", str(EXAMPLE), *_validation_arguments(shared_data)]
    assert _deposit(project, Path(demo.summary["final_map"]), out, *arguments) == 0
    emdb_schema.validate(str(out / "header.xml"))
    errors, _ = mmcif_report((out / "metadata.cif").read_text(), pdbx_dictionary)
    assert errors == []
    assert "Nothing mandatory is missing" in (out / "report.html").read_text()
    header = _root(out / "header.xml")
    # The recomputed, mask-corrected resolution agrees with what the demo's post-processing recorded, and
    # the unmasked FSC of the same half maps is worse (it is what the evidence quotes beside it).
    resolution = float(header.findtext(".//final_reconstruction/resolution") or "nan")
    assert resolution == pytest.approx(demo.summary["resolution"], abs=0.05)
    halves = [Path(path) for path in demo.summary["half_maps"]]
    assert half_map_fsc(*halves).resolution() > resolution
    assert header.findtext(".//final_reconstruction/number_images_used") is not None
    assert header.findtext(".//applied_symmetry/point_group") == "C1"
    project.close()


HEADERS = {
    "emd-14544_spa_v3.0.3.0.xml": ("EMD-14544", "SINGLE PARTICLE"),
    "emd-0001_spa_v3.0.2.0.xml": ("EMD-0001", "SINGLE PARTICLE"),
    "emd-13682_subtomo_v3.0.3.1.xml": ("EMD-13682", "SUBTOMOGRAM AVERAGING"),
    "emd-16019_helical_v3.0.9.0.xml": ("EMD-16019", "HELICAL"),
    "emd-20531_tomo_v3.0.9.0.xml": ("EMD-20531", "TOMOGRAPHY"),
}


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_real_emdb_headers_import_into_the_graph(name: str, project: Project, shared_data: Path) -> None:
    header = shared_data / "emdb" / "xml" / name
    assert main(["import-emdb", str(header), "--project", str(project.root)]) == 0
    root = _root(header)
    with project.open_store() as store:
        rows = store.select(
            """PREFIX skg: <https://w3id.org/scipion-kg/ontology#>
            SELECT ?entry ?method ?resolution WHERE {
              ?d a skg:ExternalMapDescription ; skg:emdbEntryId ?entry ; skg:reconstructionMethod ?method .
              OPTIONAL { ?d skg:resolution ?resolution } }"""
        )
        software = {
            str(row["s"])
            for row in store.select(
                "PREFIX skg: <https://w3id.org/scipion-kg/ontology#> "
                "SELECT ?s WHERE { ?d skg:reportedSoftware ?s }"
            )
        }
    (row,) = rows
    assert (str(row["entry"]), str(row["method"])) == HEADERS[name]
    stated = root.findtext(".//final_reconstruction/resolution")
    if stated is not None:
        assert float(str(row["resolution"])) == pytest.approx(float(stated))
    names = {element.findtext("name") for element in root.iter("software") if element.findtext("name")}
    if name.startswith("emd-14544"):
        assert any(entry.endswith("RELION 3.08") for entry in software), software
    assert all(any(f": {name}" in entry for entry in software) for name in names)
