"""Step ``particle_picking``: find particles in every micrograph by a Laplacian-of-Gaussian blob filter
(as RELION's LoG picker, Zivanov et al. 2018) or by template matching (Roseman 2004).

Backends: ``builtin`` (``builtin/picking.py``) and ``relion`` (``relion_autopick --LoG``). Outputs one
coordinate set for all micrographs (micrograph name, x, y, score; the micrographs' pixel size in the
optics block).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table

from scipion_kg.errors import ProcessingError

from .images import read_mrc
from .parameters import ParameterSpec, Value
from .software import builtin_software, relion_software_of
from .step import Backend, Port, StepContext, StepTask
from .tables import optics_table, read_star, write_star

__all__ = ["TASK", "ParticlePickingTask", "write_coordinates"]


def write_coordinates(
    context: StepContext,
    micrographs: Table,
    names: list[str],
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    scores: list[np.ndarray],
) -> None:
    """The coordinate set of all micrographs, recorded as the step's ``coordinates`` output."""
    optics = micrographs.related["optics"].columns
    pixel = float(optics["micrograph_pixel_size"][0])
    counts = [len(x) for x in xs]
    table = Table(
        "particles",
        {
            "micrograph_name": np.repeat(np.array(names), counts),
            "coordinate_x": np.concatenate(xs).astype(float) if xs else np.zeros(0),
            "coordinate_y": np.concatenate(ys).astype(float) if ys else np.zeros(0),
            "figure_of_merit": np.concatenate(scores).astype(float) if scores else np.zeros(0),
            "optics_group": np.ones(sum(counts), dtype=np.int64),
        },
        related={
            "optics": optics_table(
                voltage=float(optics["voltage"][0]),
                spherical_aberration=float(optics["spherical_aberration"][0]),
                amplitude_contrast=float(optics["amplitude_contrast"][0]),
                pixel_size=pixel,
            )
        },
    )
    path = context.directory / "coordinates.star"
    write_star(path, table)
    context.add_output(path, "coordinates", {"skg:itemCount": sum(counts), "skg:pixelSize": pixel})


def run_builtin(context: StepContext) -> None:
    from .builtin import picking

    micrographs = read_star(context.input("micrographs"), "micrographs")
    pixel = float(micrographs.related["optics"].columns["micrograph_pixel_size"][0])
    names = [str(n) for n in micrographs.columns["micrograph_name"]]
    diameter = [float(d) for d in context.value("diameter")]
    border = context.value("exclude_border")
    per_micrograph = context.value("particles_per_micrograph")
    xs, ys, scores = [], [], []
    for index, name in enumerate(names):
        image = read_mrc(context.project.resolve_path(name))
        picks = picking.pick_log(
            image,
            pixel,
            diameter[0],
            diameter[1],
            threshold=context.value("threshold"),
            max_particles=int(per_micrograph) if per_micrograph is not None else None,
            exclude_border_px=int(border) if border is not None else None,
        )
        xs.append(np.asarray(picks.x))
        ys.append(np.asarray(picks.y))
        scores.append(np.asarray(picks.score))
        context.progress(index + 1, len(names))
    write_coordinates(context, micrographs, names, xs, ys, scores)


def run_relion(context: StepContext) -> None:
    from .wrappers import relion_steps

    micrographs = read_star(context.input("micrographs"), "micrographs")
    relion_steps.particle_picking(context, micrographs, write_coordinates)


class ParticlePickingTask(StepTask):
    name = "particle_picking"
    step_class = "skg:AutomaticParticlePicking"
    input_ports = (Port("micrographs", "skg:MicrographSet"),)
    output_ports = (Port("coordinates", "skg:CoordinateSet"),)
    parameter_specs = (
        ParameterSpec("diameter", "floats", [120.0, 180.0], "unit:ANGSTROM", help="min and max diameter"),
        ParameterSpec("threshold", "float", None, help="score threshold (robust sigmas; default: automatic)"),
        ParameterSpec("particles_per_micrograph", "int", None, help="keep at most this many per micrograph"),
        ParameterSpec(
            "exclude_border", "int", None, "unit:PIXEL_COUNT", help="ignore picks this close to the edge"
        ),
    )
    backends = (
        Backend("builtin", run_builtin, builtin_software("Laplacian-of-Gaussian blob picking")),
        Backend(
            "relion", run_relion, relion_software_of("relion_autopick --LoG"), programs=("relion_autopick",)
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
        diameter = parameters.get("diameter")
        if not isinstance(diameter, list) or len(diameter) != 2 or not 0 < diameter[0] <= diameter[1]:
            raise ProcessingError(
                f"step {step_id}: diameter must be 'min,max' in Å with min <= max, got {diameter}"
            )
        return dict(upstream)


TASK = ParticlePickingTask
