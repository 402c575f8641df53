"""``scipion-kg import-emdb HEADER.xml``: an EMDB v3 header recorded as the description of a map made
elsewhere (entry id, method, software per step, resolution, symmetry, particles, microscope).

The import is one run that used the header file and generated a JSON description (every value with the
XML path it came from); the description's set-level properties make the entry queryable in the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import DepositionError
from ..recorder import Input, Parameter, PropertyValue, Recorder, RunContext, Software
from ..version import __version__
from .emdb_xml import read_emdb_xml_report
from .model import Deposition
from .serialize import deposition_json

__all__ = ["ImportedEntry", "description_properties", "import_emdb_header"]


@dataclass(frozen=True)
class ImportedEntry:
    run: RunContext
    deposition: Deposition
    unmapped: list[str]
    description: Path


def _first(deposition: Deposition, category: str, item: str) -> PropertyValue | None:
    for row in deposition.rows(category):
        found = row.get(item)
        if found is not None:
            return found.value
    return None


def _number(value: PropertyValue | None) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except ValueError:
        return None


def description_properties(deposition: Deposition) -> dict[str, PropertyValue | list[PropertyValue]]:
    """The set-level properties an imported entry gets in the graph (only those the header gives)."""
    properties: dict[str, PropertyValue | list[PropertyValue]] = {
        "skg:emdbEntryId": deposition.entry_id,
        "skg:reconstructionMethod": deposition.method,
    }
    text_items = {
        "skg:resolutionMethod": ("em_3d_reconstruction", "resolution_method"),
        "skg:pointGroup": ("em_single_particle_entity", "point_symmetry"),
        "skg:microscopeModel": ("em_imaging", "microscope_model"),
        "skg:aggregationState": ("em_experiment", "aggregation_state"),
    }
    for name, (category, item) in text_items.items():
        value = _first(deposition, category, item)
        if value is not None:
            properties[name] = str(value)
    number_items = {
        "skg:resolution": ("em_3d_reconstruction", "resolution"),
        "skg:accelerationVoltage": ("em_imaging", "accelerating_voltage"),
        "skg:sphericalAberration": ("em_imaging", "nominal_cs"),
        "skg:pixelSize": ("em_map", "pixel_spacing_x"),
    }
    for name, (category, item) in number_items.items():
        number = _number(_first(deposition, category, item))
        if number is not None:
            properties[name] = number
    particles = _number(_first(deposition, "em_3d_reconstruction", "num_particles"))
    if particles is not None:
        properties["skg:numberOfParticlesUsed"] = int(particles)
    software = sorted(
        {
            f"{row['category'].value if 'category' in row else 'OTHER'}: "
            f"{row['name'].value}{' ' + str(row['version'].value) if 'version' in row else ''}"
            for row in deposition.rows("em_software")
            if "name" in row
        }
    )
    if software:
        properties["skg:reportedSoftware"] = list(software)
    return properties


def import_emdb_header(recorder: Recorder, header: Path) -> ImportedEntry:
    """Read ``header`` (EMDB XML v3) and record it; a DepositionError names what the file lacks."""
    if not header.is_file():
        raise DepositionError(f"{header}: no such file")
    deposition, unmapped = read_emdb_xml_report(header)
    description_name = f"{deposition.entry_id.lower().replace('-', '_')}_description.json"
    with recorder.run(
        "skg:ImportEMDBHeader",
        inputs=[Input(header, "header", "skg:EMDBHeader", "skg:Format_EMDBHeaderXML")],
        parameters=[Parameter("entry_id", deposition.entry_id)],
        software=[Software("scipion-kg", __version__, algorithm="EMDB header XML v3 reader")],
    ) as run:
        description = run.directory / description_name
        atomic_write_bytes(description, deposition_json(deposition))
        properties = description_properties(deposition)
        run.add_output(description, "description", "skg:ExternalMapDescription", properties=properties)
    return ImportedEntry(run, deposition, unmapped, description)
