"""Step ``refine_3d``: gold-standard 3D refinement (Scheres & Chen 2012): two random halves refined
independently from the same low-passed reference by coarse-to-fine projection matching with shifts,
CTF-corrected direct Fourier reconstruction; resolution from the half maps' FSC at 0.143.

Backends: ``builtin`` (``builtin/refine3d.py``) and ``relion`` (``relion_refine --auto_refine``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.mrc import read_map, write_map

from .parameters import ParameterSpec
from .particle_data import load_particles
from .software import builtin_software, relion_software_of
from .star_blocks import write_blocks
from .step import Backend, Port, StepContext, StepTask
from .tables import read_star, write_star

__all__ = ["TASK", "Refinement3DTask", "write_fsc_star"]


def write_fsc_star(path: object, curve: np.ndarray, box: int, pixel_size: float, resolution: float) -> None:
    """The half-map FSC as a RELION-style STAR (``data_general`` resolution, ``data_fsc`` curve)."""
    from pathlib import Path

    shells = np.arange(len(curve))
    frequency = shells / (box * pixel_size)
    with np.errstate(divide="ignore"):
        angstrom = np.where(shells > 0, 1.0 / np.maximum(frequency, 1e-12), 999.0)
    write_blocks(
        Path(str(path)),
        [
            ("general", {"rlnFinalResolution": round(float(resolution), 4)}, False),
            (
                "fsc",
                {
                    "rlnSpectralIndex": shells,
                    "rlnResolution": frequency.round(6),
                    "rlnAngstromResolution": angstrom.round(4),
                    "rlnFourierShellCorrelation": np.asarray(curve, dtype=float).round(6),
                },
                True,
            ),
        ],
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import refine3d

    data = load_particles(context.project, context.input("particles"))
    initial, _ = read_map(context.input("reference"))
    result = refine3d.refine_3d(
        data.images,
        data.pixel_size,
        data.ctf,
        initial,
        symmetry=str(context.value("symmetry")),
        initial_lowpass=float(context.value("initial_lowpass")),
        initial_angular_step=float(context.value("initial_angular_step")),
        final_angular_step=float(context.value("final_angular_step")),
        max_shift_px=int(context.value("max_shift")),
        n_iterations=int(context.value("iterations")),
        mask_diameter=float(context.value("mask_diameter")),
        seed=int(context.value("seed")),
        progress=context.progress,
    )
    pixel = data.pixel_size
    properties = {"skg:pixelSize": pixel, "skg:boxSize": data.box}
    for index, half in enumerate(result.half_maps, start=1):
        path = context.directory / f"run_half{index}_class001_unfil.mrc"
        write_map(path, half, pixel)
        context.add_output(path, f"half_map_{index}", properties)
    path = context.directory / "run_class001.mrc"
    write_map(path, result.map, pixel)
    context.add_output(
        path,
        "map",
        {
            **properties,
            "skg:resolution": round(float(result.resolution), 3),
            "skg:numberOfParticlesUsed": len(data.images),
            "skg:pointGroup": str(context.value("symmetry")),
        },
    )
    columns = dict(data.table.columns)
    angles = np.asarray(result.angles, dtype=float)
    columns.update(
        {
            "angle_rot": angles[:, 0],
            "angle_tilt": angles[:, 1],
            "angle_psi": angles[:, 2],
            "origin_x": np.asarray(result.shifts, dtype=float)[:, 0],
            "origin_y": np.asarray(result.shifts, dtype=float)[:, 1],
            "half_set": np.asarray(result.half_set, dtype=np.int64),
        }
    )
    path = context.directory / "run_data.star"
    write_star(path, Table("particles", columns, related=data.table.related))
    context.add_output(path, "particles", {"skg:itemCount": len(data.images)})
    fsc = context.directory / "run_fsc.star"
    write_fsc_star(fsc, np.asarray(result.fsc), data.box, pixel, float(result.resolution))
    context.add_output(fsc, "fsc", {"skg:resolution": round(float(result.resolution), 3)})
    context.summary["resolution"] = float(result.resolution)


def run_relion(context: StepContext) -> None:
    from .wrappers import relion_steps

    result = relion_steps.refine_3d(context, context.input("particles"), context.input("reference"))
    table = read_star(result.data_star, "particles")
    pixel = float(table.related["optics"].columns["pixel_size"][0])
    box = int(table.related["optics"].columns["image_size"][0])
    properties = {"skg:pixelSize": pixel, "skg:boxSize": box}
    for index, half in enumerate(result.half_maps, start=1):
        context.add_output(Path(half), f"half_map_{index}", properties)
    context.add_output(
        Path(result.map),
        "map",
        {
            **properties,
            "skg:resolution": round(float(result.resolution), 3),
            "skg:numberOfParticlesUsed": table.n_rows,
            "skg:pointGroup": str(context.value("symmetry")),
        },
    )
    context.add_output(Path(result.data_star), "particles", {"skg:itemCount": table.n_rows})
    fsc = context.directory / "run_fsc.star"
    write_fsc_star(fsc, np.asarray(result.fsc), box, pixel, float(result.resolution))
    context.add_output(fsc, "fsc", {"skg:resolution": round(float(result.resolution), 3)})


class Refinement3DTask(StepTask):
    name = "refine_3d"
    step_class = "skg:Refinement3D"
    input_ports = (Port("particles", "skg:ParticleSet"), Port("reference", "skg:Map"))
    output_ports = (
        Port("map", "skg:Map"),
        Port("half_map_1", "skg:HalfMap"),
        Port("half_map_2", "skg:HalfMap"),
        Port("particles", "skg:ParticleSet"),
        Port("fsc", "skg:FSCCurve"),
    )
    parameter_specs = (
        ParameterSpec("symmetry", "str", "C1"),
        ParameterSpec("initial_lowpass", "float", 40.0, "unit:ANGSTROM"),
        ParameterSpec("initial_angular_step", "float", 15.0, "unit:DEG"),
        ParameterSpec("final_angular_step", "float", 3.0, "unit:DEG"),
        ParameterSpec("max_shift", "int", 4, "unit:PIXEL_COUNT"),
        ParameterSpec("iterations", "int", 8),
        ParameterSpec("mask_diameter", "float", 170.0, "unit:ANGSTROM"),
        ParameterSpec("seed", "int", 0),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software(
                "gold-standard projection matching, CTF-corrected direct Fourier reconstruction"
            ),
        ),
        Backend(
            "relion",
            run_relion,
            relion_software_of("relion_refine --auto_refine --split_random_halves"),
            programs=("relion_refine_mpi", "mpirun"),
        ),
    )


TASK = Refinement3DTask
