"""The EMDB header XML v3: reading the five real headers, writing them again (valid, and field by field the
same values), the real errors of the three invalid headers, unit changes, the order table, and a minimal
hand-built model that validates."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scipion_kg.deposition.emdb_xml import (
    read_emdb_xml,
    read_emdb_xml_report,
    render_emdb_xml,
    render_emdb_xml_report,
    unmapped_fields,
    validate_emdb_xml,
)
from scipion_kg.deposition.model import Deposition, Evidence, FieldValue
from scipion_kg.deposition.xsd_order import (
    ORDER_TABLE_RESOURCE,
    derive_order_table,
    load_order_table,
    render_table,
    xsd_enumerations,
)
from scipion_kg.errors import DepositionError

HEADERS = {
    # file: (entry id, method, number of XSD errors of the real file)
    "emd-14544_spa_v3.0.3.0.xml": ("EMD-14544", "SINGLE PARTICLE", 0),
    "emd-0001_spa_v3.0.2.0.xml": ("EMD-0001", "SINGLE PARTICLE", 0),
    "emd-13682_subtomo_v3.0.3.1.xml": ("EMD-13682", "SUBTOMOGRAM AVERAGING", 1),
    "emd-16019_helical_v3.0.9.0.xml": ("EMD-16019", "HELICAL", 2),
    "emd-20531_tomo_v3.0.9.0.xml": ("EMD-20531", "TOMOGRAPHY", 1),
}
VALID = [name for name, (_, _, errors) in HEADERS.items() if errors == 0]
SD = "structure_determination_list/structure_determination"
SPA_PROCESSING = f"{SD}/singleparticle_processing"
SPA_MICROSCOPY = f"{SD}/microscopy_list/single_particle_microscopy"
EVIDENCE = Evidence.default("test value")


def _text(root: ET.Element, path: str) -> str:
    found = root.find(path)
    assert found is not None and found.text is not None, path
    return found.text.strip()


def _located_values(deposition: Deposition) -> set[tuple[str, FieldValue]]:
    """(XML path, value) of every field the reader took from a header."""
    found = set()
    for _, _, _, field in deposition.fields():
        assert field.evidence.kind == "header" and field.evidence.location is not None
        found.add((field.evidence.location, field.value))
    return found


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_each_real_header_imports(emdb_headers: Path, name: str) -> None:
    entry_id, method, _ = HEADERS[name]
    deposition, unmapped = read_emdb_xml_report(emdb_headers / name)
    assert (deposition.entry_id, deposition.method) == (entry_id, method)
    root = ET.parse(emdb_headers / name).getroot()
    microscopy = root.find(f"{SD}/microscopy_list/*")
    assert microscopy is not None
    assert deposition.value("em_imaging", "microscope_model") == _text(microscopy, "microscope")
    assert deposition.value("em_imaging", "accelerating_voltage") == int(
        _text(microscopy, "acceleration_voltage")
    )
    assert deposition.value("em_admin", "title") == _text(root, "admin/title")
    assert deposition.value("em_map", "file") == _text(root, "map/file")
    field = deposition.get("em_imaging", "microscope_model")
    assert field is not None
    assert field.evidence.kind == "header" and name in field.evidence.text
    assert field.evidence.location == f"{SD}/microscopy_list/{microscopy.tag}/microscope"
    # what the mapping does not know is counted, not silently dropped (sequences, model fitting...)
    assert unmapped and all(not path.startswith("@") for path in unmapped)
    assert read_emdb_xml(emdb_headers / name).categories == deposition.categories


def test_emd_14544_known_values_match_the_original_file(emdb_headers: Path) -> None:
    path = emdb_headers / "emd-14544_spa_v3.0.3.0.xml"
    deposition = read_emdb_xml(path)
    root = ET.parse(path).getroot()
    # values from the original file by direct XPath, and the figures of the EMDB notes
    assert deposition.value("em_3d_reconstruction", "num_particles") == 396910
    assert int(_text(root, f"{SPA_PROCESSING}/final_reconstruction/number_images_used")) == 396910
    assert deposition.value("em_single_particle_entity", "point_symmetry") == "C1"
    assert deposition.value("em_3d_reconstruction", "resolution") == float(
        _text(root, f"{SPA_PROCESSING}/final_reconstruction/resolution")
    )
    assert deposition.value("em_3d_reconstruction", "resolution_method") == "FSC 0.143 CUT-OFF"
    assert deposition.value("em_imaging", "microscope_model") == "TFS KRIOS"
    assert deposition.value("em_image_recording", "film_or_detector_model") == "GATAN K3 BIOQUANTUM (6k x 4k)"
    # defocus: µm in the XML, nm in the model
    assert float(_text(root, f"{SPA_MICROSCOPY}/nominal_defocus_min")) == 1.5
    assert deposition.value("em_imaging", "nominal_defocus_min") == pytest.approx(1500.0)
    software = {
        (str(row["category"].value), str(row["name"].value), str(row["version"].value))
        for row in deposition.rows("em_software")
    }
    assert software == {
        (category, "RELION", "3.08")
        for category in (
            "RECONSTRUCTION",
            "INITIAL EULER ASSIGNMENT",
            "FINAL EULER ASSIGNMENT",
            "CLASSIFICATION",
        )
    }
    assert len(root.findall(f"{SPA_PROCESSING}//software_list/software")) == len(
        deposition.rows("em_software")
    )
    organisms = {
        (row["organism"].value, row["ncbi_tax_id"].value)
        for row in deposition.rows("em_entity_assembly_naturalsource")
    }
    assert organisms == {("Severe acute respiratory syndrome coronavirus 2", 2697049), ("Lama glama", 9844)}
    maps = [str(row["type"].value) for row in deposition.rows("em_map")]
    assert sorted(maps) == sorted(
        ["primary map", "mask", "additional map", "additional map", "half map", "half map"]
    )


@pytest.mark.parametrize("name", VALID)
def test_a_valid_header_written_again_is_valid_and_holds_the_same_values(
    emdb_headers: Path, emdb_schema: Any, tmp_path: Path, name: str
) -> None:
    original = read_emdb_xml(emdb_headers / name)
    data = render_emdb_xml(original)
    assert validate_emdb_xml(data, emdb_schema) == []
    again_path = tmp_path / name
    again_path.write_bytes(data)
    again, unmapped = read_emdb_xml_report(again_path)
    # (a) every (xml path, value) the mapping maps in the original is in the re-export, with the same value
    assert _located_values(original) == _located_values(again)
    assert unmapped == []  # and the re-export holds nothing else
    # (b) direct reads of the original against the re-export
    source, written = ET.parse(emdb_headers / name).getroot(), ET.fromstring(data)
    for path in (
        "admin/title",
        "map/file",
        "map/pixel_spacing/x",
        f"{SPA_MICROSCOPY}/microscope",
        f"{SPA_MICROSCOPY}/image_recording_list/image_recording/film_or_detector_model",
        f"{SPA_PROCESSING}/final_reconstruction/applied_symmetry/point_group",
        f"{SPA_PROCESSING}/final_reconstruction/resolution_method",
        f"{SPA_PROCESSING}/final_reconstruction/number_images_used",
    ):
        assert _text(written, path) == _text(source, path), path
    assert float(_text(written, f"{SPA_PROCESSING}/final_reconstruction/resolution")) == float(
        _text(source, f"{SPA_PROCESSING}/final_reconstruction/resolution")
    )
    assert written.get("version") == load_order_table().xsd_version


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("emd-13682_subtomo_v3.0.3.1.xml", ["/emd/validation: .*fsc_curve_validation_type"]),
        (
            "emd-16019_helical_v3.0.9.0.xml",
            [
                "helical_microscopy/nominal_defocus_min: .*less than or equal than 20",
                "helical_microscopy/nominal_defocus_max: .*less than or equal than 50",
            ],
        ),
        ("emd-20531_tomo_v3.0.9.0.xml", ["primary_citation/non_journal_citation: .*'title' expected"]),
    ],
)
def test_validation_reports_the_real_errors_of_the_invalid_headers(
    emdb_headers: Path, emdb_schema: Any, name: str, expected: list[str]
) -> None:
    import re

    errors = validate_emdb_xml(emdb_headers / name, emdb_schema)
    assert len(errors) == HEADERS[name][2] == len(expected)
    for error, pattern in zip(sorted(errors), sorted(expected), strict=True):
        assert re.search(pattern, error), (pattern, error)


def _minimal(method: str = "SINGLE PARTICLE") -> Deposition:
    """A hand-built model with the minimum of every XSD-mandatory item."""
    deposition = Deposition(method=method, entry_id="EMD-99999")
    rows: dict[str, dict[str, FieldValue]] = {
        "em_admin": {"title": "Apoferritin at 2 Å"},
        "em_author_list": {"author": "Doe, J.", "ordinal": 1},
        "citation": {"id": "primary", "title": "To be published", "journal_abbrev": "To Be Published"},
        "citation_author": {"citation_id": "primary", "name": "Doe, J.", "ordinal": 1},
        "em_entity_assembly": {"id": "1", "parent_id": 0, "name": "apoferritin", "type": "COMPLEX"},
        "em_experiment": {"id": "1", "aggregation_state": "PARTICLE"},
        "em_specimen": {"id": "1", "experiment_id": "1"},
        "em_imaging": {
            "id": "1",
            "microscope_model": "TFS KRIOS",
            "illumination_mode": "FLOOD BEAM",
            "mode": "BRIGHT FIELD",
            "electron_source": "FIELD EMISSION GUN",
            "accelerating_voltage": 300,
            "nominal_defocus_min": 1500,
        },
        "em_image_recording": {
            "id": "1",
            "imaging_id": "1",
            "film_or_detector_model": "TFS FALCON 4i (4k x 4k)",
        },
        "em_image_processing": {"id": "1", "image_recording_id": "1"},
        "em_map": {
            "id": "1",
            "type": "primary map",
            "size_kb": 8193,
            "file": "emd_99999.map.gz",
            "data_type": "Image stored as floating point number (4 bytes)",
            **{f"dimensions_{axis}": 128 for axis in ("col", "row", "sec")},
            **{f"origin_{axis}": 0 for axis in ("col", "row", "sec")},
            **{f"spacing_{axis}": 128 for axis in "xyz"},
            **{f"cell_{axis}": 134.4 for axis in "abc"},
            **{f"cell_{angle}": 90.0 for angle in ("alpha", "beta", "gamma")},
            "axis_order_fast": "X",
            "axis_order_medium": "Y",
            "axis_order_slow": "Z",
            **{f"pixel_spacing_{axis}": 1.05 for axis in "xyz"},
        },
    }
    for category, values in rows.items():
        deposition.add_row(category, values, EVIDENCE)
    return deposition


def test_a_minimal_hand_built_model_renders_to_valid_xml(emdb_schema: Any) -> None:
    data, skipped = render_emdb_xml_report(_minimal())
    assert validate_emdb_xml(data, emdb_schema) == []
    assert skipped == []
    root = ET.fromstring(data)
    assert (root.tag, root.get("emdb_id"), root.get("version")) == ("emd", "EMD-99999", "3.0.11.3")
    assert root.find(f"{SD}/method") is not None and _text(root, f"{SD}/method") == "singleParticle"
    # the XSD-required admin elements OneDep fills get placeholders
    assert _text(root, "admin/current_status/code") == "PROC"
    assert _text(root, "sample/name") == "apoferritin"
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<emd ')
    assert render_emdb_xml(_minimal()) == data  # deterministic


@pytest.mark.parametrize("missing", ["em_imaging", "em_map", "em_admin"])
def test_a_model_missing_a_mandatory_category_does_not_validate(emdb_schema: Any, missing: str) -> None:
    deposition = _minimal()
    del deposition.categories[missing]
    assert validate_emdb_xml(render_emdb_xml(deposition), emdb_schema) != []


def test_units_change_as_the_mapping_says() -> None:
    root = ET.fromstring(render_emdb_xml(_minimal()))
    defocus = root.find(f"{SPA_MICROSCOPY}/nominal_defocus_min")
    voltage = root.find(f"{SPA_MICROSCOPY}/acceleration_voltage")
    assert defocus is not None and voltage is not None
    assert (defocus.text, defocus.get("units")) == ("1.5", "µm")
    assert (voltage.text, voltage.get("units")) == ("300", "kV")


def test_rows_go_where_their_selector_sends_them(emdb_schema: Any) -> None:
    deposition = _minimal()
    for category in ("CTF CORRECTION", "RECONSTRUCTION", "IMAGE ACQUISITION", "MASKING", "MODEL FITTING"):
        link = "imaging_id" if category == "IMAGE ACQUISITION" else "image_processing_id"
        deposition.add_row(
            "em_software", {"category": category, "name": "RELION", "version": "5.0", link: "1"}, EVIDENCE
        )
    primary = {item: field.value for item, field in deposition.rows("em_map")[0].items()}
    deposition.add_row(
        "em_map", {**primary, "id": "2", "type": "half map", "file": "emd_99999_half_map_1.map"}, EVIDENCE
    )
    data, skipped = render_emdb_xml_report(deposition)
    root = ET.fromstring(data)
    assert _text(root, f"{SPA_PROCESSING}/ctf_correction/software_list/software/name") == "RELION"
    assert _text(root, f"{SPA_PROCESSING}/final_reconstruction/software_list/software/version") == "5.0"
    assert _text(root, f"{SPA_MICROSCOPY}/software_list/software/name") == "RELION"
    assert _text(root, "interpretation/half_map_list/half_map/file") == "emd_99999_half_map_1.map"
    assert _text(root, "interpretation/modelling_list/modelling/software_list/software/name") == "RELION"
    assert validate_emdb_xml(data, emdb_schema) == []
    # the XSD has no software place for masking: the row stays in mmCIF and the report says so
    assert skipped == ["em_software row 4: no EMDB XML place for category='MASKING'"]


def test_unknown_categories_and_items_are_listed_not_dropped_silently() -> None:
    deposition = _minimal()
    deposition.set("em_imaging", "favourite_colour", "blue", EVIDENCE)
    deposition.add_row("em_no_such_category", {"id": "1"}, EVIDENCE)
    assert unmapped_fields(deposition) == ["em_imaging[1].favourite_colour", "em_no_such_category[1].id"]
    _, skipped = render_emdb_xml_report(deposition)
    assert {"em_imaging[1].favourite_colour: not in the deposition mapping"} <= set(skipped)


def test_external_entities_are_refused(tmp_path: Path) -> None:
    header = tmp_path / "evil.xml"
    header.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE emd [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
        '<emd emdb_id="EMD-1"><admin><title>&secret;</title></admin></emd>\n',
        encoding="utf-8",
    )
    with pytest.raises(DepositionError, match=r"evil\.xml"):
        read_emdb_xml(header)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<emd><admin/></emd>", "emdb_id"),
        ('<entry emdb_id="EMD-1"/>', "root element is <entry>"),
        ('<emd emdb_id="EMD-1"><admin>', "not well-formed"),
        (f'<emd emdb_id="EMD-1"><{SD.split("/")[0]}><structure_determination><method>cubism</method>'
         "</structure_determination></structure_determination_list></emd>", "cubism"),
    ],
)  # fmt: skip
def test_malformed_headers_fail_with_the_file_and_what_is_wrong(
    tmp_path: Path, text: str, message: str
) -> None:
    header = tmp_path / "broken.xml"
    header.write_text(text, encoding="utf-8")
    with pytest.raises(DepositionError, match=message) as raised:
        read_emdb_xml(header)
    assert "broken.xml" in str(raised.value)


def test_a_bad_number_names_the_file_and_the_element(emdb_headers: Path, tmp_path: Path) -> None:
    text = (emdb_headers / "emd-0001_spa_v3.0.2.0.xml").read_text(encoding="utf-8")
    broken = tmp_path / "emd-0001.xml"
    broken.write_text(text.replace('units="kV">300<', 'units="kV">three hundred<'), encoding="utf-8")
    with pytest.raises(DepositionError, match=r"emd-0001\.xml: .*acceleration_voltage"):
        read_emdb_xml(broken)


def test_the_shipped_order_table_is_the_one_the_shared_xsd_gives(emdb_xsd: Path) -> None:
    derived = derive_order_table(emdb_xsd)
    shipped = Path(__file__).resolve().parents[2] / "scipion_kg" / ORDER_TABLE_RESOURCE
    assert render_table(derived).decode("utf-8") == shipped.read_text(encoding="utf-8")
    table = load_order_table()
    assert table.xsd_version == derived["xsd_version"] == "3.0.11.3"
    assert table.children(table.root_type) == (
        "admin", "crossreferences", "sample", "structure_determination_list", "map", "interpretation",
        "validation",
    )  # fmt: skip
    processing = table.child_type(
        table.child_type(table.root_type, "structure_determination_list") or "", "structure_determination"
    )
    assert processing is not None
    # substitution groups are resolved: every processing element stands at the place of image_processing
    slots = {
        table.slot(processing, name)
        for name in ("singleparticle_processing", "helical_processing", "tomography_processing")
    }
    assert len(slots) == 1


def test_xsd_enumerations_give_the_closed_lists(emdb_xsd: Path) -> None:
    enumerations = xsd_enumerations(emdb_xsd)
    assert "TFS KRIOS" in enumerations["microscope"]
    assert "GATAN K3 BIOQUANTUM (6k x 4k)" in enumerations["film_or_detector_model"]
    assert "FEI VITROBOT MARK IV" in enumerations["vitrification/instrument"]
    assert enumerations["electron_source"] == ["TUNGSTEN HAIRPIN", "LAB6", "OTHER", "FIELD EMISSION GUN"]
    assert enumerations["resolution/@res_type"] == ["BY AUTHOR"]
    assert sum(len(values) for values in enumerations.values()) > 580
