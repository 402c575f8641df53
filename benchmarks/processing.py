"""Processing benchmark: built-in backends side by side with RELION 3.1.3 on the same simulated data.

    python benchmarks/processing.py                      # motion, picking, engine overhead (minutes)
    python benchmarks/processing.py --demo standard      # also the standard demo end to end
    python benchmarks/reconstruction.py --particles 20000 --box 128   # reconstruction, built-in vs RELION

Motion correction and LoG picking run on movies simulated from PDB 1BD2 (the demo's SMALL preset): each
backend's time (median of ``--repeats``) and its error against the ground truth (RMS drift error in
pixels; recall and precision of the top-N picks, N the known count, within a quarter of the diameter).
The engine overhead is the time scipion-kg adds around the steps: checking, compiling and scheduling the
demo workflow once every step is complete (Luigi's scheduler and the completeness checks included).
Targets (2 cores): standard demo under 10 minutes; engine overhead under 1 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipion_kg.tasks.builtin import simulate
from scipion_kg.tasks.builtin.motion import correct_motion
from scipion_kg.tasks.builtin.picking import match_picks, pick_log
from scipion_kg.tasks.images import write_mrc
from scipion_kg.tasks.simulation import packaged_model
from scipion_kg.tasks.wrappers import relion

T = TypeVar("T")


def _median_time(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def motion_and_picking(work: Path, movies: int, repeats: int) -> None:
    settings = dataclasses.replace(simulate.SMALL, n_micrographs=movies, seed=3)
    volume = simulate.ground_truth_map(packaged_model(), settings.box, settings.pixel_size, 30.0)
    simulated = list(simulate.simulate_movies(volume, settings))
    names = []
    for index, movie in enumerate(simulated, start=1):
        path = work / "movies" / f"movie_{index:03d}.mrc"
        write_mrc(path, movie.frames, settings.pixel_size)
        names.append(path.relative_to(work).as_posix())
    truth = np.concatenate([m.drift for m in simulated])

    def builtin_motion() -> tuple[np.ndarray, list[np.ndarray]]:
        results = [correct_motion(m.frames, settings.pixel_size, settings.dose_per_frame) for m in simulated]
        return np.concatenate([r.shifts for r in results]), [r.aligned_sum for r in results]

    seconds, (shifts, sums) = _median_time(builtin_motion, repeats)
    rows = [("motion correction", "built-in", seconds, f"RMS drift error {_rms(shifts, truth):.3f} px")]
    if shutil.which("relion_run_motioncorr"):
        star = work / "movies.star"
        relion.write_movies_star(
            star,
            names,
            pixel_size=settings.pixel_size,
            voltage=300.0,
            spherical_aberration=2.7,
            amplitude_contrast=0.1,
        )

        def relion_motion() -> np.ndarray:
            result = relion.motioncorr(
                star, work, dose_per_frame=settings.dose_per_frame, bfactor=150.0 / settings.pixel_size**2
            )
            by_movie = {m.movie: m for m in result.movies}
            return np.concatenate([-by_movie[name].shifts for name in names])

        seconds, relion_shifts = _median_time(relion_motion, repeats)
        rows.append(
            ("motion correction", "RELION", seconds, f"RMS drift error {_rms(relion_shifts, truth):.3f} px")
        )

    def builtin_picking() -> tuple[float, float]:
        found = []
        for movie, image in zip(simulated, sums, strict=True):
            picks = pick_log(image, settings.pixel_size, 110, 180, max_particles=len(movie.x))
            found.append(
                match_picks(picks.x, picks.y, np.asarray(movie.x), np.asarray(movie.y), 150 / 2.8 / 4)
            )
        return float(np.mean([f[0] for f in found])), float(np.mean([f[1] for f in found]))

    seconds, (recall, precision) = _median_time(builtin_picking, repeats)
    rows.append(("LoG picking", "built-in", seconds, f"recall {recall:.3f}, precision {precision:.3f}"))
    if shutil.which("relion_autopick"):
        mic_names = []
        for index, image in enumerate(sums, start=1):
            path = work / "micrographs" / f"mic_{index:03d}.mrc"
            write_mrc(path, image, settings.pixel_size)
            mic_names.append(path.relative_to(work).as_posix())
        star = work / "micrographs.star"
        relion.write_micrographs_star(
            star,
            mic_names,
            pixel_size=settings.pixel_size,
            voltage=300.0,
            spherical_aberration=2.7,
            amplitude_contrast=0.1,
        )

        def relion_picking() -> tuple[float, float]:
            result = relion.autopick_log(star, work, diameter_min=110, diameter_max=180)
            found = []
            for name, movie in zip(mic_names, simulated, strict=True):
                xy = np.asarray(result.coordinates[name]).reshape(-1, 2)
                merit = np.asarray(result.figure_of_merit[name])
                best = np.argsort(-merit)[: len(movie.x)]
                found.append(
                    match_picks(
                        xy[best, 0], xy[best, 1], np.asarray(movie.x), np.asarray(movie.y), 150 / 2.8 / 4
                    )
                )
            return float(np.mean([f[0] for f in found])), float(np.mean([f[1] for f in found]))

        seconds, (recall, precision) = _median_time(relion_picking, repeats)
        rows.append(("LoG picking", "RELION", seconds, f"recall {recall:.3f}, precision {precision:.3f}"))
    print(
        f"\n{movies} movies of {settings.micrograph_size} px x {settings.n_frames} frames, "
        f"medians of {repeats}"
    )
    print(f"{'step':20} {'backend':10} {'seconds':>8}  quality vs ground truth")
    for step, backend, seconds, quality in rows:
        print(f"{step:20} {backend:10} {seconds:8.2f}  {quality}")
    pairs = {(r[0], r[1]): r[2] for r in rows}
    for step in ("motion correction", "LoG picking"):
        if (step, "RELION") in pairs:
            print(
                f"{step}: built-in / RELION time = {pairs[(step, 'built-in')] / pairs[(step, 'RELION')]:.2f}"
            )


def _rms(estimated: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((np.asarray(estimated) - truth) ** 2, axis=1))))


def demo_end_to_end(work: Path, size: str, repeats: int) -> None:

    from scipion_kg.demo import run_demo

    started = time.perf_counter()
    result = run_demo(work / f"demo-{size}", size, say=lambda _: None)
    total = time.perf_counter() - started
    steps = sum(s["seconds"] or 0.0 for s in result.summary["steps"].values())
    print(
        f"\n{size} demo end to end: {total:.1f} s ({total / 60:.1f} min), "
        f"resolution {result.summary['resolution']:.2f} Å"
    )
    for name, step in result.summary["steps"].items():
        print(f"  {name:12} {step['seconds'] or 0:7.1f} s")
    print(f"  engine overhead in the first run (total - steps, data writing included): {total - steps:.2f} s")
    # A no-op re-run in a fresh process each time (nothing cached from the run above): the time
    # run_workflow takes to check the workflow, compile it, let Luigi schedule it and find every step
    # complete from its bundle and input hashes, and re-ingest the bundles.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from scipion_kg.demo import demo_workflow\n"
        "from scipion_kg.project import Project\n"
        "from scipion_kg.tasks.hooks import ProgressReporter\n"
        "from scipion_kg.tasks.simulation import packaged_model\n"
        "from scipion_kg.tasks.workflow import parse_workflow, run_workflow\n"
        "project = Project.find(Path(sys.argv[1]))\n"
        "model = project.root / 'data' / 'models' / packaged_model().name\n"
        "steps = demo_workflow(sys.argv[2], 'builtin', model)\n"
        "workflow = parse_workflow(steps, project, base=project.root)\n"
        "started = time.perf_counter()\n"
        "result = run_workflow(workflow, reporter=ProgressReporter(quiet=True))\n"
        "assert result.succeeded\n"
        "print(time.perf_counter() - started)\n"
    )
    overheads = []
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, "-c", script, str(result.project), size],
            capture_output=True,
            text=True,
            check=True,
        )
        overheads.append(float(output.stdout.strip().splitlines()[-1]))
    print(
        f"engine overhead of a no-op re-run (fresh process: check, compile, Luigi, completeness, ingest), "
        f"median of {repeats}: {statistics.median(overheads):.2f} s (target < 1 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--movies", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", choices=["small", "standard"], default="small")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="scipion-kg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    motion_and_picking(work / "motion", args.movies, args.repeats)
    demo_end_to_end(work, args.demo, args.repeats)


if __name__ == "__main__":
    main()
