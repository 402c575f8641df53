"""Measurements of a demo project's runs against the ground truth its simulation wrote (shared by the
built-in and the RELION demo tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.tasks.builtin.picking import match_picks
from scipion_kg.tasks.star_blocks import read_blocks
from scipion_kg.tasks.tables import read_star

PICK_RADIUS_PX = 150 / 1.9 / 4
"""A pick matches a true particle within a quarter of the particle diameter (150 Å at 1.9 Å/px)."""


def drift_rms_error(motion_run: Path, truth_drift: dict[str, list[list[float]]]) -> tuple[int, float]:
    """(movies measured, RMS error in px) of the global drift a motion-correction run wrote per movie."""
    squared = []
    # Both backends write one Micrographs/<movie>.star per movie (RELION's own job files are converted).
    for star in sorted(motion_run.glob("Micrographs/*.star")):
        blocks = read_blocks(star)
        if "global_shift" not in blocks:
            continue
        movie = Path(str(blocks["general"]["rlnMicrographMovieName"][0])).name
        shifts = blocks["global_shift"]
        # RELION's convention: the file holds the correction, minus the specimen's displacement.
        estimated = -np.column_stack([shifts["rlnMicrographShiftX"], shifts["rlnMicrographShiftY"]])
        truth = next(np.asarray(value) for key, value in truth_drift.items() if Path(key).name == movie)
        squared.append(((estimated - truth) ** 2).sum(axis=1))
    return len(squared), float(np.sqrt(np.mean(np.concatenate(squared)))) if squared else float("nan")


def picking_recall_precision(coordinates: Path, truth_particles: Path) -> tuple[float, float]:
    """Recall and precision of the picks, each micrograph's picks thresholded at its known count."""
    truth = read_star(truth_particles, "particles")
    picks = read_star(coordinates, "particles")
    true_stems = np.array([Path(n).stem for n in truth.columns["micrograph_name"]])
    pick_stems = np.array([Path(n).stem for n in picks.columns["micrograph_name"]])
    scores_all = np.asarray(
        picks.columns["figure_of_merit"] if "figure_of_merit" in picks.columns else np.zeros(picks.n_rows)
    )
    matched = picked = known = 0
    for stem in np.unique(true_stems):
        mine, theirs = pick_stems == stem, true_stems == stem
        best = np.argsort(-scores_all[mine], kind="stable")[: int(theirs.sum())]
        x = np.asarray(picks.columns["coordinate_x"])[mine][best]
        y = np.asarray(picks.columns["coordinate_y"])[mine][best]
        tx = np.asarray(truth.columns["coordinate_x"])[theirs]
        ty = np.asarray(truth.columns["coordinate_y"])[theirs]
        _, _, pairs = match_picks(x, y, tx, ty, PICK_RADIUS_PX)
        matched, picked, known = matched + len(pairs), picked + len(x), known + len(tx)
    return matched / known, matched / max(picked, 1)


def true_particle_share(particles: Path, truth_particles: Path) -> tuple[int, float]:
    """(rows, share of rows within PICK_RADIUS_PX of a true particle) of a particle set."""
    truth = read_star(truth_particles, "particles")
    rows = read_star(particles, "particles")
    true_stems = np.array([Path(n).stem for n in truth.columns["micrograph_name"]])
    stems = np.array([Path(n).stem for n in rows.columns["micrograph_name"]])
    x, y = np.asarray(rows.columns["coordinate_x"]), np.asarray(rows.columns["coordinate_y"])
    tx, ty = np.asarray(truth.columns["coordinate_x"]), np.asarray(truth.columns["coordinate_y"])
    near = 0
    for index in range(rows.n_rows):
        same = true_stems == stems[index]
        near += bool(np.hypot(tx[same] - x[index], ty[same] - y[index]).min() < PICK_RADIUS_PX)
    return rows.n_rows, near / max(rows.n_rows, 1)
