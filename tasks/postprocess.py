"""Step ``postprocess``: gold-standard FSC of the half maps (unmasked, masked and corrected by phase
randomisation, Chen et al. 2013), resolution at 0.143, Guinier B-factor and sharpening (Rosenthal &
Henderson 2003), as RELION's ``relion_postprocess`` (its ``relion`` backend). Writes a RELION-style
``postprocess.star`` (``data_general``, ``data_fsc``, ``data_guinier``) and FSC and Guinier plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.mrc import read_map, write_map

from scipion_kg.errors import ProcessingError

from .builtin.postprocess import PostprocessResult
from .parameters import ParameterSpec
from .software import builtin_software, relion_software_of
from .star_blocks import write_blocks
from .step import Backend, Port, StepContext, StepTask

__all__ = ["TASK", "PostprocessTask", "write_postprocess_star"]


def write_postprocess_star(path: Path, result: PostprocessResult) -> None:
    """RELION's postprocess.star layout (``data_general``, ``data_fsc``, ``data_guinier``)."""
    frequency = np.asarray(result.frequencies, dtype=np.float64)
    shells = np.arange(len(frequency))
    angstrom = np.where(frequency > 0, 1.0 / np.maximum(frequency, 1e-12), 999.0)
    guinier = result.guinier
    write_blocks(
        path,
        [
            (
                "general",
                {
                    "rlnFinalResolution": round(float(result.resolution), 4),
                    "rlnUnmaskedResolution": round(float(result.resolution_unmasked), 4),
                    "rlnBfactorUsedForSharpening": round(float(result.bfactor), 4),
                    "rlnRandomiseFrom": round(float(result.randomise_from), 4),
                },
                False,
            ),
            (
                "fsc",
                {
                    "rlnSpectralIndex": shells,
                    "rlnResolution": frequency.round(6),
                    "rlnAngstromResolution": angstrom.round(4),
                    "rlnFourierShellCorrelationCorrected": np.round(result.fsc_corrected, 6),
                    "rlnFourierShellCorrelationUnmaskedMaps": np.round(result.fsc_unmasked, 6),
                    "rlnFourierShellCorrelationMaskedMaps": np.round(result.fsc_masked, 6),
                    "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps": np.round(
                        result.fsc_phase_randomised, 6
                    ),
                },
                True,
            ),
            (
                "guinier",
                {
                    "rlnResolutionSquared": np.round(guinier.s2, 6),
                    "rlnLogAmplitudesOriginal": np.round(guinier.ln_amplitude, 6),
                    "rlnLogAmplitudesWeighted": np.round(guinier.ln_amplitude_weighted, 6),
                    "rlnLogAmplitudesSharpened": np.round(guinier.ln_amplitude_sharpened, 6),
                },
                True,
            ),
        ],
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import postprocess

    half1, pixel1 = read_map(context.input("half_map_1"))
    half2, pixel2 = read_map(context.input("half_map_2"))
    if half1.shape != half2.shape or abs(pixel1 - pixel2) > 1e-4:
        raise ProcessingError(
            f"step {context.step_id}: the half maps differ: {half1.shape} at {pixel1} Å/px and "
            f"{half2.shape} at {pixel2} Å/px"
        )
    mask_path = context.optional_input("mask")
    mask = read_map(mask_path)[0] if mask_path is not None else None
    bfactor = context.value("bfactor")
    result = postprocess.postprocess(
        half1,
        half2,
        pixel1,
        mask=mask,
        auto_bfactor=bfactor is None,
        bfactor=float(bfactor) if bfactor is not None else None,
        bfactor_low_resolution=float(context.value("bfactor_low_resolution")),
    )
    sharpened = context.directory / "postprocess.mrc"
    write_map(sharpened, result.map, pixel1)
    context.add_output(
        sharpened,
        "map",
        {
            "skg:pixelSize": pixel1,
            "skg:resolution": round(float(result.resolution), 3),
            "skg:bFactor": round(float(result.bfactor), 3),
        },
    )
    mask_out = context.directory / "postprocess_mask.mrc"
    write_map(mask_out, result.mask, pixel1)
    context.add_output(mask_out, "mask", {"skg:pixelSize": pixel1})
    star = context.directory / "postprocess.star"
    write_postprocess_star(star, result)
    context.add_output(star, "fsc", {"skg:resolution": round(float(result.resolution), 3)})
    for name, plot in (("fsc", postprocess.plot_fsc), ("guinier", postprocess.plot_guinier)):
        picture = context.directory / f"postprocess_{name}.png"
        plot(result, picture)
        context.add_output(picture, "figure")
    context.summary.update({"resolution": float(result.resolution), "bfactor": float(result.bfactor)})


def run_relion(context: StepContext) -> None:
    from .wrappers import relion_steps

    _, pixel = read_map(context.input("half_map_1"))
    mask = context.optional_input("mask")
    result = relion_steps.postprocess(
        context, context.input("half_map_1"), context.input("half_map_2"), mask, pixel
    )
    context.add_output(
        Path(result.map),
        "map",
        {
            "skg:pixelSize": pixel,
            "skg:resolution": round(float(result.final_resolution), 3),
            "skg:bFactor": round(float(result.bfactor), 3),
        },
    )
    automask = Path(result.job_dir) / "postprocess_automask.mrc"
    if mask is None and automask.is_file():
        context.add_output(automask, "mask", {"skg:pixelSize": pixel})
    elif mask is not None:
        # RELION used the given mask: the output names the same file.
        copied = context.directory / "postprocess_mask.mrc"
        copied.write_bytes(mask.read_bytes())
        context.add_output(copied, "mask", {"skg:pixelSize": pixel})
    context.add_output(Path(result.star), "fsc", {"skg:resolution": round(float(result.final_resolution), 3)})
    log = Path(result.job_dir) / "logfile.pdf"
    if log.is_file():
        context.add_output(log, "figure")
    context.summary.update({"resolution": float(result.final_resolution), "bfactor": float(result.bfactor)})


class PostprocessTask(StepTask):
    name = "postprocess"
    step_class = "skg:PostProcessing"
    input_ports = (
        Port("half_map_1", "skg:HalfMap"),
        Port("half_map_2", "skg:HalfMap"),
        Port("mask", "skg:Mask", optional=True, help="default: an automatic soft mask"),
    )
    output_ports = (
        Port("map", "skg:SharpenedMap"),
        Port("mask", "skg:VolumeMask"),
        Port("fsc", "skg:FSCCurve"),
        Port("figure", "skg:Figure", many=True, optional=True),
    )
    parameter_specs = (
        ParameterSpec(
            "bfactor", "float", None, "skg:SquareAngstrom", help="default: automatic (Guinier fit)"
        ),
        ParameterSpec("bfactor_low_resolution", "float", 10.0, "unit:ANGSTROM"),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software(
                "gold-standard FSC with phase-randomisation correction, Guinier B-factor sharpening"
            ),
        ),
        Backend(
            "relion", run_relion, relion_software_of("relion_postprocess"), programs=("relion_postprocess",)
        ),
    )


TASK = PostprocessTask
