"""Step ``particle_extraction``: cut a box around every picked coordinate, normalise it as RELION does
(background mean 0, standard deviation 1 outside a circle), optionally invert contrast, phase-flip and
downsample. One stack per micrograph; the particle set carries each particle's CTF from its micrograph.

Backends: ``builtin`` (``builtin/extraction.py``) and ``relion`` (``relion_preprocess --extract``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table

from scipion_kg.errors import ProcessingError

from .images import read_mrc, write_mrc
from .parameters import ParameterSpec, Value
from .software import builtin_software, relion_software_of
from .step import Backend, Port, StepContext, StepTask
from .tables import optics_table, read_star, write_star

__all__ = ["TASK", "ParticleExtractionTask", "write_particle_set"]


def write_particle_set(
    context: StepContext, micrographs: Table, columns: dict[str, np.ndarray], box: int, pixel_size: float
) -> None:
    """Record the particle set (RELION 3.1 particles STAR) as the step's ``particles`` output."""
    optics = micrographs.related["optics"].columns
    n = len(columns["image_name"])
    table = Table(
        "particles",
        {**columns, "optics_group": np.ones(n, dtype=np.int64)},
        related={
            "optics": optics_table(
                voltage=float(optics["voltage"][0]),
                spherical_aberration=float(optics["spherical_aberration"][0]),
                amplitude_contrast=float(optics["amplitude_contrast"][0]),
                pixel_size=pixel_size,
                micrograph_pixel_size=float(optics["micrograph_pixel_size"][0]),
                image_size=box,
            )
        },
    )
    path = context.directory / "particles.star"
    write_star(path, table)
    context.add_output(
        path, "particles", {"skg:itemCount": n, "skg:pixelSize": pixel_size, "skg:boxSize": box}
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import extraction
    from .builtin.ctf import CTFParameters

    micrographs = read_star(context.input("micrographs"), "micrographs")
    coordinates = read_star(context.input("coordinates"), "particles")
    optics = micrographs.related["optics"].columns
    pixel = float(optics["micrograph_pixel_size"][0])
    box = int(context.value("box"))
    rescale = context.value("rescale_box")
    out_box = int(rescale) if rescale is not None else box
    out_pixel = pixel * box / out_box
    names = [str(n) for n in micrographs.columns["micrograph_name"]]
    coordinate_names = np.asarray(coordinates.columns["micrograph_name"]).astype(str)
    collected: dict[str, list[np.ndarray]] = {}
    for index, name in enumerate(names):
        rows = np.flatnonzero(coordinate_names == name)
        if len(rows) == 0:
            continue
        ctf = CTFParameters(
            float(micrographs.columns["defocus_u"][index]),
            float(micrographs.columns["defocus_v"][index]),
            float(micrographs.columns["defocus_angle"][index]),
            float(optics["voltage"][0]),
            float(optics["spherical_aberration"][0]),
            float(optics["amplitude_contrast"][0]),
        )
        x = np.asarray(coordinates.columns["coordinate_x"], dtype=float)[rows]
        y = np.asarray(coordinates.columns["coordinate_y"], dtype=float)[rows]
        image = read_mrc(context.project.resolve_path(name))
        extracted = extraction.extract_particles(
            image,
            x,
            y,
            box,
            invert_contrast=bool(context.value("invert_contrast")),
            normalise=bool(context.value("normalise")),
            bg_radius_px=context.value("bg_radius"),
            ctf=ctf if context.value("phase_flip") else None,
            pixel_size=pixel,
            rescale_box=int(rescale) if rescale is not None else None,
        )
        kept = np.asarray(extracted.kept, dtype=bool)
        if not kept.any():
            continue
        stack = context.directory / "Particles" / f"{Path(name).stem}.mrcs"
        write_mrc(stack, extracted.stack, out_pixel, stack=True)
        context.add_output(stack, "stack")
        count = int(kept.sum())
        parts = {
            "image_name": np.array([context.relative(stack)] * count),
            "image_index": np.arange(1, count + 1),
            "micrograph_name": np.array([name] * count),
            # Integer box centres: with the origin (the sub-pixel residual) they give the exact position.
            "coordinate_x": np.asarray(extracted.coordinate_x, dtype=float)[kept],
            "coordinate_y": np.asarray(extracted.coordinate_y, dtype=float)[kept],
            "origin_x": np.asarray(extracted.origin_x_angstrom, dtype=float)[kept],
            "origin_y": np.asarray(extracted.origin_y_angstrom, dtype=float)[kept],
            "defocus_u": np.full(count, ctf.defocus_u),
            "defocus_v": np.full(count, ctf.defocus_v),
            "defocus_angle": np.full(count, ctf.defocus_angle),
        }
        for key, values in parts.items():
            collected.setdefault(key, []).append(values)
        context.progress(index + 1, len(names))
    if not collected:
        raise ProcessingError(f"step {context.step_id}: no particle box lies fully inside its micrograph")
    columns = {key: np.concatenate(values) for key, values in collected.items()}
    write_particle_set(context, micrographs, columns, out_box, out_pixel)


def run_relion(context: StepContext) -> None:
    from .wrappers import relion_steps

    micrographs = read_star(context.input("micrographs"), "micrographs")
    coordinates = read_star(context.input("coordinates"), "particles")

    def write(
        context: StepContext, micrographs: Table, columns: dict[str, np.ndarray], particles: Table
    ) -> None:
        optics = particles.related["optics"].columns
        keep = {k: v for k, v in columns.items() if k != "optics_group"}
        write_particle_set(
            context, micrographs, keep, int(optics["image_size"][0]), float(optics["pixel_size"][0])
        )

    relion_steps.particle_extraction(context, micrographs, coordinates, write)


class ParticleExtractionTask(StepTask):
    name = "particle_extraction"
    step_class = "skg:ParticleExtraction"
    input_ports = (Port("micrographs", "skg:MicrographSet"), Port("coordinates", "skg:CoordinateSet"))
    output_ports = (Port("particles", "skg:ParticleSet"), Port("stack", "skg:ParticleStack", many=True))
    parameter_specs = (
        ParameterSpec("box", "int", 64, "unit:PIXEL_COUNT", help="box size in micrograph pixels"),
        ParameterSpec("rescale_box", "int", None, "unit:PIXEL_COUNT", help="downsample to this box"),
        ParameterSpec("invert_contrast", "bool", True),
        ParameterSpec("normalise", "bool", True),
        ParameterSpec("bg_radius", "float", None, "unit:PIXEL_COUNT", help="default: 75% of half the box"),
        ParameterSpec("phase_flip", "bool", False),
    )
    backends = (
        Backend("builtin", run_builtin, builtin_software("box extraction, background normalisation")),
        Backend(
            "relion",
            run_relion,
            relion_software_of("relion_preprocess --extract"),
            programs=("relion_preprocess",),
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
        box = int(parameters["box"])  # type: ignore[arg-type]
        size = upstream.get("micrograph_size")
        if size is not None and box > min(size):
            raise ProcessingError(
                f"step {step_id}: box {box} px is larger than the micrographs ({size[0]} x {size[1]} px)"
            )
        facts = dict(upstream)
        facts["box"] = int(parameters["rescale_box"] or box)  # type: ignore[arg-type]
        return facts


TASK = ParticleExtractionTask
