"""Step ``ctf_estimation``: astigmatic defocus, angle, optional phase shift and fit resolution of every
micrograph, in the manner of CTFFIND4 (Rohou & Grigorieff 2015).

Backends: ``builtin`` (``builtin/ctf_estimation.py``) and ``ctffind`` (CTFFIND 4.x when installed; its
output parsed by the converters' CTFFIND reader). Outputs the micrograph set with CTF columns (RELION's
``micrographs_ctf.star``) and one diagnostic picture per micrograph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.canonical import Table

from .images import read_mrc
from .parameters import ParameterSpec
from .software import builtin_software
from .step import Backend, Port, StepContext, StepTask
from .tables import read_star, write_star

__all__ = ["TASK", "CTFEstimationTask"]


def _write_set(context: StepContext, table: Table, rows: list[dict[str, float]]) -> None:
    columns = dict(table.columns)
    for key in (
        "defocus_u",
        "defocus_v",
        "defocus_angle",
        "phase_shift",
        "ctf_max_resolution",
        "ctf_figure_of_merit",
    ):
        columns[key] = np.array([row[key] for row in rows], dtype=float)
    out = Table("micrographs", columns, related=table.related)
    path = context.directory / "micrographs_ctf.star"
    write_star(path, out)
    optics = table.related["optics"].columns
    context.add_output(
        path,
        "micrographs",
        {
            "skg:itemCount": len(rows),
            "skg:pixelSize": float(optics["micrograph_pixel_size"][0]),
            "skg:accelerationVoltage": float(optics["voltage"][0]),
            "skg:sphericalAberration": float(optics["spherical_aberration"][0]),
            "skg:amplitudeContrast": float(optics["amplitude_contrast"][0]),
        },
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import ctf_estimation

    table = read_star(context.input("micrographs"), "micrographs")
    optics = table.related["optics"].columns
    pixel = float(optics["micrograph_pixel_size"][0])
    rows = []
    names = [str(n) for n in table.columns["micrograph_name"]]
    for index, name in enumerate(names):
        micrograph = read_mrc(context.project.resolve_path(name))
        estimate = ctf_estimation.estimate_ctf(
            micrograph,
            pixel,
            float(optics["voltage"][0]),
            float(optics["spherical_aberration"][0]),
            float(optics["amplitude_contrast"][0]),
            tile_size=int(context.value("tile_size")),
            min_resolution=float(context.value("min_resolution")),
            max_resolution=float(context.value("max_resolution")),
            min_defocus=float(context.value("min_defocus")),
            max_defocus=float(context.value("max_defocus")),
            defocus_step=float(context.value("defocus_step")),
            find_phase_shift=bool(context.value("find_phase_shift")),
        )
        rows.append(
            {
                "defocus_u": estimate.defocus_u,
                "defocus_v": estimate.defocus_v,
                "defocus_angle": estimate.defocus_angle,
                "phase_shift": estimate.phase_shift,
                "ctf_max_resolution": estimate.fit_resolution,
                "ctf_figure_of_merit": estimate.cross_correlation,
            }
        )
        picture = context.directory / "Diagnostics" / f"{Path(name).stem}_ctf.png"
        ctf_estimation.plot_ctf_fit(estimate, picture)
        context.add_output(picture, "figure")
        context.progress(index + 1, len(names))
    _write_set(context, table, rows)


class CTFEstimationTask(StepTask):
    name = "ctf_estimation"
    step_class = "skg:CTFEstimation"
    input_ports = (Port("micrographs", "skg:MicrographSet"),)
    output_ports = (
        Port("micrographs", "skg:MicrographSet"),
        Port("figure", "skg:Figure", many=True, optional=True),
    )
    parameter_specs = (
        ParameterSpec("tile_size", "int", 512, "unit:PIXEL_COUNT", help="spectrum box (CTFFIND's box)"),
        ParameterSpec("min_resolution", "float", 30.0, "unit:ANGSTROM"),
        ParameterSpec("max_resolution", "float", 5.0, "unit:ANGSTROM"),
        ParameterSpec("min_defocus", "float", 5000.0, "unit:ANGSTROM"),
        ParameterSpec("max_defocus", "float", 50000.0, "unit:ANGSTROM"),
        ParameterSpec("defocus_step", "float", 500.0, "unit:ANGSTROM"),
        ParameterSpec("find_phase_shift", "bool", False),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software("Welch power spectrum, background subtraction, 1D then 2D astigmatic CTF fit"),
        ),
    )


TASK = CTFEstimationTask
