"""The completeness shapes: every mandatory item of a single-particle entry, reported in plain words."""

from __future__ import annotations

from pathlib import Path

import gemmi
import pytest

from scipion_kg.deposition.completeness import missing_items
from scipion_kg.deposition.metadata import load_metadata
from scipion_kg.deposition.model import Deposition, Evidence, FieldValue

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deposition-demo.yaml"

# What a single-particle map entry must have (keys and links excluded), from the EMDB notes: the XML
# schema's mandatory elements (admin title and authors, primary citation title/journal/authors and whether
# it is published, sample
# component name and parent, microscope, illumination, imaging mode, electron source, voltage, detector,
# every map header element), the PDBx mandatory (M) and deposition-mandatory (D) items of em_experiment,
# em_entity_assembly(_naturalsource), em_specimen, em_buffer, em_vitrification, em_imaging,
# em_image_recording, em_ctf_correction, em_3d_reconstruction, em_map, struct_keywords and
# pdbx_audit_support (funding), and what
# OneDep asks of a map entry (software per step, resolution and its method, point symmetry, contour level).
XML_SCHEMA = [
    ("em_admin", "title"),
    ("em_author_list", "author"),
    ("citation", "title"),
    ("citation", "journal_abbrev"),
    ("citation", "unpublished_flag"),
    ("citation_author", "name"),
    ("em_experiment", "reconstruction_method"),
    ("em_experiment", "aggregation_state"),
    ("em_entity_assembly", "name"),
    ("em_entity_assembly", "parent_id"),
    ("em_imaging", "microscope_model"),
    ("em_imaging", "illumination_mode"),
    ("em_imaging", "mode"),
    ("em_imaging", "electron_source"),
    ("em_imaging", "accelerating_voltage"),
    ("em_image_recording", "film_or_detector_model"),
    *(
        ("em_map", item)
        for item in (
            "file",
            "format",
            "size_kb",
            "data_type",
            "dimensions_col",
            "dimensions_row",
            "dimensions_sec",
            "origin_col",
            "origin_row",
            "origin_sec",
            "spacing_x",
            "spacing_y",
            "spacing_z",
            "cell_a",
            "cell_b",
            "cell_c",
            "cell_alpha",
            "cell_beta",
            "cell_gamma",
            "axis_order_fast",
            "axis_order_medium",
            "axis_order_slow",
            "pixel_spacing_x",
            "pixel_spacing_y",
            "pixel_spacing_z",
        )
    ),
]
ONEDEP = [
    ("struct_keywords", "text"),
    ("pdbx_audit_support", "funding_organization"),
    ("em_entity_assembly", "source"),
    ("em_entity_assembly", "type"),
    ("em_entity_assembly_naturalsource", "organism"),
    ("em_entity_assembly_naturalsource", "ncbi_tax_id"),
    ("em_specimen", "embedding_applied"),
    ("em_specimen", "shadowing_applied"),
    ("em_specimen", "staining_applied"),
    ("em_specimen", "vitrification_applied"),
    ("em_buffer", "pH"),
    ("em_vitrification", "cryogen_name"),
    ("em_image_recording", "avg_electron_dose_per_image"),
    ("em_software", "name"),
    ("em_software", "version"),
    ("em_software", "category"),
    ("em_ctf_correction", "type"),
    ("em_3d_reconstruction", "resolution"),
    ("em_3d_reconstruction", "resolution_method"),
    ("em_3d_reconstruction", "num_particles"),
    ("em_3d_reconstruction", "symmetry_type"),
    ("em_single_particle_entity", "point_symmetry"),
    ("em_map", "type"),
    ("em_map", "partition"),
    ("em_map", "endian_type"),
    ("em_map", "symmetry_space_group"),
    ("em_map", "contour_level"),
]
SPEC = set(XML_SCHEMA) | set(ONEDEP)
MAP_ITEMS = sorted(
    item for category, item in SPEC if category == "em_map" and item not in {"type", "contour_level"}
)

# Items the provenance graph fills for the demo (the rest comes from the metadata file).
GRAPH_PROVIDED = {
    ("em_experiment", "reconstruction_method"),
    ("em_imaging", "accelerating_voltage"),
    ("em_image_recording", "avg_electron_dose_per_image"),
    ("em_software", "name"),
    ("em_software", "version"),
    ("em_software", "category"),
    ("em_ctf_correction", "type"),
    ("em_3d_reconstruction", "resolution"),
    ("em_3d_reconstruction", "resolution_method"),
    ("em_3d_reconstruction", "num_particles"),
    ("em_3d_reconstruction", "symmetry_type"),
    ("em_single_particle_entity", "point_symmetry"),
    *(("em_map", item) for item in MAP_ITEMS),
}

EVIDENCE = Evidence.default("test value")


def _value(category: str, item: str) -> FieldValue:
    numbers: dict[str, FieldValue] = {
        "accelerating_voltage": 300,
        "pH": 7.5,
        "ncbi_tax_id": 9606,
        "parent_id": 0,
    }
    return numbers.get(item, f"{category}.{item} value")


def _map_row(deposition: Deposition, map_type: str, contour: float | None) -> None:
    values: dict[str, FieldValue] = {item: 1 for item in MAP_ITEMS}
    values |= {"type": map_type, "file": f"{map_type.replace(' ', '_')}.map"}
    if contour is not None:
        values["contour_level"] = contour
    deposition.add_row("em_map", values, EVIDENCE)


def _complete() -> Deposition:
    deposition = Deposition()
    for category, item in sorted(SPEC):
        if category != "em_map":
            deposition.set(category, item, _value(category, item), EVIDENCE)
    _map_row(deposition, "primary map", 0.5)
    _map_row(deposition, "half map", 0.3)
    _map_row(deposition, "half map", 0.3)
    return deposition


def _pairs(deposition: Deposition) -> set[tuple[str, str]]:
    return {(missing.category, missing.item) for missing in missing_items(deposition)}


def test_an_empty_deposition_lacks_every_mandatory_item() -> None:
    assert _pairs(Deposition()) == SPEC


def test_the_report_order_is_stable_and_follows_the_topics() -> None:
    first = missing_items(Deposition())
    assert first == missing_items(Deposition())
    categories = [missing.category for missing in first]
    assert (
        categories.index("em_admin") < categories.index("em_entity_assembly") < categories.index("em_imaging")
    )
    assert (
        categories.index("em_imaging") < categories.index("em_3d_reconstruction") < categories.index("em_map")
    )


def test_every_report_says_why_and_where_from() -> None:
    for missing in missing_items(Deposition()):
        assert missing.why in {"EMDB XML schema", "OneDep"}
        assert missing.hint and missing.label
    why = {(missing.category, missing.item): missing.why for missing in missing_items(Deposition())}
    assert {pair for pair, reason in why.items() if reason == "EMDB XML schema"} == set(XML_SCHEMA)


def test_every_required_item_is_a_pdbx_item(shared_data: Path) -> None:
    dictionary = gemmi.cif.read(str(shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"))
    block = dictionary.sole_block()
    unknown = [
        f"_{category}.{item}" for category, item in SPEC if block.find_frame(f"_{category}.{item}") is None
    ]
    assert unknown == []


def test_a_complete_deposition_lacks_nothing() -> None:
    assert missing_items(_complete()) == []


@pytest.mark.parametrize(
    ("category", "item", "label", "why"),
    [
        ("em_buffer", "pH", "buffer pH", "OneDep"),
        ("em_imaging", "microscope_model", "microscope model", "EMDB XML schema"),
        ("em_vitrification", "cryogen_name", "cryogen used for vitrification", "OneDep"),
        (
            "em_entity_assembly_naturalsource",
            "ncbi_tax_id",
            "NCBI taxonomy id of the source organism",
            "OneDep",
        ),
    ],
)
def test_removing_one_item_reports_exactly_that_item(category: str, item: str, label: str, why: str) -> None:
    deposition = _complete()
    del deposition.categories[category][0][item]
    missing = missing_items(deposition)
    assert [(m.category, m.item, m.label, m.why, m.row) for m in missing] == [(category, item, label, why, 0)]


def test_a_missing_item_names_the_row_that_lacks_it() -> None:
    deposition = _complete()
    deposition.add_row(
        "em_entity_assembly", {"parent_id": 1, "source": "RECOMBINANT", "type": "COMPLEX"}, EVIDENCE
    )
    missing = missing_items(deposition)
    assert [(m.category, m.item, m.row) for m in missing] == [("em_entity_assembly", "name", 1)]


def test_an_empty_text_counts_as_missing() -> None:
    deposition = _complete()
    deposition.set("em_admin", "title", "  ", EVIDENCE)
    assert _pairs(deposition) == {("em_admin", "title")}


@pytest.mark.parametrize(
    ("map_types", "expected_labels"),
    [
        (["primary map", "half map"], ["the two half maps"]),
        (["primary map", "half map", "half map", "half map"], ["the two half maps"]),
        (["half map", "half map"], ["the primary map"]),
        (["primary map", "half map", "half map", "mask"], []),
    ],
)
def test_onedep_needs_one_primary_map_and_two_half_maps(
    map_types: list[str], expected_labels: list[str]
) -> None:
    deposition = _complete()
    deposition.categories["em_map"] = []
    for map_type in map_types:
        _map_row(deposition, map_type, None if map_type == "mask" else 0.2)
    assert [missing.label for missing in missing_items(deposition)] == expected_labels


def test_contour_level_is_needed_for_half_maps_but_not_masks() -> None:
    deposition = _complete()
    _map_row(deposition, "mask", None)
    del deposition.categories["em_map"][1]["contour_level"]
    missing = missing_items(deposition)
    assert [(m.category, m.item, m.row) for m in missing] == [("em_map", "contour_level", 1)]


def _graph_side_of_the_demo() -> Deposition:
    """The items the provenance graph fills for the demo's map (simulation: 300 kV, 12 frames of 3 e/Å²)."""
    deposition = Deposition()
    deposition.set("em_experiment", "reconstruction_method", "SINGLE PARTICLE", EVIDENCE)
    deposition.set("em_imaging", "accelerating_voltage", 300, EVIDENCE)
    deposition.set("em_imaging", "nominal_cs", 2.7, EVIDENCE)
    deposition.set("em_image_recording", "avg_electron_dose_per_image", 3.0 * 12, EVIDENCE)
    deposition.add_row(
        "em_software", {"name": "scipion-kg", "version": "0", "category": "RECONSTRUCTION"}, EVIDENCE
    )
    deposition.set("em_ctf_correction", "type", "PHASE FLIPPING AND AMPLITUDE CORRECTION", EVIDENCE)
    for item, value in (
        ("resolution", 4.2),
        ("resolution_method", "FSC 0.143 CUT-OFF"),
        ("num_particles", 1000),
        ("symmetry_type", "POINT"),
    ):
        deposition.set("em_3d_reconstruction", item, value, EVIDENCE)
    deposition.set("em_single_particle_entity", "point_symmetry", "C1", EVIDENCE)
    for map_type in ("primary map", "half map", "half map"):
        _map_row(deposition, map_type, None)
    return deposition


def test_the_demo_metadata_and_the_graph_together_lack_nothing() -> None:
    deposition = _graph_side_of_the_demo()
    load_metadata(EXAMPLE, deposition)
    assert missing_items(deposition) == []


def test_the_demo_metadata_alone_lacks_only_what_the_graph_gives() -> None:
    deposition = Deposition()
    load_metadata(EXAMPLE, deposition)
    assert _pairs(deposition) == GRAPH_PROVIDED
