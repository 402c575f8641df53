"""Vendor and everyday spellings mapped to the closed enumerations of EMDB and PDBx.

Each kind of value (microscope, detector, cryogen...) has the accepted values of its EMDB header element
(EMDB XML schema 3.0.11.3, ``emdb-empiar/emdb-schemas``) or, where the XML has no closed list, of its
PDBx/mmCIF item (dictionary 5.362), and a table of spellings people write. The model stores PDBx
spellings; for every kind below they are the same strings as EMDB's.

Microscope rule: the XSD names the FEI-era instruments ``FEI ...`` and those sold after the 2017 Thermo
Fisher rename ``TFS ...``. Where both exist (Krios), the FEI product name "Titan Krios" and the
generations sold by FEI (G1-G3) give ``FEI TITAN KRIOS``; the TFS name "Krios" and the later generations
(G3i, G4, G4i, G5) give ``TFS KRIOS``. "Talos Arctica" exists only as ``FEI TALOS ARCTICA``.

    to_enum("microscope", "Titan Krios G4")             # 'TFS KRIOS'
    detector_enum("K3", energy_filter="BioQuantum")     # 'GATAN K3 BIOQUANTUM (6k x 4k)'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import DepositionError

__all__ = ["KINDS", "EnumKind", "detector_enum", "enum_problem", "lookup", "spelling_key", "to_enum"]


def spelling_key(text: str) -> str:
    """Case, punctuation and spacing removed: 'Titan-Krios  G4' and 'titan krios g4' are one key."""
    return re.sub(r"[^a-z0-9+]+", " ", text.lower()).strip()


@dataclass(frozen=True)
class EnumKind:
    """One closed list: its accepted values, where they are defined, and the spellings mapped onto them.

    ``xsd_element`` is (complex type, element) of the EMDB XML schema, or None where the XML has no
    closed list; ``pdbx_item`` is the mmCIF item the value is stored in.
    """

    name: str
    label: str
    pdbx_item: str
    xsd_element: tuple[str, str] | None
    values: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def table(self) -> dict[str, str]:
        """Every accepted spelling key -> value (exact values first, so an alias never shadows one)."""
        found = {spelling_key(alias): value for alias, value in self.aliases.items()}
        found.update({spelling_key(value): value for value in self.values})
        return found


MICROSCOPES = (
    "FEI MORGAGNI", "FEI POLARA 300", "FEI TALOS ARCTICA", "FEI TECNAI 10", "FEI TECNAI 12",
    "FEI TECNAI 20", "FEI TECNAI ARCTICA", "FEI TECNAI F20", "FEI TECNAI F30", "FEI TECNAI SPHERA",
    "FEI TECNAI SPIRIT", "FEI TITAN", "FEI TITAN KRIOS", "FEI/PHILIPS CM10", "FEI/PHILIPS CM12",
    "FEI/PHILIPS CM120T", "FEI/PHILIPS CM200FEG", "FEI/PHILIPS CM200FEG/SOPHIE", "FEI/PHILIPS CM200FEG/ST",
    "FEI/PHILIPS CM200FEG/UT", "FEI/PHILIPS CM200T", "FEI/PHILIPS CM300FEG/HE", "FEI/PHILIPS CM300FEG/ST",
    "FEI/PHILIPS CM300FEG/T", "FEI/PHILIPS EM400", "FEI/PHILIPS EM420", "HITACHI EF2000",
    "HITACHI H-9500SD", "HITACHI H3000 UHVEM", "HITACHI H7600", "HITACHI HF2000", "HITACHI HF3000",
    "JEOL 100CX", "JEOL 1000EES", "JEOL 1010", "JEOL 1200", "JEOL 1200EX", "JEOL 1200EXII", "JEOL 1230",
    "JEOL 1400", "JEOL 1400/HR + YPS FEG", "JEOL 2000EX", "JEOL 2000EXII", "JEOL 2010", "JEOL 2010F",
    "JEOL 2010HC", "JEOL 2010HT", "JEOL 2010UHR", "JEOL 2011", "JEOL 2100", "JEOL 2100F", "JEOL 2200FS",
    "JEOL 2200FSC", "JEOL 3000SFF", "JEOL 3100FEF", "JEOL 3100FFC", "JEOL 3200FS", "JEOL 3200FSC",
    "JEOL 4000", "JEOL 4000EX", "JEOL CRYO ARM 200", "JEOL CRYO ARM 300", "JEOL KYOTO-3000SFF",
    "TFS GLACIOS", "TFS KRIOS", "TFS TALOS", "TFS TALOS L120C", "TFS TALOS F200C", "TFS TITAN THEMIS",
    "TFS TUNDRA", "SHUIMU TOTEM 120S", "SHUIMU TOTEM 200S", "SHUIMU TOTEM 300S", "ZEISS LEO912",
    "ZEISS LIBRA120PLUS",
)  # fmt: skip

MICROSCOPE_ALIASES = {
    "Krios": "TFS KRIOS",
    "Krios G3i": "TFS KRIOS",
    "Krios G4": "TFS KRIOS",
    "Krios G4i": "TFS KRIOS",
    "Krios G5": "TFS KRIOS",
    "Titan Krios G3i": "TFS KRIOS",
    "Titan Krios G4": "TFS KRIOS",
    "Titan Krios G4i": "TFS KRIOS",
    "Thermo Fisher Krios": "TFS KRIOS",
    "Thermo Fisher Scientific Krios G4": "TFS KRIOS",
    "Titan Krios": "FEI TITAN KRIOS",
    "Titan Krios G1": "FEI TITAN KRIOS",
    "Titan Krios G2": "FEI TITAN KRIOS",
    "Titan Krios G3": "FEI TITAN KRIOS",
    "Krios G2": "FEI TITAN KRIOS",
    "Krios G3": "FEI TITAN KRIOS",
    "Glacios": "TFS GLACIOS",
    "Glacios 2": "TFS GLACIOS",
    "Talos Arctica": "FEI TALOS ARCTICA",
    "Arctica": "FEI TALOS ARCTICA",
    "Talos L120C": "TFS TALOS L120C",
    "Talos F200C": "TFS TALOS F200C",
    "Tundra": "TFS TUNDRA",
    "Polara": "FEI POLARA 300",
    "Tecnai Polara": "FEI POLARA 300",
    "Tecnai F20": "FEI TECNAI F20",
    "Tecnai F30": "FEI TECNAI F30",
    "Tecnai Spirit": "FEI TECNAI SPIRIT",
    "Tecnai G2 Spirit": "FEI TECNAI SPIRIT",
    "Tecnai T12": "FEI TECNAI 12",
    "Tecnai G2 20": "FEI TECNAI 20",
    "CRYO ARM 300": "JEOL CRYO ARM 300",
    "CRYOARM 300": "JEOL CRYO ARM 300",
    "JEM-Z300FSC": "JEOL CRYO ARM 300",
    "CRYO ARM 300 II": "JEOL CRYO ARM 300",
    "CRYO ARM 200": "JEOL CRYO ARM 200",
    "CRYOARM 200": "JEOL CRYO ARM 200",
    "JEM-Z200FSC": "JEOL CRYO ARM 200",
    "JEM-2100F": "JEOL 2100F",
    "JEM-2100": "JEOL 2100",
    "JEM-1400": "JEOL 1400",
    "JEM-3200FSC": "JEOL 3200FSC",
    "JEM-2200FS": "JEOL 2200FS",
    "Libra 120 Plus": "ZEISS LIBRA120PLUS",
}

DETECTORS = (
    "AGFA SCIENTA FILM", "DECTRIS SINGLA (1k x 1k)", "DECTRIS ELA (1k x 0.5k)",
    "DECTRIS ARINA (0.2k x 0.2k)", "DIRECT ELECTRON APOLLO (4k x 4k)", "DIRECT ELECTRON DE-10 (5k x 4k)",
    "DIRECT ELECTRON DE-12 (4k x 3k)", "DIRECT ELECTRON DE-16 (4k x 4k)", "DIRECT ELECTRON DE-20 (5k x 3k)",
    "DIRECT ELECTRON DE-64 (8k x 8k)", "FEI CETA (4k x 4k)", "FEI EAGLE (2k x 2k)", "FEI EAGLE (4k x 4k)",
    "FEI FALCON I (4k x 4k)", "FEI FALCON II (4k x 4k)", "FEI FALCON III (4k x 4k)",
    "FEI FALCON IV (4k x 4k)", "GATAN ALPINE (2.3k x 3.2k)", "GATAN K2 (4k x 4k)",
    "GATAN K2 BASE (4k x 4k)", "GATAN K2 IS (4k x 4k)", "GATAN K2 QUANTUM (4k x 4k)",
    "GATAN K2 SUMMIT (4k x 4k)", "GATAN K3 (6k x 4k)", "GATAN K3 BIOCONTINUUM (6k x 4k)",
    "GATAN K3 BIOQUANTUM (6k x 4k)", "GATAN MULTISCAN", "GATAN ORIUS SC1000 (4k x 2.7k)",
    "GATAN ORIUS SC200 (2k x 2k)", "GATAN ORIUS SC600 (2.7k x 2.7k)", "GATAN ULTRASCAN 1000 (2k x 2k)",
    "GATAN ULTRASCAN 10000 (10k x 10k)", "GATAN ULTRASCAN 4000 (4k x 4k)", "GENERIC CCD",
    "GENERIC CCD (2k x 2k)", "GENERIC CCD (4k x 4k)", "GENERIC FILM", "GENERIC GATAN",
    "GENERIC GATAN (2k x 2k)", "GENERIC GATAN (4k x 4k)", "GENERIC IMAGE PLATES", "GENERIC TVIPS",
    "GENERIC TVIPS (2k x 2k)", "GENERIC TVIPS (4k x 4k)", "KODAK 4489 FILM", "KODAK SO-163 FILM", "OTHER",
    "PROSCAN TEM-PIV (2k x 2k)", "SIA 15C (3k x 3k)", "TFS FALCON 4i (4k x 4k)",
    "TVIPS TEMCAM-F216 (2k x 2k)", "TVIPS TEMCAM-F224 (2k x 2k)", "TVIPS TEMCAM-F415 (4k x 4k)",
    "TVIPS TEMCAM-F416 (4k x 4k)", "TVIPS TEMCAM-F816 (8k x 8k)",
)  # fmt: skip

K3 = "GATAN K3 (6k x 4k)"
K3_BIOQUANTUM = "GATAN K3 BIOQUANTUM (6k x 4k)"
K3_BIOCONTINUUM = "GATAN K3 BIOCONTINUUM (6k x 4k)"
K2_QUANTUM = "GATAN K2 QUANTUM (4k x 4k)"

DETECTOR_ALIASES = {
    "K3": K3,
    "Gatan K3": K3,
    "K3 BioQuantum": K3_BIOQUANTUM,
    "K3 GIF BioQuantum": K3_BIOQUANTUM,
    "K3 BioContinuum": K3_BIOCONTINUUM,
    "K2": "GATAN K2 (4k x 4k)",
    "K2 Summit": "GATAN K2 SUMMIT (4k x 4k)",
    "Gatan K2 Summit": "GATAN K2 SUMMIT (4k x 4k)",
    "K2 IS": "GATAN K2 IS (4k x 4k)",
    "K2 Base": "GATAN K2 BASE (4k x 4k)",
    "K2 Quantum": K2_QUANTUM,
    "Falcon 4i": "TFS FALCON 4i (4k x 4k)",
    "Falcon IVi": "TFS FALCON 4i (4k x 4k)",
    "Falcon 4": "FEI FALCON IV (4k x 4k)",
    "Falcon IV": "FEI FALCON IV (4k x 4k)",
    "Falcon 3": "FEI FALCON III (4k x 4k)",
    "Falcon III": "FEI FALCON III (4k x 4k)",
    "Falcon 3EC": "FEI FALCON III (4k x 4k)",
    "Falcon 2": "FEI FALCON II (4k x 4k)",
    "Falcon II": "FEI FALCON II (4k x 4k)",
    "Ceta": "FEI CETA (4k x 4k)",
    "Ceta 16M": "FEI CETA (4k x 4k)",
    "Eagle 4k": "FEI EAGLE (4k x 4k)",
    "DE-64": "DIRECT ELECTRON DE-64 (8k x 8k)",
    "DE64": "DIRECT ELECTRON DE-64 (8k x 8k)",
    "DE-20": "DIRECT ELECTRON DE-20 (5k x 3k)",
    "DE-16": "DIRECT ELECTRON DE-16 (4k x 4k)",
    "DE-12": "DIRECT ELECTRON DE-12 (4k x 3k)",
    "Apollo": "DIRECT ELECTRON APOLLO (4k x 4k)",
    "Alpine": "GATAN ALPINE (2.3k x 3.2k)",
    "Singla": "DECTRIS SINGLA (1k x 1k)",
    "TemCam-F416": "TVIPS TEMCAM-F416 (4k x 4k)",
    "F416": "TVIPS TEMCAM-F416 (4k x 4k)",
}

VITRIFICATION_INSTRUMENTS = (
    "CRYOSOL VITROJET", "EMS-002 RAPID IMMERSION FREEZER", "FEI VITROBOT MARK I", "FEI VITROBOT MARK II",
    "FEI VITROBOT MARK III", "FEI VITROBOT MARK IV", "GATAN CRYOPLUNGE 3", "HOMEMADE PLUNGER",
    "LEICA EM CPC", "LEICA EM GP", "LEICA KF80", "LEICA PLUNGER", "REICHERT-JUNG PLUNGER", "SPOTITON",
    "SPT LABTECH CHAMELEON", "ZEISS PLUNGE FREEZER CRYOBOX", "OTHER",
)  # fmt: skip

VITRIFICATION_ALIASES = {
    "Vitrobot Mark IV": "FEI VITROBOT MARK IV",
    "Vitrobot Mk IV": "FEI VITROBOT MARK IV",
    "Vitrobot IV": "FEI VITROBOT MARK IV",
    "Vitrobot Mark 4": "FEI VITROBOT MARK IV",
    "Thermo Fisher Vitrobot Mark IV": "FEI VITROBOT MARK IV",
    "Vitrobot Mark III": "FEI VITROBOT MARK III",
    "Vitrobot Mark II": "FEI VITROBOT MARK II",
    "Vitrobot Mark I": "FEI VITROBOT MARK I",
    "Cryoplunge 3": "GATAN CRYOPLUNGE 3",
    "CP3": "GATAN CRYOPLUNGE 3",
    "Leica GP": "LEICA EM GP",
    "EM GP": "LEICA EM GP",
    "home-made plunger": "HOMEMADE PLUNGER",
    "home made plunger": "HOMEMADE PLUNGER",
    "manual plunger": "HOMEMADE PLUNGER",
}

CRYOGENS = (
    "ETHANE", "ETHANE-PROPANE", "FREON 12", "FREON 22", "HELIUM", "METHANE", "NITROGEN", "OTHER", "PROPANE",
)  # fmt: skip

CRYOGEN_ALIASES = {
    "liquid ethane": "ETHANE",
    "ethane/propane": "ETHANE-PROPANE",
    "ethane propane mix": "ETHANE-PROPANE",
    "ethane-propane mixture": "ETHANE-PROPANE",
    "liquid nitrogen": "NITROGEN",
    "LN2": "NITROGEN",
    "liquid propane": "PROPANE",
    "liquid helium": "HELIUM",
}

DETECTOR_MODE_ALIASES = {
    "counted": "COUNTING",
    "electron counting": "COUNTING",
    "counting mode": "COUNTING",
    "super resolution": "SUPER-RESOLUTION",
    "superresolution": "SUPER-RESOLUTION",
    "super-res": "SUPER-RESOLUTION",
    "super resolution counting": "SUPER-RESOLUTION",
    "linear": "INTEGRATING",
    "linear mode": "INTEGRATING",
    "integrating mode": "INTEGRATING",
}

ILLUMINATION_ALIASES = {
    # EPU and SerialEM call flood-beam TEM illumination "parallel".
    "parallel": "FLOOD BEAM",
    "parallel illumination": "FLOOD BEAM",
    "flood": "FLOOD BEAM",
    "spot": "SPOT SCAN",
}

IMAGING_ALIASES = {
    "brightfield": "BRIGHT FIELD",
    "BF": "BRIGHT FIELD",
    "TEM bright field": "BRIGHT FIELD",
    "darkfield": "DARK FIELD",
    "DF": "DARK FIELD",
}

ELECTRON_SOURCE_ALIASES = {
    "FEG": "FIELD EMISSION GUN",
    "X-FEG": "FIELD EMISSION GUN",
    "XFEG": "FIELD EMISSION GUN",
    "E-CFEG": "FIELD EMISSION GUN",
    "cold FEG": "FIELD EMISSION GUN",
    "CFEG": "FIELD EMISSION GUN",
    "Schottky FEG": "FIELD EMISSION GUN",
    "field emission": "FIELD EMISSION GUN",
    "LaB6 filament": "LAB6",
    "tungsten": "TUNGSTEN HAIRPIN",
    "tungsten filament": "TUNGSTEN HAIRPIN",
    "W filament": "TUNGSTEN HAIRPIN",
}

SPECIMEN_HOLDERS = (
    "FISCHIONE 2550", "FISCHIONE INSTRUMENTS DUAL AXIS TOMOGRAPHY HOLDER",
    "FEI TITAN KRIOS AUTOGRID HOLDER", "GATAN 626 SINGLE TILT LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "GATAN 910 MULTI-SPECIMEN SINGLE TILT CRYO TRANSFER HOLDER",
    "GATAN 914 HIGH TILT LIQUID NITROGEN CRYO TRANSFER TOMOGRAPHY HOLDER",
    "GATAN 915 DOUBLE TILT LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "GATAN CHDT 3504 DOUBLE TILT HIGH RESOLUTION NITROGEN COOLING HOLDER",
    "GATAN CT3500 SINGLE TILT LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "GATAN CT3500TR SINGLE TILT ROTATION LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "GATAN ELSA 698 SINGLE TILT LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "GATAN HC 3500 SINGLE TILT HEATING/NITROGEN COOLING HOLDER",
    "GATAN HCHDT 3010 DOUBLE TILT HIGH RESOLUTION HELIUM COOLING HOLDER",
    "GATAN HCHST 3008 SINGLE TILT HIGH RESOLUTION HELIUM COOLING HOLDER", "GATAN HELIUM",
    "GATAN LIQUID NITROGEN", "GATAN UHRST 3500 SINGLE TILT ULTRA HIGH RESOLUTION NITROGEN COOLING HOLDER",
    "GATAN ULTDT ULTRA LOW TEMPERATURE DOUBLE TILT HELIUM COOLING HOLDER",
    "GATAN ULTST ULTRA LOW TEMPERATURE SINGLE TILT HELIUM COOLING HOLDER", "HOME BUILD", "JEOL",
    "JEOL 3200FSC CRYOHOLDER", "OTHER", "PHILIPS ROTATION HOLDER", "SIDE ENTRY, EUCENTRIC",
    "JEOL CRYOSPECPORTER",
)  # fmt: skip

SPECIMEN_HOLDER_ALIASES = {
    "autoloader": "FEI TITAN KRIOS AUTOGRID HOLDER",
    "Krios autoloader": "FEI TITAN KRIOS AUTOGRID HOLDER",
    "autogrid holder": "FEI TITAN KRIOS AUTOGRID HOLDER",
    "Titan Krios autogrid holder": "FEI TITAN KRIOS AUTOGRID HOLDER",
    "Gatan 626": "GATAN 626 SINGLE TILT LIQUID NITROGEN CRYO TRANSFER HOLDER",
    "Gatan 914": "GATAN 914 HIGH TILT LIQUID NITROGEN CRYO TRANSFER TOMOGRAPHY HOLDER",
    "Gatan 910": "GATAN 910 MULTI-SPECIMEN SINGLE TILT CRYO TRANSFER HOLDER",
    "Fischione 2550 tomography holder": "FISCHIONE 2550",
    "CryoSPECPORTER": "JEOL CRYOSPECPORTER",
}

GRID_MATERIALS = (
    "COPPER", "COPPER/PALLADIUM", "COPPER/RHODIUM", "GOLD", "GRAPHENE OXIDE", "MOLYBDENUM", "NICKEL",
    "NICKEL/TITANIUM", "PLATINUM", "SILICON NITRIDE", "TITANIUM", "TUNGSTEN",
)  # fmt: skip

GRID_MATERIAL_ALIASES = {
    "Cu": "COPPER",
    "Au": "GOLD",
    "Ni": "NICKEL",
    "Mo": "MOLYBDENUM",
    "Cu/Rh": "COPPER/RHODIUM",
}

FILM_MATERIALS = (
    "CARBON", "CELLULOSE ACETATE", "FORMVAR", "GOLD", "GRAPHENE", "GRAPHENE OXIDE", "PARLODION",
    "SILICON DIOXIDE",
)  # fmt: skip

FILM_MATERIAL_ALIASES = {"amorphous carbon": "CARBON", "C": "CARBON", "GO": "GRAPHENE OXIDE", "Au": "GOLD"}

FILM_TOPOLOGY_ALIASES = {
    "holes": "HOLEY",
    "holey film": "HOLEY",
    "lace": "LACEY",
    "continuous film": "CONTINUOUS",
}

ATMOSPHERE_ALIASES = {"room air": "AIR", "N2": "NITROGEN"}

PRETREATMENT_ALIASES = {
    "glow discharged": "GLOW DISCHARGE",
    "glow-discharge": "GLOW DISCHARGE",
    "glow discharging": "GLOW DISCHARGE",
    "plasma cleaned": "PLASMA CLEANING",
    "plasma": "PLASMA CLEANING",
}

AGGREGATION_ALIASES = {
    "single particle": "PARTICLE",
    "particles": "PARTICLE",
    "filaments": "FILAMENT",
    "helical": "HELICAL ARRAY",
    "2D crystal": "2D ARRAY",
    "3D crystal": "3D ARRAY",
    "twoDArray": "2D ARRAY",
    "threeDArray": "3D ARRAY",
    "helicalArray": "HELICAL ARRAY",
}

SOURCE_ALIASES = {
    "native": "NATURAL",
    "expressed": "RECOMBINANT",
    "synthesized": "SYNTHETIC",
    "mixed": "MULTIPLE SOURCES",
}


def _kinds() -> dict[str, EnumKind]:
    microscopy = "base_microscopy_type"
    kinds = [
        EnumKind(
            "microscope",
            "microscope model",
            "em_imaging.microscope_model",
            (microscopy, "microscope"),
            MICROSCOPES,
            MICROSCOPE_ALIASES,
        ),
        EnumKind(
            "detector",
            "detector model",
            "em_image_recording.film_or_detector_model",
            ("image_recording", "film_or_detector_model"),
            DETECTORS,
            DETECTOR_ALIASES,
        ),
        EnumKind(
            "detector_mode",
            "detector mode",
            "em_image_recording.detector_mode",
            ("image_recording", "detector_mode"),
            ("COUNTING", "INTEGRATING", "OTHER", "SUPER-RESOLUTION"),
            DETECTOR_MODE_ALIASES,
        ),
        EnumKind(
            "illumination_mode",
            "illumination mode",
            "em_imaging.illumination_mode",
            (microscopy, "illumination_mode"),
            ("FLOOD BEAM", "SPOT SCAN", "OTHER"),
            ILLUMINATION_ALIASES,
        ),
        EnumKind(
            "imaging_mode",
            "imaging mode",
            "em_imaging.mode",
            (microscopy, "imaging_mode"),
            ("4D-STEM", "BRIGHT FIELD", "DARK FIELD", "DIFFRACTION", "OTHER"),
            IMAGING_ALIASES,
        ),
        EnumKind(
            "electron_source",
            "electron source",
            "em_imaging.electron_source",
            (microscopy, "electron_source"),
            ("TUNGSTEN HAIRPIN", "LAB6", "OTHER", "FIELD EMISSION GUN"),
            ELECTRON_SOURCE_ALIASES,
        ),
        EnumKind(
            "specimen_holder",
            "specimen holder model",
            "em_imaging.specimen_holder_model",
            (microscopy, "specimen_holder_model"),
            SPECIMEN_HOLDERS,
            SPECIMEN_HOLDER_ALIASES,
        ),
        EnumKind(
            "vitrification_instrument",
            "vitrification instrument",
            "em_vitrification.instrument",
            ("vitrification_type", "instrument"),
            VITRIFICATION_INSTRUMENTS,
            VITRIFICATION_ALIASES,
        ),
        EnumKind(
            "cryogen",
            "cryogen",
            "em_vitrification.cryogen_name",
            ("vitrification_type", "cryogen_name"),
            CRYOGENS,
            CRYOGEN_ALIASES,
        ),
        EnumKind(
            "grid_material",
            "grid material",
            "em_sample_support.grid_material",
            ("grid_type", "material"),
            GRID_MATERIALS,
            GRID_MATERIAL_ALIASES,
        ),
        EnumKind(
            "film_material",
            "support film material",
            "em_support_film.material",
            ("film_type", "film_material"),
            FILM_MATERIALS,
            FILM_MATERIAL_ALIASES,
        ),
        EnumKind(
            "film_topology",
            "support film topology",
            "em_support_film.topology",
            ("film_type", "film_topology"),
            ("CONTINUOUS", "HOLEY", "HOLEY ARRAY", "LACEY"),
            FILM_TOPOLOGY_ALIASES,
        ),
        EnumKind(
            "pretreatment_atmosphere",
            "grid pretreatment atmosphere",
            "em_grid_pretreatment.atmosphere",
            ("grid_pretreatment_type", "atmosphere"),
            ("AIR", "AMYLAMINE", "NITROGEN", "OTHER"),
            ATMOSPHERE_ALIASES,
        ),
        # The XML has no closed list for the next three (or spells it differently): PDBx values.
        EnumKind(
            "pretreatment_type",
            "grid pretreatment",
            "em_grid_pretreatment.type",
            None,
            ("GLOW DISCHARGE", "PLASMA CLEANING"),
            PRETREATMENT_ALIASES,
        ),
        EnumKind(
            "aggregation_state",
            "aggregation state",
            "em_experiment.aggregation_state",
            None,
            ("2D ARRAY", "3D ARRAY", "HELICAL ARRAY", "FILAMENT", "PARTICLE", "TISSUE", "CELL"),
            AGGREGATION_ALIASES,
        ),
        EnumKind(
            "assembly_source",
            "source of a sample component",
            "em_entity_assembly.source",
            None,
            ("NATURAL", "RECOMBINANT", "MULTIPLE SOURCES", "SYNTHETIC"),
            SOURCE_ALIASES,
        ),
    ]
    return {kind.name: kind for kind in kinds}


KINDS: dict[str, EnumKind] = _kinds()
_TABLES: dict[str, dict[str, str]] = {name: kind.table() for name, kind in KINDS.items()}


def _kind(kind: str) -> EnumKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise DepositionError(f"no enumeration table {kind!r}; known: {', '.join(sorted(KINDS))}") from None


def lookup(kind: str, text: str) -> str | None:
    """The enumeration value ``text`` stands for, or None when it is neither a value nor a known spelling."""
    _kind(kind)
    return _TABLES[kind].get(spelling_key(text))


def enum_problem(kind: str, text: str) -> str:
    """Why ``text`` is refused, with the five closest accepted values and the number of all of them."""
    found = _kind(kind)
    closest = difflib.get_close_matches(
        text.upper(), [value.upper() for value in found.values], n=5, cutoff=0.0
    )
    by_upper = {value.upper(): value for value in found.values}
    suggestions = ", ".join(repr(by_upper[value]) for value in closest)
    return (
        f"{found.label} {text!r} is not a value EMDB accepts for {found.pdbx_item}; closest: {suggestions} "
        f"(one of {len(found.values)} accepted values)"
    )


def to_enum(kind: str, text: str) -> str:
    """``text`` as the enumeration value of ``kind`` (exact values in any case, or a vendor spelling)."""
    value = lookup(kind, text)
    if value is None:
        raise DepositionError(enum_problem(kind, text))
    return value


def detector_enum(text: str, energy_filter: str | None = None) -> str:
    """The detector model, taking the energy filter in front of it into account.

    A K3 behind a Gatan BioQuantum (or GIF Quantum) is ``GATAN K3 BIOQUANTUM``, behind a BioContinuum
    ``GATAN K3 BIOCONTINUUM``; a K2 behind a Quantum is ``GATAN K2 QUANTUM``. Other filters (e.g. TFS
    Selectris in front of a Falcon) do not change the detector's name.
    """
    model = to_enum("detector", text)
    if energy_filter is None:
        return model
    name = spelling_key(energy_filter)
    if "continuum" in name and model == K3:
        return K3_BIOCONTINUUM
    if "quantum" in name or name in {"gif", "gatan imaging filter"}:
        if model == K3:
            return K3_BIOQUANTUM
        if model.startswith("GATAN K2"):
            return K2_QUANTUM
    return model
