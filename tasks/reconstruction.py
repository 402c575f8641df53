"""Step ``reconstruction``: a map from particles with known poses by CTF-corrected direct Fourier
inversion (``builtin/reconstruct.py``; ``relion_reconstruct`` as the ``relion`` backend), plus one map per
half set when the particles carry half sets."""

from __future__ import annotations

import numpy as np
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.converters.mrc import write_map

from scipion_kg.errors import ProcessingError

from .parameters import ParameterSpec
from .particle_data import load_particles
from .software import builtin_software, relion_software_of
from .step import Backend, Port, StepContext, StepTask

__all__ = ["TASK", "ReconstructionTask"]


def run_builtin(context: StepContext) -> None:
    from .builtin.reconstruct import reconstruct

    data = load_particles(context.project, context.input("particles"))
    columns = data.table.columns
    if not data.table.has("angle_rot", "angle_tilt", "angle_psi"):
        raise ProcessingError(f"step {context.step_id}: the particles have no angles (rlnAngleRot/Tilt/Psi)")
    angles = np.column_stack(
        [np.asarray(columns[c], dtype=float) for c in ("angle_rot", "angle_tilt", "angle_psi")]
    )
    matrices = pivot_matrices(angles)
    n = len(data.images)
    shifts = np.column_stack(
        [
            np.asarray(columns.get("origin_x", np.zeros(n)), dtype=float),
            np.asarray(columns.get("origin_y", np.zeros(n)), dtype=float),
        ]
    )
    use_ctf = bool(context.value("ctf")) and data.ctf is not None
    symmetry = str(context.value("symmetry"))

    def make(selection: np.ndarray) -> np.ndarray:
        # The CTF parameters, not images: the CTF is then computed only where it is used.
        ctf = data.ctf.subset(selection) if use_ctf and data.ctf is not None else None
        return reconstruct(
            data.images[selection],
            matrices[selection],
            shifts[selection],
            data.pixel_size,
            ctf,
            symmetry=symmetry,
            progress=context.progress,
        )

    everything = np.arange(n)
    path = context.directory / "reconstruction.mrc"
    write_map(path, make(everything), data.pixel_size)
    properties: dict[str, str | int | float | bool] = {
        "skg:pixelSize": data.pixel_size,
        "skg:numberOfParticlesUsed": n,
        "skg:pointGroup": symmetry,
    }
    context.add_output(path, "map", properties)
    if "half_set" in columns:
        halves = np.asarray(columns["half_set"])
        for half in (1, 2):
            path = context.directory / f"reconstruction_half{half}.mrc"
            write_map(path, make(np.flatnonzero(halves == half)), data.pixel_size)
            context.add_output(path, f"half_map_{half}", {"skg:pixelSize": data.pixel_size})


def run_relion(context: StepContext) -> None:
    from scipion_kg.converters.mrc import read_map

    from .wrappers import relion_steps

    full, halves, table = relion_steps.reconstruction(context, context.input("particles"))
    _, pixel = read_map(full)
    context.add_output(
        full,
        "map",
        {
            "skg:pixelSize": pixel,
            "skg:numberOfParticlesUsed": table.n_rows,
            "skg:pointGroup": str(context.value("symmetry")),
        },
    )
    for half, path in enumerate(halves, start=1):
        context.add_output(path, f"half_map_{half}", {"skg:pixelSize": pixel})


class ReconstructionTask(StepTask):
    name = "reconstruction"
    step_class = "skg:Reconstruction"
    input_ports = (Port("particles", "skg:ParticleSet"),)
    output_ports = (
        Port("map", "skg:Map"),
        Port("half_map_1", "skg:HalfMap", optional=True),
        Port("half_map_2", "skg:HalfMap", optional=True),
    )
    parameter_specs = (ParameterSpec("symmetry", "str", "C1"), ParameterSpec("ctf", "bool", True))
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software("direct Fourier inversion with CTF Wiener weighting and gridding"),
        ),
        Backend(
            "relion", run_relion, relion_software_of("relion_reconstruct"), programs=("relion_reconstruct",)
        ),
    )


TASK = ReconstructionTask
