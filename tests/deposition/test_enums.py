"""The vendor-spelling tables against the EMDB XML schemas and the PDBx dictionary they map onto."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import gemmi
import pytest
import xmlschema
from xmlschema.validators import XsdElement

from scipion_kg.deposition.enums import KINDS, detector_enum, lookup, spelling_key, to_enum
from scipion_kg.errors import DepositionError

XSD_FILES = ("emdb.xsd", "emdb_v3.0.11.9_pypi-wwpdb.utils.emdb-1.18.xsd")
PINNED_XSD = "emdb.xsd"  # 3.0.11.3, the version the tables copy

Enumerations = dict[tuple[str, str], list[str]]


def _owner_type(element: XsdElement) -> str | None:
    """The named type (or global element) an element is declared in."""
    parent: object = element.parent
    while parent is not None and getattr(parent, "name", None) is None:
        parent = getattr(parent, "parent", None)
    return None if parent is None else str(getattr(parent, "local_name", None))


def _enumerations(path: Path) -> Enumerations:
    """(declaring type, element) -> the closed list of values, for every element of the schema."""
    schema = xmlschema.XMLSchema(path)
    found: Enumerations = {}
    for element in schema.iter_components(XsdElement):
        assert isinstance(element, XsdElement)
        kind = element.type
        simple = (
            kind
            if kind.is_simple()
            else getattr(kind, "content", None)
            if kind.has_simple_content()
            else None
        )
        values = getattr(simple, "enumeration", None)
        owner = _owner_type(element)
        if values and owner is not None:
            found[(owner, str(element.local_name))] = [str(value) for value in values]
    return found


@cache
def _schema_enumerations(folder: str) -> dict[str, Enumerations]:
    return {name: _enumerations(Path(folder) / name) for name in XSD_FILES}


@cache
def _dictionary_enumerations(path: str) -> dict[str, list[str]]:
    block = gemmi.cif.read(path).sole_block()
    found: dict[str, list[str]] = {}
    for kind in KINDS.values():
        frame = block.find_frame(f"_{kind.pdbx_item}")
        assert frame is not None, f"_{kind.pdbx_item} is not an item of the PDBx dictionary"
        found[kind.pdbx_item] = [gemmi.cif.as_string(v) for v in frame.find_values("_item_enumeration.value")]
    return found


@pytest.fixture
def xsd_enumerations(shared_data: Path) -> dict[str, Enumerations]:
    """Both EMDB schemas' closed lists (read once per session)."""
    return _schema_enumerations(str(shared_data / "emdb" / "xsd"))


@pytest.fixture
def pdbx_enumerations(shared_data: Path) -> dict[str, list[str]]:
    """category.item -> _item_enumeration.value of the PDBx dictionary, for the items the tables fill."""
    return _dictionary_enumerations(str(shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"))


XSD_KINDS = [name for name, kind in KINDS.items() if kind.xsd_element is not None]
PDBX_ONLY_KINDS = [name for name, kind in KINDS.items() if kind.xsd_element is None]


@pytest.mark.parametrize("name", XSD_KINDS)
def test_accepted_values_are_the_pinned_schema_enumeration(
    name: str, xsd_enumerations: dict[str, Enumerations]
) -> None:
    kind = KINDS[name]
    assert kind.xsd_element is not None
    assert sorted(kind.values) == sorted(xsd_enumerations[PINNED_XSD][kind.xsd_element])


@pytest.mark.parametrize("xsd", XSD_FILES)
@pytest.mark.parametrize("name", XSD_KINDS)
def test_every_mapped_value_is_accepted_by_both_schemas(
    name: str, xsd: str, xsd_enumerations: dict[str, Enumerations]
) -> None:
    kind = KINDS[name]
    assert kind.xsd_element is not None
    accepted = xsd_enumerations[xsd].get(kind.xsd_element)
    if accepted is None:
        pytest.skip(f"{xsd} has no closed list for {kind.xsd_element}")
    assert set(kind.aliases.values()) - set(accepted) == set()


@pytest.mark.parametrize("name", list(KINDS))
def test_every_mapped_value_is_in_the_pdbx_enumeration(
    name: str, pdbx_enumerations: dict[str, list[str]]
) -> None:
    kind = KINDS[name]
    accepted = pdbx_enumerations[kind.pdbx_item]
    if not accepted:
        pytest.skip(f"_{kind.pdbx_item} has no enumeration in the PDBx dictionary 5.362")
    assert set(kind.aliases.values()) - set(accepted) == set()


@pytest.mark.parametrize("name", PDBX_ONLY_KINDS)
def test_pdbx_only_lists_are_the_dictionary_enumeration(
    name: str, pdbx_enumerations: dict[str, list[str]]
) -> None:
    kind = KINDS[name]
    assert sorted(kind.values) == sorted(pdbx_enumerations[kind.pdbx_item])


@pytest.mark.parametrize("name", list(KINDS))
def test_no_two_accepted_values_share_a_spelling_key(name: str) -> None:
    values = KINDS[name].values
    assert len({spelling_key(value) for value in values}) == len(values)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("microscope", "Titan Krios G4", "TFS KRIOS"),
        ("microscope", "Krios", "TFS KRIOS"),
        ("microscope", "Titan Krios", "FEI TITAN KRIOS"),
        ("microscope", "Titan Krios G3", "FEI TITAN KRIOS"),
        ("microscope", "Glacios", "TFS GLACIOS"),
        ("microscope", "Talos Arctica", "FEI TALOS ARCTICA"),
        ("microscope", "CRYO ARM 300", "JEOL CRYO ARM 300"),
        ("microscope", "JEM-Z200FSC", "JEOL CRYO ARM 200"),
        ("microscope", "tfs krios", "TFS KRIOS"),
        ("detector", "K3", "GATAN K3 (6k x 4k)"),
        ("detector", "Falcon 4i", "TFS FALCON 4i (4k x 4k)"),
        ("detector", "TFS FALCON 4I (4K X 4K)", "TFS FALCON 4i (4k x 4k)"),
        ("detector", "Falcon 4", "FEI FALCON IV (4k x 4k)"),
        ("detector", "K2 Summit", "GATAN K2 SUMMIT (4k x 4k)"),
        ("detector", "DE-64", "DIRECT ELECTRON DE-64 (8k x 8k)"),
        ("vitrification_instrument", "Vitrobot Mark IV", "FEI VITROBOT MARK IV"),
        ("vitrification_instrument", "vitrobot mark iv", "FEI VITROBOT MARK IV"),
        ("cryogen", "liquid ethane", "ETHANE"),
        ("cryogen", "ethane/propane", "ETHANE-PROPANE"),
        ("detector_mode", "super resolution", "SUPER-RESOLUTION"),
        ("detector_mode", "counted", "COUNTING"),
        ("illumination_mode", "parallel", "FLOOD BEAM"),
        ("imaging_mode", "bright field", "BRIGHT FIELD"),
        ("electron_source", "X-FEG", "FIELD EMISSION GUN"),
        ("electron_source", "LaB6", "LAB6"),
        ("specimen_holder", "autoloader", "FEI TITAN KRIOS AUTOGRID HOLDER"),
        ("grid_material", "Au", "GOLD"),
        ("film_topology", "holey", "HOLEY"),
        ("pretreatment_type", "glow discharge", "GLOW DISCHARGE"),
        ("aggregation_state", "particle", "PARTICLE"),
        ("assembly_source", "recombinant", "RECOMBINANT"),
    ],
)
def test_vendor_spellings_map_to_the_enumeration(kind: str, text: str, expected: str) -> None:
    assert to_enum(kind, text) == expected


@pytest.mark.parametrize(
    ("model", "energy_filter", "expected"),
    [
        ("K3", None, "GATAN K3 (6k x 4k)"),
        ("K3", "BioQuantum", "GATAN K3 BIOQUANTUM (6k x 4k)"),
        ("Gatan K3", "Gatan GIF Quantum LS", "GATAN K3 BIOQUANTUM (6k x 4k)"),
        ("K3", "Gatan BioContinuum", "GATAN K3 BIOCONTINUUM (6k x 4k)"),
        ("K2 Summit", "GIF Quantum", "GATAN K2 QUANTUM (4k x 4k)"),
        ("Falcon 4i", "Selectris X", "TFS FALCON 4i (4k x 4k)"),
    ],
)
def test_detector_behind_an_energy_filter(model: str, energy_filter: str | None, expected: str) -> None:
    assert detector_enum(model, energy_filter) == expected


@pytest.mark.parametrize(
    ("kind", "text", "label", "count"),
    [
        ("microscope", "Krios Ultra 9000", "microscope model", 75),
        ("detector", "Falcon 9", "detector model", 55),
        ("cryogen", "dry ice", "cryogen", 9),
    ],
)
def test_unknown_value_names_field_value_and_closest_accepted(
    kind: str, text: str, label: str, count: int
) -> None:
    with pytest.raises(DepositionError) as raised:
        to_enum(kind, text)
    message = str(raised.value)
    assert message.startswith(f"{label} {text!r} ")
    assert f"one of {count} accepted values" in message
    suggestions = re.findall(r"'([^']*)'", message.split("closest: ", 1)[1])
    assert len(suggestions) == 5
    assert set(suggestions) <= set(KINDS[kind].values)
    assert lookup(kind, text) is None


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(DepositionError, match="no enumeration table 'microscopes'"):
        to_enum("microscopes", "Krios")
