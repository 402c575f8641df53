"""MotionCor2 (Zheng et al. 2017, Nat Methods 14:331): command line, run, and its global-shift log.

MotionCor2 is GPU-only; on a CPU machine RELION's own implementation of the same algorithm
(:func:`scipion_kg.tasks.wrappers.relion.motioncorr`) is the substitute. The command line follows the
research notes (processing.md §6): ``MotionCor2 -InMrc|-InTiff|-InEer movie -OutMrc out.mrc -Patch 5 5
-Iter 10 -Tol 0.5 -PixSize A -kV 300 -FmDose e -Gain gain.mrc -FtBin 1 -Gpu 0 -LogDir dir/``.

The ``-LogDir`` files are named after the movie with its ``.mrc``/``.tif``/``.eer`` extension (and
anything after it) removed: ``<stem>-Full.log`` holds the global shifts, written by
``CFullAlign::LogShift`` of MotionCor3 (the open-source continuation of MotionCor2,
czimaginginstitute/MotionCor3 ``Align/CFullAlign.cpp``, ``Align/CAlignMain.cpp``) as a ``# full frame
alignment`` comment line then ``"%4d  %8.2f  %8.2f"`` rows: 1-based frame, shift x, shift y in pixels.
``<stem>-Patch-Full.log`` (patch alignment) has the same rows after two comment lines and a blank line.
The shifts have the sense of RELION's ``rlnMicrographShiftX/Y``: RELION stores MotionCor2's values
unchanged (``src/motioncorr_runner.cpp``, ``getShiftsMotioncor2``), and RELION's own implementation
reports minus the specimen motion (measured in this project's tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ProcessingError

from .programs import ProgramRun, find_program, run_program

__all__ = ["MotionCor2Result", "full_log_path", "motioncor2_command", "read_full_log", "run_motioncor2"]

_INPUT_FLAGS = {".mrc": "-InMrc", ".mrcs": "-InMrc", ".tif": "-InTiff", ".tiff": "-InTiff", ".eer": "-InEer"}
_LOG_STEM = re.compile(r"\.(?:mrc|tif|eer)", re.IGNORECASE)


def _number(value: float) -> str:
    return f"{float(value):g}"


def motioncor2_command(
    movie: str | Path,
    output: str | Path,
    *,
    pixel_size: float,
    voltage: float,
    dose_per_frame: float,
    log_dir: str | Path,
    patches: tuple[int, int] = (5, 5),
    iterations: int = 10,
    tolerance: float = 0.5,
    gain: str | Path | None = None,
    ft_bin: float = 1.0,
    bfactor: float | None = None,
    gpu: int = 0,
    program: str | Path = "MotionCor2",
) -> list[str]:
    """The MotionCor2 argv for one movie: the input flag follows the extension (``-InMrc`` for .mrc/.mrcs,
    ``-InTiff``, ``-InEer``); pixel size Å (of the movie), voltage kV, dose e⁻/Å² per frame, ``patches``
    (x, y) for local alignment, ``ft_bin`` Fourier binning, ``bfactor`` (``-Bft``) when given."""
    movie, output = Path(movie), Path(output)
    flag = _INPUT_FLAGS.get(movie.suffix.lower())
    if flag is None:
        raise ProcessingError(
            f"movie {movie}: MotionCor2 reads .mrc/.mrcs, .tif/.tiff or .eer movies, "
            f"not {movie.suffix or 'a file without extension'}"
        )
    for name, value in (("pixel_size", pixel_size), ("voltage", voltage), ("dose_per_frame", dose_per_frame)):
        if not value > 0:
            raise ProcessingError(f"{name} must be positive, got {value:g}")
    if min(patches) < 1 or iterations < 1 or tolerance <= 0 or ft_bin < 1:
        raise ProcessingError(
            f"patches {patches} (≥ 1 each), iterations {iterations} (≥ 1), tolerance {tolerance:g} (> 0 px) "
            f"and ft_bin {ft_bin:g} (≥ 1) are not all valid"
        )
    argv = [
        str(program), flag, str(movie), "-OutMrc", str(output),
        "-Patch", str(patches[0]), str(patches[1]), "-Iter", str(iterations), "-Tol", _number(tolerance),
        "-PixSize", _number(pixel_size), "-kV", _number(voltage), "-FmDose", _number(dose_per_frame),
    ]  # fmt: skip
    if gain is not None:
        argv += ["-Gain", str(gain)]
    if ft_bin != 1:
        argv += ["-FtBin", _number(ft_bin)]
    if bfactor is not None:
        argv += ["-Bft", _number(bfactor)]
    log = str(log_dir)
    argv += ["-Gpu", str(gpu), "-LogDir", log if log.endswith("/") else log + "/"]
    return argv


def full_log_path(log_dir: str | Path, movie: str | Path) -> Path:
    """``<log_dir>/<stem>-Full.log`` of a movie (the stem ends before the first .mrc/.tif/.eer)."""
    name = Path(movie).name
    match = _LOG_STEM.search(name)
    if match is None:
        raise ProcessingError(f"movie {movie}: MotionCor2 names its logs only for .mrc, .tif and .eer movies")
    return Path(log_dir) / f"{name[: match.start()]}-Full.log"


def read_full_log(path: str | Path) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(1-based frame numbers, shifts (n, 2) px) of a MotionCor2 ``-Full.log`` or ``-Patch-Full.log``."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise ProcessingError(f"cannot read the MotionCor2 log {path}: {error.strerror or error}") from None
    frames: list[int] = []
    shifts: list[tuple[float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = stripped.split()
        try:
            if len(tokens) != 3:
                raise ValueError
            frames.append(int(tokens[0]))
            shifts.append((float(tokens[1]), float(tokens[2])))
        except ValueError:
            raise ProcessingError(
                f"{path}: line {number}: expected 'frame shift_x shift_y', found {stripped!r}"
            ) from None
    if not frames:
        raise ProcessingError(f"{path}: no shift rows (empty or truncated MotionCor2 log)")
    return np.asarray(frames, dtype=np.int64), np.asarray(shifts, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class MotionCor2Result:
    micrograph: Path
    full_log: Path
    frames: npt.NDArray[np.int64]
    shifts: npt.NDArray[np.float64]  # (n, 2) px, RELION's rlnMicrographShiftX/Y sense
    run: ProgramRun


def run_motioncor2(
    movie: Path,
    output: Path,
    *,
    pixel_size: float,
    voltage: float,
    dose_per_frame: float,
    patches: tuple[int, int] = (5, 5),
    iterations: int = 10,
    tolerance: float = 0.5,
    gain: Path | None = None,
    ft_bin: float = 1.0,
    bfactor: float | None = None,
    gpu: int = 0,
    timeout: float | None = None,
) -> MotionCor2Result:
    """Run MotionCor2 (``$SCIPION_KG_MOTIONCOR2`` or PATH) on one movie; logs and ``-LogDir`` files go in
    ``<output dir>/logs``. Returns the micrograph and the parsed global shifts."""
    movie, output = Path(movie), Path(output)
    if not movie.is_file():
        raise ProcessingError(f"movie {movie} does not exist")
    log_dir = output.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = motioncor2_command(
        movie.resolve(), output.resolve(), pixel_size=pixel_size, voltage=voltage,
        dose_per_frame=dose_per_frame, log_dir=log_dir.resolve(), patches=patches, iterations=iterations,
        tolerance=tolerance, gain=gain, ft_bin=ft_bin, bfactor=bfactor, gpu=gpu,
        program=find_program("MotionCor2"),
    )  # fmt: skip
    run = run_program(argv, output.parent, log_dir, timeout=timeout, name=f"{output.stem}_motioncor2")
    if not output.is_file():
        raise ProcessingError(f"MotionCor2 finished but did not write {output}; see {run.stdout_log}")
    full = full_log_path(log_dir, movie)
    frames, shifts = read_full_log(full)
    return MotionCor2Result(output, full, frames, shifts, run)
