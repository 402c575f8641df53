"""The ``relion`` backends of the step tasks: each writes RELION's inputs, runs the real program through
:mod:`.relion` and turns its outputs into the step's declared outputs.

RELION resolves the file names in its STAR files from its working directory (its "project directory").
Every RELION run here works inside the step's own run directory, which links the first folder of the
project's paths (``runs``, ``data``...) back to the project, so the STAR files keep project-relative
names, RELION's job directories (``MotionCorr/job001``...) land inside the run directory, and nothing is
written outside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table

from scipion_kg.recorder import Software

from ..step import StepContext
from . import relion

__all__ = ["link_project", "relion_software"]

RELION_THREADS = 2
"""``--j`` of the relion_refine runs that have no threads parameter of their own (2D classification)."""


def relion_software(program: str) -> list[Software]:
    """RELION as recorded: its own ``--version`` string, and the program that ran."""
    version = relion.relion_version()
    return [Software("RELION", version.text or version.version or "unknown", algorithm=program)]


def link_project(context: StepContext, names: Iterable[str]) -> Path:
    """Make the run directory RELION's project directory for the project-relative ``names``."""
    directory = context.directory
    for name in names:
        first = Path(str(name).partition("@")[2] or str(name)).parts[0]
        link = directory / first
        if not link.exists() and not link.is_symlink():
            target = os.path.relpath(context.project.root / first, directory)
            link.symlink_to(target, target_is_directory=True)
    return directory


def _project_path(context: StepContext, run_dir: Path, name: str) -> Path:
    """A file RELION names relative to its working directory, as a real path (links resolved)."""
    return Path(os.path.realpath(run_dir / name))


# -- motion correction -------------------------------------------------------------------------------------
def motion_correction(
    context: StepContext,
    movie_set: Callable[[StepContext], tuple[Table, dict[str, float]]],
    dose_per_frame: Callable[[StepContext], float],
    finish: Callable[[StepContext, Table, dict[str, float], list[str]], None],
) -> None:
    from ..motion_correction import write_shifts_star

    table, acquisition = movie_set(context)
    movies = [str(m) for m in table.columns["movie_name"]]
    run_dir = link_project(context, movies)
    star = run_dir / "movies.star"
    relion.write_movies_star(
        star,
        movies,
        pixel_size=acquisition["pixel_size"],
        voltage=acquisition["voltage"],
        spherical_aberration=acquisition["spherical_aberration"],
        amplitude_contrast=acquisition["amplitude_contrast"],
    )
    patches = context.value("patches")
    result = relion.motioncorr(
        star,
        run_dir,
        dose_per_frame=dose_per_frame(context),
        # RELION takes the B-factor in pixels² of the movie.
        bfactor=float(context.value("bfactor")) / acquisition["pixel_size"] ** 2,
        patch_x=int(patches[0]),
        patch_y=int(patches[1]),
        dose_weighting=bool(context.value("dose_weighting")),
        threads=int(context.value("threads")),
        iterations=int(context.value("iterations")),
    )
    names = []
    by_movie = {motion.movie: motion for motion in result.movies}
    for index, movie in enumerate(movies):
        motion = by_movie[movie]
        micrograph = _project_path(context, run_dir, str(motion.micrograph))
        context.add_output(micrograph, "micrograph")
        names.append(context.relative(micrograph))
        # The per-movie STAR as RELION wrote it (its shifts are the correction, as ours).
        shifts = context.directory / "Micrographs" / f"{Path(movie).stem}.star"
        write_shifts_star(shifts, movie, names[-1], -np.asarray(motion.shifts))
        context.add_output(shifts, "drift")
        context.progress(index + 1, len(movies))
    finish(context, table, acquisition, names)


# -- picking -------------------------------------------------------------------------------------------
def particle_picking(context: StepContext, micrographs: Table, write: Callable[..., None]) -> None:
    names = [str(n) for n in micrographs.columns["micrograph_name"]]
    run_dir = link_project(context, names)
    optics = micrographs.related["optics"].columns
    star = run_dir / "micrographs.star"
    relion.write_micrographs_star(
        star,
        names,
        pixel_size=float(optics["micrograph_pixel_size"][0]),
        voltage=float(optics["voltage"][0]),
        spherical_aberration=float(optics["spherical_aberration"][0]),
        amplitude_contrast=float(optics["amplitude_contrast"][0]),
    )
    diameter = [float(d) for d in context.value("diameter")]
    threshold = context.value("threshold")
    result = relion.autopick_log(
        star,
        run_dir,
        diameter_min=diameter[0],
        diameter_max=diameter[1],
        adjust_threshold=float(threshold) if threshold is not None else 0.0,
    )
    limit = context.value("particles_per_micrograph")
    xs, ys, scores = [], [], []
    for name in names:
        xy = np.asarray(result.coordinates.get(name, np.zeros((0, 2))), dtype=float).reshape(-1, 2)
        merit = np.asarray(result.figure_of_merit.get(name, np.zeros(len(xy))), dtype=float)
        order = np.argsort(-merit, kind="stable")
        if limit is not None:
            order = order[: int(limit)]
        xs.append(xy[order, 0])
        ys.append(xy[order, 1])
        scores.append(merit[order])
    write(context, micrographs, names, xs, ys, scores)


# -- extraction -----------------------------------------------------------------------------------------
def particle_extraction(
    context: StepContext, micrographs: Table, coordinates: Table, write: Callable[..., None]
) -> None:
    names = [str(n) for n in micrographs.columns["micrograph_name"]]
    run_dir = link_project(context, names)
    optics = micrographs.related["optics"].columns
    columns: dict[str, Any] = {
        k: micrographs.columns[k]
        for k in ("defocus_u", "defocus_v", "defocus_angle")
        if k in micrographs.columns
    }
    star = run_dir / "micrographs_ctf.star"
    relion.write_micrographs_star(
        star,
        names,
        pixel_size=float(optics["micrograph_pixel_size"][0]),
        voltage=float(optics["voltage"][0]),
        spherical_aberration=float(optics["spherical_aberration"][0]),
        amplitude_contrast=float(optics["amplitude_contrast"][0]),
        columns=columns,
    )
    picked = np.asarray(coordinates.columns["micrograph_name"]).astype(str)
    xy = {
        name: np.column_stack(
            [
                np.asarray(coordinates.columns["coordinate_x"])[picked == name],
                np.asarray(coordinates.columns["coordinate_y"])[picked == name],
            ]
        )
        for name in names
        if (picked == name).any()
    }
    rescale = context.value("rescale_box")
    result = relion.extract(
        star,
        xy,
        run_dir,
        box=int(context.value("box")),
        bg_radius=context.value("bg_radius"),
        invert_contrast=bool(context.value("invert_contrast")),
        normalise=bool(context.value("normalise")),
        rescale=int(rescale) if rescale is not None else None,
    )
    for stack in result.stacks:
        context.add_output(_project_path(context, run_dir, str(stack)), "stack")
    particles = result.particles
    out = dict(particles.columns)
    out["image_name"] = np.array(
        [
            context.relative(_project_path(context, run_dir, str(n)))
            for n in np.asarray(out["image_name"]).astype(str)
        ]
    )
    write(context, micrographs, out, particles)


# -- 3D refinement ------------------------------------------------------------------------------------------
def refine_3d(context: StepContext, particles_star: Path, reference: Path) -> Any:
    table, local = _local_particles(context, particles_star)
    result = relion.auto_refine(
        local,
        reference,
        context.directory,
        particle_diameter=float(context.value("mask_diameter")),
        symmetry=str(context.value("symmetry")),
        ini_high=float(context.value("initial_lowpass")),
        offset_range=float(context.value("max_shift"))
        * float(table.related["optics"].columns["pixel_size"][0]),
        seed=int(context.value("seed")),
    )
    return result


def postprocess(context: StepContext, half1: Path, half2: Path, mask: Path | None, pixel_size: float) -> Any:
    run_dir = context.directory
    bfactor = context.value("bfactor")
    return relion.postprocess(
        half1,
        half2,
        mask,
        run_dir,
        angpix=pixel_size,
        auto_bfactor=bfactor is None,
        autob_lowres=float(context.value("bfactor_low_resolution")),
    )


# -- reconstruction, masking, 2D classification --------------------------------------------------------------


def _local_particles(context: StepContext, particles_star: Path) -> tuple[Table, Path]:
    """The particle table and a copy of its STAR file in the run directory (RELION's project directory)."""
    from ..tables import read_star

    table = read_star(particles_star, "particles")
    run_dir = link_project(context, np.asarray(table.columns["image_name"]).astype(str))
    local = run_dir / "particles.star"
    local.write_bytes(particles_star.read_bytes())
    return table, local


def reconstruction(context: StepContext, particles_star: Path) -> tuple[Path, list[Path], Table]:
    """``relion_reconstruct`` of all particles and, when they carry half sets (``_rlnRandomSubset``), of each
    half: (map, half maps, particle table)."""
    table, local = _local_particles(context, particles_star)
    run_dir = context.directory
    options: dict[str, Any] = {
        "ctf": bool(context.value("ctf")) and "defocus_u" in table.columns,
        "symmetry": str(context.value("symmetry")),
        "project_dir": run_dir,
    }
    full = relion.reconstruct(local, run_dir / "reconstruction.mrc", **options).map
    halves = []
    if "half_set" in table.columns:
        for half in (1, 2):
            out = run_dir / f"reconstruction_half{half}.mrc"
            halves.append(relion.reconstruct(local, out, subset=half, **options).map)
    return full, halves, table


def mask_create(context: StepContext, volume: Path, threshold: float, pixel_size: float) -> Path:
    """``relion_mask_create`` of ``volume`` with the step's low-pass, extension and soft edge."""
    lowpass = context.value("lowpass")
    return relion.mask_create(
        volume,
        context.directory / "mask.mrc",
        threshold=threshold,
        extend=int(context.value("extend")),
        soft_edge=int(context.value("soft_edge")),
        angpix=pixel_size,
        lowpass=float(lowpass) if lowpass else None,
    ).mask


def classification_2d(context: StepContext, particles_star: Path) -> tuple[relion.Class2DResult, Table]:
    """``relion_refine`` 2D classification with the step's parameters: (RELION's result, input table)."""
    table, local = _local_particles(context, particles_star)
    pixel = float(table.related["optics"].columns["pixel_size"][0])
    result = relion.refine_2d(
        local,
        context.directory,
        classes=int(context.value("classes")),
        iterations=int(context.value("iterations")),
        particle_diameter=float(context.value("mask_diameter")),
        psi_step=float(context.value("psi_step")),
        offset_range=int(context.value("max_shift")) * pixel,
        offset_step=pixel,
        threads=RELION_THREADS,
        seed=int(context.value("seed")),
    )
    return result, table
