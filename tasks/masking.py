"""Step ``masking``: a soft solvent mask of a map: threshold, extend, raised-cosine edge (the recipe of
RELION's ``relion_mask_create``; ``builtin/masking.py``)."""

from __future__ import annotations

from .parameters import ParameterSpec
from .software import builtin_software
from .step import Backend, Port, StepContext, StepTask

__all__ = ["TASK", "MaskingTask"]


def run_builtin(context: StepContext) -> None:
    from scipion_kg.converters.mrc import read_map, write_map

    from .builtin.fourier import lowpass
    from .builtin.masking import soft_mask

    volume, pixel = read_map(context.input("map"))
    filtered = (
        lowpass(volume, float(context.value("lowpass")), pixel, edge=2.0)
        if context.value("lowpass")
        else volume
    )
    threshold = context.value("threshold")
    if threshold is None:
        threshold = float(filtered.mean() + 2.0 * filtered.std())
    mask = soft_mask(
        filtered, float(threshold), int(context.value("extend")), int(context.value("soft_edge"))
    )
    path = context.directory / "mask.mrc"
    write_map(path, mask, pixel)
    context.add_output(
        path,
        "mask",
        {
            "skg:pixelSize": pixel,
            "skg:maskThreshold": round(float(threshold), 6),
            "skg:maskExtension": int(context.value("extend")),
            "skg:maskSoftEdgeWidth": int(context.value("soft_edge")),
        },
    )


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
    backends = (Backend("builtin", run_builtin, builtin_software("threshold, extend, raised-cosine edge")),)


TASK = MaskingTask
