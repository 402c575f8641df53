"""Step ``masking``: a soft solvent mask of a map: threshold, extend, raised-cosine edge (the recipe of
RELION's ``relion_mask_create``; ``builtin/masking.py``, or ``relion_mask_create`` itself as the ``relion``
backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from .parameters import ParameterSpec
from .software import builtin_software, relion_software_of
from .step import Backend, Port, StepContext, StepTask

__all__ = ["TASK", "MaskingTask"]


def _filtered_map(context: StepContext) -> tuple[npt.NDArray[np.float32], float, float]:
    """The low-passed map, its voxel size and the threshold (given, or mean + 2 standard deviations of
    the low-passed map)."""
    from scipion_kg.converters.mrc import read_map

    from .builtin.fourier import lowpass

    volume, pixel = read_map(context.input("map"))
    filtered = (
        lowpass(volume, float(context.value("lowpass")), pixel, edge=2.0)
        if context.value("lowpass")
        else volume
    )
    threshold = context.value("threshold")
    if threshold is None:
        threshold = float(filtered.mean() + 2.0 * filtered.std())
    return np.asarray(filtered, dtype=np.float32), pixel, float(threshold)


def _add_mask(context: StepContext, path: Path, pixel: float, threshold: float) -> None:
    context.add_output(
        path,
        "mask",
        {
            "skg:pixelSize": pixel,
            "skg:maskThreshold": round(threshold, 6),
            "skg:maskExtension": int(context.value("extend")),
            "skg:maskSoftEdgeWidth": int(context.value("soft_edge")),
        },
    )


def run_builtin(context: StepContext) -> None:
    from scipion_kg.converters.mrc import write_map

    from .builtin.masking import soft_mask

    filtered, pixel, threshold = _filtered_map(context)
    mask = soft_mask(filtered, threshold, int(context.value("extend")), int(context.value("soft_edge")))
    path = context.directory / "mask.mrc"
    write_map(path, mask, pixel)
    _add_mask(context, path, pixel, threshold)


def run_relion(context: StepContext) -> None:
    """relion_mask_create low-passes the map itself; the default threshold is read from the same
    low-passed map as the built-in backend's, so both backends binarise at the same level."""
    from .wrappers import relion_steps

    _, pixel, threshold = _filtered_map(context)
    path = relion_steps.mask_create(context, context.input("map"), threshold, pixel)
    _add_mask(context, path, pixel, threshold)


class MaskingTask(StepTask):
    name = "masking"
    step_class = "skg:Masking"
    input_ports = (Port("map", "skg:Map"),)
    output_ports = (Port("mask", "skg:VolumeMask"),)
    parameter_specs = (
        ParameterSpec("threshold", "float", None, help="default: mean + 2 standard deviations"),
        ParameterSpec("lowpass", "float", 15.0, "unit:ANGSTROM", help="low-pass filter before thresholding"),
        ParameterSpec("extend", "int", 3, "unit:PIXEL_COUNT"),
        ParameterSpec("soft_edge", "int", 6, "unit:PIXEL_COUNT"),
    )
    backends = (
        Backend("builtin", run_builtin, builtin_software("threshold, extend, raised-cosine edge")),
        Backend(
            "relion", run_relion, relion_software_of("relion_mask_create"), programs=("relion_mask_create",)
        ),
    )


TASK = MaskingTask
