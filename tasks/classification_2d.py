"""Step ``classification_2d``: reference-free 2D alignment and classification into class averages, with
automatic selection of the good classes (``builtin/class2d.py``; RELION's ``relion_refine`` 2D as the
``relion`` backend). Outputs all particles with their class, in-plane angle and shift, the selected
particles, the class averages and a gallery picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.canonical import Table

from scipion_kg.errors import ProcessingError

from .images import write_mrc
from .parameters import ParameterSpec
from .particle_data import load_particles
from .software import builtin_software, relion_software_of
from .step import Backend, Port, StepContext, StepTask
from .tables import read_star, write_star

__all__ = ["TASK", "Classification2DTask"]


def run_builtin(context: StepContext) -> None:
    from .builtin import class2d

    data = load_particles(context.project, context.input("particles"))
    result = class2d.classify_2d(
        data.images,
        data.pixel_size,
        int(context.value("classes")),
        n_iterations=int(context.value("iterations")),
        psi_step=float(context.value("psi_step")),
        max_shift_px=int(context.value("max_shift")),
        ctf=data.ctf,
        mask_diameter=float(context.value("mask_diameter")),
        seed=int(context.value("seed")),
        progress=context.progress,
    )
    averages = context.directory / "class_averages.mrcs"
    write_mrc(averages, result.averages, data.pixel_size, stack=True)
    context.add_output(averages, "class_averages", {"skg:numberOfClasses": len(result.averages)})
    gallery = context.directory / "class_averages.png"
    class2d.plot_class_averages(result, gallery)
    context.add_output(gallery, "figure")

    table = read_star(context.input("particles"), "particles")
    columns = dict(table.columns)
    columns["class_number"] = np.asarray(result.assignments, dtype=np.int64)
    columns["angle_psi"] = np.asarray(result.psi, dtype=float)
    columns["origin_x"] = np.asarray(result.shifts, dtype=float)[:, 0]
    columns["origin_y"] = np.asarray(result.shifts, dtype=float)[:, 1]
    classified = Table("particles", columns, related=table.related)
    path = context.directory / "particles_classified.star"
    write_star(path, classified)
    context.add_output(path, "particles", {"skg:itemCount": classified.n_rows})

    selected_classes = class2d.select_classes(result, top_fraction=context.value("select_fraction"))
    keep = np.isin(columns["class_number"], np.asarray(selected_classes, dtype=np.int64))
    selected = Table("particles", {k: np.asarray(v)[keep] for k, v in columns.items()}, related=table.related)
    path = context.directory / "particles_selected.star"
    write_star(path, selected)
    context.summary["selected_classes"] = list(map(int, selected_classes))
    context.add_output(
        path, "selected", {"skg:itemCount": int(keep.sum()), "skg:numberOfClasses": len(selected_classes)}
    )


def run_relion(context: StepContext) -> None:
    """RELION 3.1 has no automatic class selection (its class ranker came in 4.0): the classes are ranked
    by RELION's own estimated resolution (finer first, ties by size) and the best ``select_fraction`` of
    the non-empty classes is kept."""
    from .wrappers import relion_steps

    result, table = relion_steps.classification_2d(context, context.input("particles"))
    classes = len(result.class_distribution)
    context.add_output(result.classes_stack, "class_averages", {"skg:numberOfClasses": classes})
    columns = dict(table.columns)
    order = _row_order(table, result.particles)
    for name in ("class_number", "angle_psi", "origin_x", "origin_y"):
        columns[name] = np.asarray(result.particles.columns[name])[order]
    classified = Table("particles", columns, related=table.related)
    path = context.directory / "particles_classified.star"
    write_star(path, classified)
    context.add_output(path, "particles", {"skg:itemCount": classified.n_rows})

    selected_classes = rank_relion_classes(
        result.class_distribution, result.class_resolution, float(context.value("select_fraction"))
    )
    keep = np.isin(columns["class_number"], np.asarray(selected_classes, dtype=np.int64))
    selected = Table("particles", {k: np.asarray(v)[keep] for k, v in columns.items()}, related=table.related)
    path = context.directory / "particles_selected.star"
    write_star(path, selected)
    context.summary["selected_classes"] = selected_classes
    context.add_output(
        path, "selected", {"skg:itemCount": int(keep.sum()), "skg:numberOfClasses": len(selected_classes)}
    )


def _row_order(table: Table, classified: Table) -> np.ndarray:
    """Indices into RELION's rows giving the input table's order (matched by image index and stack)."""

    def keys(rows: Table) -> list[tuple[int, str]]:
        indices = np.asarray(rows.columns.get("image_index", np.zeros(rows.n_rows)), dtype=np.int64)
        names = [Path(str(name)).name for name in rows.columns["image_name"]]
        return list(zip(indices.tolist(), names, strict=True))

    position = {key: row for row, key in enumerate(keys(classified))}
    try:
        return np.array([position[key] for key in keys(table)], dtype=np.int64)
    except KeyError as missing:
        raise ProcessingError(f"RELION's 2D classification lost the particle {missing.args[0]}") from None


def rank_relion_classes(distribution: np.ndarray, resolution: np.ndarray, fraction: float) -> list[int]:
    """1-based numbers (increasing) of the best ``fraction`` of the non-empty classes (at least one),
    ranked by estimated resolution in Å (finer first), ties by share of particles."""
    filled = np.flatnonzero(np.asarray(distribution) > 0)
    if filled.size == 0:
        raise ProcessingError("RELION's 2D classification left every class empty")
    order = sorted(filled, key=lambda k: (float(resolution[k]), -float(distribution[k])))
    count = max(1, round(fraction * len(filled)))
    return sorted(int(k) + 1 for k in order[:count])


class Classification2DTask(StepTask):
    name = "classification_2d"
    step_class = "skg:Classification2D"
    input_ports = (Port("particles", "skg:ParticleSet"),)
    output_ports = (
        Port("particles", "skg:ParticleSet"),
        Port("selected", "skg:ParticleSet"),
        Port("class_averages", "skg:AverageSet"),
        Port("figure", "skg:Figure", optional=True),
    )
    parameter_specs = (
        ParameterSpec("classes", "int", 10),
        ParameterSpec("iterations", "int", 10),
        ParameterSpec("psi_step", "float", 10.0, "unit:DEG"),
        ParameterSpec("max_shift", "int", 4, "unit:PIXEL_COUNT"),
        ParameterSpec("mask_diameter", "float", 170.0, "unit:ANGSTROM"),
        ParameterSpec("select_fraction", "float", 0.8, "unit:FRACTION", help="share of particles to keep"),
        ParameterSpec("seed", "int", 0),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software("reference-free alignment with CTF-weighted class averaging"),
        ),
        Backend(
            "relion",
            run_relion,
            relion_software_of("relion_refine (2D classification)"),
            programs=("relion_refine",),
        ),
    )


TASK = Classification2DTask
