"""Step ``import_movies``: register movies with their acquisition (pixel size, voltage, Cs, amplitude
contrast, dose per frame), read from SerialEM ``.mdoc`` files where present, else from parameters.

A parameter given explicitly overrides the mdoc. A movie whose header is corrupt or truncated, or a pixel
size, voltage or dose that neither the mdoc nor the parameters give, stops the workflow before it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.serialem_mdoc import read as read_mdoc

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ProcessingError, ScipionKGError

from .images import check_mrc
from .parameters import ParameterSpec, Value
from .software import builtin_software
from .step import Backend, Port, StepContext, StepTask
from .tables import optics_table, write_star

__all__ = ["TASK", "ImportMoviesTask", "acquisition"]


def _mdoc_values(path: Path) -> dict[str, float]:
    """Pixel size, voltage and dose per frame from a SerialEM mdoc (first section, then globals)."""
    document = read_mdoc(path)
    values: dict[str, float] = {}
    sections = [block for name, block in document.blocks.items() if name in ("ZValue", "FrameSet")]

    def first(key: str) -> float | None:
        for block in sections:
            if key in block.columns and len(block.columns[key]):
                value = block.columns[key][0]
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if np.isfinite(number):
                    return number
        if key in document.fields:
            try:
                return float(str(document.fields[key]).split()[0])
            except ValueError:
                return None
        return None

    pixel = first("PixelSpacing")
    voltage = first("Voltage")
    dose = first("ExposureDose")
    frames = first("NumSubFrames")
    if pixel is not None:
        values["pixel_size"] = pixel
    if voltage is not None:
        values["voltage"] = voltage
    if dose is not None and frames:
        values["dose_per_frame"] = dose / frames
    return values


def acquisition(step_id: str, parameters: Mapping[str, Value | None], mdocs: list[Path]) -> dict[str, float]:
    """The acquisition of the movies: parameters first, then the mdoc files (which must agree)."""
    found: dict[str, float] = {}
    for mdoc in mdocs:
        try:
            values = _mdoc_values(mdoc)
        except ScipionKGError as error:
            raise ProcessingError(f"step {step_id}: {error}") from error
        for key, value in values.items():
            if key in found and abs(found[key] - value) > 1e-6 * max(1.0, abs(value)):
                raise ProcessingError(
                    f"step {step_id}: {mdoc} gives {key} {value}, another mdoc gives {found[key]}; "
                    "import movies of one acquisition at a time"
                )
            found[key] = value
    for key in ("pixel_size", "voltage", "dose_per_frame", "spherical_aberration", "amplitude_contrast"):
        if parameters.get(key) is not None:
            found[key] = float(parameters[key])  # type: ignore[arg-type]
    for key, option in (
        ("pixel_size", "pixel_size"),
        ("voltage", "voltage"),
        ("dose_per_frame", "dose_per_frame"),
    ):
        if key not in found:
            raise ProcessingError(
                f"step {step_id}: the {key.replace('_', ' ')} of the movies is unknown: no mdoc gives it; "
                f"set the parameter {option}"
            )
    return found


def run_builtin(context: StepContext) -> None:
    movies = context.inputs.get("movies", [])
    values = acquisition(context.step_id, context.parameters, context.inputs.get("mdoc", []))
    headers = []
    for index, path in enumerate(movies):
        headers.append(check_mrc(path))
        context.progress(index + 1, len(movies))
    table = Table(
        "micrographs",
        {
            "movie_name": np.array([context.relative(p) for p in movies]),
            "optics_group": np.ones(len(movies), dtype=np.int64),
        },
        related={
            "optics": optics_table(
                voltage=values["voltage"],
                spherical_aberration=values["spherical_aberration"],
                amplitude_contrast=values["amplitude_contrast"],
                micrograph_pixel_size=values["pixel_size"],
            )
        },
    )
    path = context.directory / "movies.star"
    write_star(path, table)
    context.summary.update(values)
    record = context.directory / "acquisition.json"
    atomic_write_bytes(record, (json.dumps(values, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    context.add_output(record, "acquisition")
    context.add_output(
        path,
        "movies",
        {
            "skg:itemCount": len(movies),
            "skg:pixelSize": values["pixel_size"],
            "skg:accelerationVoltage": values["voltage"],
            "skg:sphericalAberration": values["spherical_aberration"],
            "skg:amplitudeContrast": values["amplitude_contrast"],
            "skg:dosePerFrame": values["dose_per_frame"],
            "skg:numberOfFrames": headers[0].nz if headers else 0,
        },
    )


class ImportMoviesTask(StepTask):
    name = "import_movies"
    step_class = "skg:ImportMovies"
    input_ports = (
        Port("movies", "skg:Movie", many=True),
        Port("mdoc", "skg:MetadataFile", optional=True, many=True, help="SerialEM .mdoc files"),
    )
    output_ports = (
        Port("movies", "skg:MovieSet"),
        Port("acquisition", "skg:MetadataFile", help="pixel size, voltage, Cs, Q, dose per frame (JSON)"),
    )
    parameter_specs = (
        ParameterSpec("pixel_size", "float", None, "unit:ANGSTROM", help="Å/px (default: from the mdoc)"),
        ParameterSpec("voltage", "float", None, "unit:KiloV", help="kV (default: from the mdoc)"),
        ParameterSpec("spherical_aberration", "float", 2.7, "unit:MilliM"),
        ParameterSpec("amplitude_contrast", "float", 0.1, "unit:FRACTION"),
        ParameterSpec("dose_per_frame", "float", None, "skg:ElectronPerSquareAngstrom", help="default: mdoc"),
    )
    backends = (Backend("builtin", run_builtin, builtin_software("movie import with mdoc acquisition")),)

    @classmethod
    def check_inputs(
        cls,
        step_id: str,
        parameters: Mapping[str, Value | None],
        files: Mapping[str, list[Path]],
        upstream: Mapping[str, Any],
    ) -> dict[str, Any]:
        facts = dict(upstream)
        movies = files.get("movies", [])
        if movies:
            headers = [check_mrc(path) for path in movies]
            sizes = {(h.nx, h.ny) for h in headers}
            if len(sizes) > 1:
                raise ProcessingError(f"step {step_id}: movies of different sizes {sorted(sizes)}")
            facts["micrograph_size"] = sizes.pop()
        if files.get("mdoc") or movies:
            facts.update(acquisition(step_id, parameters, files.get("mdoc", [])))
        else:  # movies and mdoc files come from an earlier step: its facts, overridden by parameters
            facts.update({key: value for key, value in parameters.items() if value is not None})
        return facts


TASK = ImportMoviesTask
