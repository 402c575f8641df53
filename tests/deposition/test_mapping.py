"""The deposition mapping of the ontology: lookups, units, value spellings, mandatory items, and its
consistency with the EMDB XSD (every path exists) and the PDBx dictionary (every item exists)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from scipion_kg.deposition.mapping import DepositionMapping, load_mapping
from scipion_kg.deposition.model import METHODS
from scipion_kg.deposition.xsd_order import OrderTable, load_order_table
from scipion_kg.errors import DepositionError

# items newer than the PDBx dictionary v5.362 (the README of the shared corpus lists them)
NEWER_THAN_V5_362 = {
    "_em_motion_correction.id",
    "_em_motion_correction.image_processing_id",
    "_em_motion_correction.type",
    "_em_motion_correction.details",
    "_em_imaging.objective_aperture",
    "_em_imaging.microscope_serial_number",
    "_em_imaging.microscope_version",
}


@pytest.fixture(scope="module")
def mapping() -> DepositionMapping:
    return load_mapping()


def test_load_mapping_is_cached_and_covers_the_categories_of_a_map_entry(mapping: DepositionMapping) -> None:
    assert load_mapping() is mapping
    names = {category.name for category in mapping.categories()}
    assert names >= {
        "em_admin", "em_author_list", "citation", "citation_author", "em_entity_assembly",
        "em_entity_assembly_naturalsource", "em_experiment", "em_specimen", "em_buffer",
        "em_buffer_component",
        "em_vitrification", "em_sample_support", "em_imaging", "em_image_recording", "em_image_processing",
        "em_motion_correction", "em_ctf_correction", "em_particle_selection", "em_start_model",
        "em_euler_angle_assignment", "em_3d_reconstruction", "em_single_particle_entity",
        "em_final_classification", "em_software", "em_map", "em_fsc_curve",
    }  # fmt: skip


def test_parents_come_before_the_categories_nested_in_them(mapping: DepositionMapping) -> None:
    position = {category.name: index for index, category in enumerate(mapping.categories())}
    for category in mapping.categories():
        for parent in category.parents:
            assert position[parent] < position[category.name], (parent, category.name)


@pytest.mark.parametrize(
    ("mmcif", "xml_path", "value_type", "pdbx_unit", "xml_unit", "units"),
    [
        ("_em_imaging.accelerating_voltage", "acceleration_voltage", "integer", "KiloV", "KiloV", "kV"),
        ("_em_imaging.nominal_defocus_min", "nominal_defocus_min", "float", "NanoM", "MicroM", "µm"),
        ("_em_imaging.nominal_cs", "nominal_cs", "float", "MilliM", "MilliM", "mm"),
        ("_em_support_film.thickness", "film_thickness", "float", "ANGSTROM", "NanoM", "nm"),
        ("em_image_recording.avg_electron_dose_per_image", "average_electron_dose_per_image", "float",
         "ElectronPerSquareAngstrom", "ElectronPerSquareAngstrom", "e/\u212b^2"),
        ("_em_imaging.microscope_model", "microscope", "enum", None, None, None),
    ],
)  # fmt: skip
def test_item_lookup_gives_path_type_and_units(
    mapping: DepositionMapping,
    mmcif: str,
    xml_path: str,
    value_type: str,
    pdbx_unit: str | None,
    xml_unit: str | None,
    units: str | None,
) -> None:
    item = mapping.item(mmcif)
    assert item.xml_path == xml_path
    assert item.value_type == value_type
    assert (item.pdbx_unit or "").endswith(pdbx_unit or "") and (item.pdbx_unit is None) == (
        pdbx_unit is None
    )
    assert (item.xml_unit or "").endswith(xml_unit or "") and (item.xml_unit is None) == (xml_unit is None)
    assert item.units_attribute == units
    assert item in mapping.items_for(item.category)


@pytest.mark.parametrize(
    ("mmcif", "model_value", "xml_text"),
    [
        ("_em_imaging.nominal_defocus_min", 1500, "1.5"),  # nm -> µm
        ("_em_imaging.nominal_defocus_max", 3000.0, "3.0"),
        ("_em_support_film.thickness", 120.0, "12.0"),  # Å -> nm
        ("_em_imaging.accelerating_voltage", 300, "300"),
        ("_em_imaging.accelerating_voltage", 300.0, "300"),  # integer in the XSD
        ("_em_experiment.reconstruction_method", "SINGLE PARTICLE", "singleParticle"),
        ("_em_experiment.aggregation_state", "2D ARRAY", "twoDArray"),
        ("_em_map.data_type", "Image stored as floating point number (4 bytes)",
         "IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)"),
        ("_em_admin.deposition_site", "PDBE", "PDBe"),
        ("_citation.unpublished_flag", "N", "true"),
        ("_em_entity_assembly.chimera", "YES", "true"),
        ("_em_author_list.author", "Ye, F.Z.", "Ye FZ"),
        ("_citation_author.name", "Le Bas, A.", "Le Bas A"),
        ("_citation.pdbx_database_id_DOI", "10.1073/pnas.2205412119", "doi:10.1073/pnas.2205412119"),
    ],
)  # fmt: skip
def test_values_convert_both_ways(
    mapping: DepositionMapping, mmcif: str, model_value: object, xml_text: str
) -> None:
    item = mapping.item(mmcif)
    assert isinstance(model_value, str | int | float)
    assert mapping.to_xml(item, model_value) == xml_text
    back = mapping.from_xml(item, xml_text)
    if isinstance(model_value, int | float):
        assert back == pytest.approx(model_value)
    else:
        assert back == model_value


def test_a_boolean_model_value_is_written_as_an_xml_boolean(mapping: DepositionMapping) -> None:
    item = mapping.item("_em_entity_assembly.chimera")
    assert mapping.to_xml(item, True) == "true"
    assert mapping.to_xml(item, False) == "false"


@pytest.mark.parametrize("bad", ["_em_imaging.no_such_item", "_no_such_category.id"])
def test_unknown_items_are_refused_with_the_name_at_fault(mapping: DepositionMapping, bad: str) -> None:
    with pytest.raises(DepositionError, match=bad):
        mapping.item(bad)


def test_a_non_number_for_a_numeric_item_names_the_item(mapping: DepositionMapping) -> None:
    with pytest.raises(DepositionError, match=r"_em_imaging\.accelerating_voltage"):
        mapping.to_xml(mapping.item("_em_imaging.accelerating_voltage"), "three hundred")


def test_mandatory_items_of_single_particle_have_plain_word_labels(mapping: DepositionMapping) -> None:
    mandatory = mapping.mandatory_items("SINGLE PARTICLE")
    labels = {item.label for item in mandatory}
    assert {
        "microscope model", "acceleration voltage", "detector model", "average electron dose per image",
        "number of particles in the final map", "point-group symmetry", "resolution", "resolution method",
        "buffer pH", "cryogen", "source organism", "entry title", "entry author", "map file",
        "voxel size along X",
    } <= labels  # fmt: skip
    assert all(item.xsd_mandatory or item.onedep_mandatory for item in mandatory)
    assert all("_" not in item.label for item in mandatory), [i.label for i in mandatory if "_" in i.label]


def test_mandatory_items_depend_on_the_method(mapping: DepositionMapping) -> None:
    spa = {item.mmcif_name for item in mapping.mandatory_items("SINGLE PARTICLE")}
    helical = {item.mmcif_name for item in mapping.mandatory_items("HELICAL")}
    assert "_em_single_particle_entity.point_symmetry" in spa - helical
    assert "_em_helical_entity.axial_symmetry" in helical - spa
    with pytest.raises(DepositionError, match="NOT A METHOD"):
        mapping.mandatory_items("NOT A METHOD")


def test_every_method_of_the_model_has_its_xml_elements(mapping: DepositionMapping) -> None:
    for method, xml_method in METHODS.items():
        elements = mapping.method(method)
        assert elements.xml_method == xml_method
        assert mapping.method_for_xml(xml_method) == elements


def _path_allowed(table: OrderTable, type_key: str | None, path: str) -> bool:
    parts = path.split("/")
    attribute = parts.pop()[1:] if parts[-1].startswith("@") else None
    for part in parts:
        if part == ".":
            continue
        name = part.split("[", 1)[0]
        if type_key is None or not table.allows(type_key, name):
            return False
        type_key = table.child_type(type_key, name)
    return attribute is None or table.allows_attribute(type_key, attribute)


def _anchor_types(
    mapping: DepositionMapping, table: OrderTable, category: str, method: str
) -> list[str | None]:
    """The type keys of a category's row elements for ``method`` (following parents)."""
    found: list[str | None] = []
    for placement in mapping.category(category).placements:
        bases = (
            [table.root_type]
            if placement.parent is None
            else _anchor_types(mapping, table, placement.parent, method)
        )
        anchor = mapping.method(method).substitute(placement.anchor)
        for base in bases:
            type_key: str | None = base
            for step in anchor.split("/"):
                name = step.split("[", 1)[0]
                if type_key is None or not table.allows(type_key, name):
                    type_key = None
                    break
                type_key = table.child_type(type_key, name)
            if type_key is not None:
                found.append(type_key)
    return found


def test_every_xml_path_of_the_mapping_exists_in_the_xsd(mapping: DepositionMapping) -> None:
    table = load_order_table()
    for category in mapping.categories():
        methods = category.methods or tuple(METHODS)
        anchors = {key for method in methods for key in _anchor_types(mapping, table, category.name, method)}
        assert anchors, f"{category.name}: no anchor of the mapping exists in the XSD"
        for item in mapping.items_for(category.name):
            for path in item.xml_paths:
                assert any(_path_allowed(table, anchor, path) for anchor in anchors), (item.mmcif_name, path)


def test_every_mapped_item_is_in_the_pdbx_dictionary(
    mapping: DepositionMapping, pdbx_dictionary: Path
) -> None:
    with gzip.open(pdbx_dictionary, "rt", encoding="utf-8", errors="replace") as handle:
        defined = {line[5:].strip().lstrip("_").lower() for line in handle if line.startswith("save__")}
    names = {item.mmcif_name for item in mapping.all_items()}
    assert len(names) > 250
    missing = sorted(n for n in names - NEWER_THAN_V5_362 if n.lstrip("_").lower() not in defined)
    assert missing == []
