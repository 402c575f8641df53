"""``scipion-kg convert``: one validated, recorded conversion between two packages' files.

The input is read and mapped to the canonical table and validated against the SHACL shapes (compiled
checks); the output's canonical content (the table completed with the user's options, minus what the
target cannot hold) is validated too, then the file is written atomically. Violations stop the
conversion unless ``permissive``. Inside a project the conversion is recorded as a skg:FormatConversion
run whose inputs, output, conventions, options and validation reports are in its PROV bundle.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_write_bytes
from .converters.canonical import Table
from .converters.engine import ConversionResult, convert_file, render_chunks
from .converters.mapping import ConversionOptions, written_table
from .errors import TableValidationError
from .table_validation import ValidationReport, validate_table
from .version import __version__

if TYPE_CHECKING:
    from .project import Project

__all__ = ["ConversionOutcome", "convert"]


# The set class of each canonical table kind, and the SHACL shape its rows follow.
_DATA_CLASS = {
    "particles": "skg:ParticleSet",
    "micrographs": "skg:MicrographSet",
    "coordinates": "skg:CoordinateSet",
    "tilt_series": "skg:TiltSeries",
}
_ROW_SHAPE = {
    "particles": "ParticleRowShape",
    "micrographs": "MicrographRowShape",
    "coordinates": "CoordinateRowShape",
    "tilt_series": "TiltViewRowShape",
}
SHAPES = "https://w3id.org/scipion-kg/shapes#"
DCTERMS_CONFORMS_TO = "http://purl.org/dc/terms/conformsTo"
# Set-level values recorded on the output entity when every optics group agrees on them.
_SET_VALUES = {
    "pixel_size": "skg:pixelSize",
    "voltage": "skg:accelerationVoltage",
    "spherical_aberration": "skg:sphericalAberration",
    "amplitude_contrast": "skg:amplitudeContrast",
    "image_size": "skg:boxSize",
}


def _set_properties(table: Table) -> dict[str, str | int | float | bool]:
    """RDF statements about a converted set: its size, the shape of its rows, shared optics values."""
    properties: dict[str, str | int | float | bool] = {"skg:itemCount": table.n_rows}
    if table.kind in _ROW_SHAPE:
        properties[DCTERMS_CONFORMS_TO] = SHAPES + _ROW_SHAPE[table.kind]
    optics = table.related.get("optics")
    for column, prop in _SET_VALUES.items():
        values = optics.columns.get(column) if optics is not None else None
        if values is not None and len(set(values.tolist())) == 1:
            value = values.tolist()[0]
            properties[prop] = int(value) if column == "image_size" else float(value)
    if table.metadata.symmetry:
        properties["skg:pointGroup"] = table.metadata.symmetry
    return properties


@dataclass
class ConversionOutcome:
    result: ConversionResult
    input_report: ValidationReport
    output_report: ValidationReport
    output_table: Table
    run_iri: str | None = None
    warnings: list[str] = field(default_factory=list)


def _check(report: ValidationReport, what: str, permissive: bool, warnings: list[str]) -> None:
    if report.conforms:
        return
    message = f"{what} violates the table shapes: {report.summary()}"
    if not permissive:
        raise TableValidationError(message + " (use --permissive to convert anyway)")
    warnings.append(message)


def _validate_all(table: Table, iri: str) -> ValidationReport:
    return validate_table(table, iri)  # the optics table is validated with it


def convert(
    source: Path,
    target: Path,
    *,
    source_format: str | None = None,
    target_format: str | None = None,
    options: ConversionOptions | None = None,
    permissive: bool = False,
    project: Project | None = None,
) -> ConversionOutcome:
    """Convert ``source`` to ``target``; record the run when ``project`` is given."""
    result, table, document = convert_file(
        source, target, source_format=source_format, target_format=target_format, options=options
    )
    warnings: list[str] = []
    input_report = _validate_all(table, source.resolve().as_uri())
    _check(input_report, f"{source}", permissive, warnings)
    output_table = written_table(table, result.loss, options)
    output_report = _validate_all(output_table, target.resolve().as_uri())
    _check(output_report, f"the converted table for {target}", permissive, warnings)
    if not result.loss.lossless:
        warnings.append(f"{target}: {result.loss}")
    data = render_chunks(document)
    outcome = ConversionOutcome(result, input_report, output_report, output_table, warnings=warnings)
    if project is None:
        atomic_write_bytes(target, data)
        return outcome
    outcome.run_iri = _record(project, outcome, data, source_format, target_format, options, permissive)
    return outcome


def _record(
    project: Project,
    outcome: ConversionOutcome,
    data: Iterable[bytes | memoryview],
    source_format: str | None,
    target_format: str | None,
    options: ConversionOptions | None,
    permissive: bool,
) -> str:
    from .recorder import Input, Parameter, Recorder, Software  # rdflib and pySHACL: only when recording

    result = outcome.result
    parameters = [
        Parameter("source_convention", result.source_convention.iri),
        Parameter("target_convention", result.target_convention.iri),
        Parameter("permissive", permissive),
        Parameter("rows", result.rows, significant=False),
        Parameter("lost_columns", [*result.loss.columns, *result.loss.extras], significant=False),
    ]
    for name, value in sorted(vars(options or ConversionOptions()).items()):
        if value is not None:
            parameters.append(Parameter(name, list(value) if isinstance(value, tuple) else value))
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        with recorder.run(
            "skg:FormatConversion",
            inputs=[Input(result.source, "source")],
            parameters=parameters,
            software=[Software("scipion-kg", __version__, algorithm="convert")],
        ) as run:
            atomic_write_bytes(result.target, data)
            run.add_output(
                result.target,
                "converted",
                _DATA_CLASS.get(outcome.output_table.kind, "skg:DataFile"),
                result.target_convention.format_iri,
                _set_properties(outcome.output_table),
            )
            for name, report in (("input", outcome.input_report), ("output", outcome.output_report)):
                path = run.directory / f"validation-{name}.ttl"
                atomic_write_bytes(path, report.to_turtle().encode("utf-8"))
                run.add_output(path, f"validation-{name}", "skg:ValidationReport", "skg:Format_Turtle")
        return run.iri


def print_warnings(outcome: ConversionOutcome) -> None:
    for warning in outcome.warnings:
        print(f"scipion-kg: warning: {warning}", file=sys.stderr)
