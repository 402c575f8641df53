"""Step ``motion_correction``: align the frames of each movie, dose-weight and sum them.

Backends: ``builtin`` (whole-frame and patch cross-correlation, Grant & Grigorieff dose weighting; see
``builtin/motion.py``) and ``relion`` (``relion_run_motioncorr --use_own``, RELION's own implementation of
the MotionCor2 algorithm). Outputs the micrograph set (RELION 3.1 micrographs STAR), the micrographs,
one RELION-style shifts STAR per movie (``data_global_shift``, shifts as RELION writes them: the
correction, i.e. minus the specimen's displacement) and a drift plot per movie.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table

from scipion_kg.errors import ProcessingError

from .images import read_mrc, write_mrc
from .parameters import ParameterSpec, Value
from .software import builtin_software, relion_software_of
from .star_blocks import write_blocks
from .step import Backend, Port, StepContext, StepTask
from .tables import optics_table, read_star, write_star

__all__ = ["TASK", "MotionCorrectionTask", "write_shifts_star"]


def write_shifts_star(path: Path, movie: str, micrograph: str, shifts_px: np.ndarray) -> None:
    """RELION's per-movie motion STAR: ``data_general`` and ``data_global_shift`` (correction shifts)."""
    write_blocks(
        path,
        [
            (
                "general",
                {
                    "rlnImageSizeZ": len(shifts_px),
                    "rlnMicrographMovieName": movie,
                    "rlnMicrographName": micrograph,
                    "rlnMotionModelVersion": 0,
                },
                False,
            ),
            (
                "global_shift",
                {
                    "rlnMicrographFrameNumber": np.arange(1, len(shifts_px) + 1),
                    "rlnMicrographShiftX": -np.asarray(shifts_px[:, 0], dtype=float).round(6),
                    "rlnMicrographShiftY": -np.asarray(shifts_px[:, 1], dtype=float).round(6),
                },
                True,
            ),
        ],
    )


def _movie_set(context: StepContext) -> tuple[Table, dict[str, float]]:
    table = read_star(context.input("movies"), "micrographs")
    optics = table.related["optics"].columns
    acquisition = {
        "pixel_size": float(optics["micrograph_pixel_size"][0]),
        "voltage": float(optics["voltage"][0]),
        "spherical_aberration": float(optics["spherical_aberration"][0]),
        "amplitude_contrast": float(optics["amplitude_contrast"][0]),
    }
    return table, acquisition


def _dose_per_frame(context: StepContext) -> float:
    """The dose per frame: the parameter, else the import step's acquisition record."""
    value = context.value("dose_per_frame")
    if value is not None:
        return float(value)
    record = context.optional_input("acquisition")
    if record is not None:
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("dose_per_frame") is not None:
            return float(data["dose_per_frame"])
    raise ProcessingError(
        f"step {context.step_id}: the dose per frame is unknown: wire the import step's 'acquisition' "
        "output to this step's 'acquisition' input, or set the parameter dose_per_frame"
    )


def _finish(context: StepContext, table: Table, acquisition: dict[str, float], names: list[str]) -> None:
    out = Table(
        "micrographs",
        {
            "micrograph_name": np.array(names),
            "movie_name": np.asarray(table.columns["movie_name"]),
            "optics_group": np.ones(len(names), dtype=np.int64),
        },
        related={
            "optics": optics_table(
                voltage=acquisition["voltage"],
                spherical_aberration=acquisition["spherical_aberration"],
                amplitude_contrast=acquisition["amplitude_contrast"],
                micrograph_pixel_size=acquisition["pixel_size"],
                pixel_size=acquisition["pixel_size"],
            )
        },
    )
    path = context.directory / "corrected_micrographs.star"
    write_star(path, out)
    context.add_output(
        path,
        "micrographs",
        {
            "skg:itemCount": len(names),
            "skg:pixelSize": acquisition["pixel_size"],
            "skg:accelerationVoltage": acquisition["voltage"],
            "skg:sphericalAberration": acquisition["spherical_aberration"],
            "skg:amplitudeContrast": acquisition["amplitude_contrast"],
            "skg:motionCorrectionType": "whole frame" if context.value("patches") == [1, 1] else "patch",
        },
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import motion

    table, acquisition = _movie_set(context)
    dose = _dose_per_frame(context)
    names = []
    movies = [str(m) for m in table.columns["movie_name"]]
    patches = context.value("patches")
    for index, movie in enumerate(movies):
        frames = read_mrc(context.project.resolve_path(movie))
        result = motion.correct_motion(
            frames,
            acquisition["pixel_size"],
            dose,
            patches=(int(patches[0]), int(patches[1])),
            bfactor=float(context.value("bfactor")),
            iterations=int(context.value("iterations")),
            dose_weighting=bool(context.value("dose_weighting")),
            voltage=acquisition["voltage"],
        )
        stem = Path(movie).name.rsplit(".", 1)[0]
        micrograph = context.directory / "Micrographs" / f"{stem}.mrc"
        write_mrc(micrograph, result.aligned_sum, acquisition["pixel_size"])
        shifts = context.directory / "Micrographs" / f"{stem}.star"
        write_shifts_star(shifts, movie, context.relative(micrograph), np.asarray(result.shifts))
        plot = context.directory / "Micrographs" / f"{stem}_drift.png"
        motion.plot_drift(result, plot, title=stem)
        context.add_output(micrograph, "micrograph")
        context.add_output(shifts, "drift")
        context.add_output(plot, "figure")
        names.append(context.relative(micrograph))
        context.progress(index + 1, len(movies))
    _finish(context, table, acquisition, names)


def run_relion(context: StepContext) -> None:
    from .wrappers import relion_steps

    relion_steps.motion_correction(context, _movie_set, _dose_per_frame, _finish)


class MotionCorrectionTask(StepTask):
    name = "motion_correction"
    step_class = "skg:MotionCorrection"
    input_ports = (
        Port("movies", "skg:MovieSet"),
        Port("acquisition", "skg:MetadataFile", optional=True, help="the import step's acquisition record"),
    )
    output_ports = (
        Port("micrographs", "skg:MicrographSet"),
        Port("micrograph", "skg:Micrograph", many=True),
        Port("drift", "skg:DriftTrajectory", many=True),
        Port("figure", "skg:Figure", many=True, optional=True),
    )
    parameter_specs = (
        ParameterSpec("patches", "ints", [1, 1], help="patches along x and y; 1 1 = whole frame only"),
        ParameterSpec(
            "bfactor", "float", 150.0, "skg:SquareAngstrom", help="B-factor of the alignment filter"
        ),
        ParameterSpec("iterations", "int", 5),
        ParameterSpec("dose_weighting", "bool", True),
        ParameterSpec(
            "dose_per_frame", "float", None, "skg:ElectronPerSquareAngstrom", help="default: import"
        ),
        ParameterSpec("threads", "int", 2, significant=False),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software("frame cross-correlation alignment; Grant-Grigorieff dose weighting"),
        ),
        Backend(
            "relion",
            run_relion,
            relion_software_of("relion_run_motioncorr --use_own"),
            programs=("relion_run_motioncorr",),
        ),
    )

    @classmethod
    def check_inputs(
        cls,
        step_id: str,
        parameters: Mapping[str, Value | None],
        files: Mapping[str, list[Path]],
        upstream: Mapping[str, Any],
    ) -> dict[str, Any]:
        known = parameters.get("dose_per_frame") or upstream.get("dose_per_frame")
        if known is None and files.get("acquisition"):
            known = _acquisition_dose(files["acquisition"][0], step_id)
        if known is None:
            raise ProcessingError(
                f"step {step_id}: the dose per frame is unknown: set the parameter dose_per_frame "
                "or import the movies with an mdoc (or the import's dose_per_frame)"
            )
        patches = parameters.get("patches") or [1, 1]
        if not isinstance(patches, list) or len(patches) != 2 or min(patches) < 1:
            raise ProcessingError(f"step {step_id}: patches must be two positive integers, got {patches}")
        return dict(upstream)


def _acquisition_dose(path: Path, step_id: str) -> float | None:
    """The dose per frame of an import's acquisition file given as a file input (None if it has none)."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ProcessingError(
            f"step {step_id}: input acquisition {path} is not readable JSON: {error}"
        ) from None
    dose = values.get("dose_per_frame") if isinstance(values, dict) else None
    return float(dose) if isinstance(dose, int | float) else None


TASK = MotionCorrectionTask
