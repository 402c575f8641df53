"""IMOD (Kremer, Mastronarde & McIntosh 1996, J Struct Biol 116:71; Mastronarde & Held 2017, J Struct
Biol 197:102): command lines of the tilt-series alignment and reconstruction programs, and their
transform and angle files.

Command lines follow the research notes (processing.md §6) and Scipion's imod plugin
(``protocol_xCorrPrealignment.py``): ``tiltxcorr`` measures the view-to-view shifts (``.prexf``),
``xftoxg -NumberToFit 0`` turns them into global transforms (``.prexg``), ``newstack -xform`` applies
them, ``tilt`` back-projects. IMOD programs take PIP options (``-Name value``; lists comma-separated).

``.xf``/``.prexf``/``.prexg`` rows are ``A11 A12 A21 A22 DX DY``, read by
:mod:`scipion_kg.converters.imod`: a transform maps a raw-image point x (about the image centre) to
``A·x + d`` in the aligned image (``docs/conventions.md`` §1). ``.tlt``/``.rawtlt`` hold one angle
(degrees) per view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipion_kg.converters import imod as imod_format

from scipion_kg.errors import ParseError, ProcessingError

from .programs import ProgramRun, find_program, run_program

__all__ = [
    "XfTransforms",
    "compose_xf",
    "newstack_command",
    "read_tilt_angles",
    "read_xf",
    "run_imod",
    "tilt_command",
    "tiltxcorr_command",
    "xftoxg_command",
]

FloatArray = npt.NDArray[np.float64]


def _number(value: float) -> str:
    return f"{float(value):g}"


def _pair(values: Sequence[float]) -> str:
    return ",".join(_number(value) for value in values)


def newstack_command(
    source: str | Path,
    output: str | Path,
    *,
    xform: str | Path | None = None,
    binning: int | None = None,
    taper: tuple[int, int] | None = None,
    program: str | Path = "newstack",
) -> list[str]:
    """``newstack -input ts.st -output ts_ali.mrc [-xform ts.xf] [-bin N] [-taper 1,0]``."""
    argv = [str(program), "-input", str(source), "-output", str(output)]
    if xform is not None:
        argv += ["-xform", str(xform)]
    if binning is not None:
        if binning < 1:
            raise ProcessingError(f"newstack binning must be at least 1, got {binning}")
        argv += ["-bin", str(binning)]
    if taper is not None:
        argv += ["-taper", f"{taper[0]},{taper[1]}"]
    return argv


def tiltxcorr_command(
    source: str | Path,
    output: str | Path,
    tilt_file: str | Path,
    *,
    rotation_angle: float,
    filter_sigma1: float = 0.03,
    filter_radius2: float = 0.25,
    filter_sigma2: float = 0.05,
    program: str | Path = "tiltxcorr",
) -> list[str]:
    """``tiltxcorr -input ts.st -output ts.prexf -tiltfile ts.tlt -RotationAngle θ -FilterSigma1 0.03
    -FilterRadius2 0.25 -FilterSigma2 0.05``: ``rotation_angle`` is the tilt-axis angle from the y axis
    (degrees, IMOD's sense); the filter values are in reciprocal pixels."""
    return [
        str(program), "-input", str(source), "-output", str(output), "-tiltfile", str(tilt_file),
        "-RotationAngle", _number(rotation_angle), "-FilterSigma1", _number(filter_sigma1),
        "-FilterRadius2", _number(filter_radius2), "-FilterSigma2", _number(filter_sigma2),
    ]  # fmt: skip


def xftoxg_command(
    source: str | Path,
    output: str | Path,
    *,
    nfit: int = 0,
    program: str | Path = "xftoxg",
) -> list[str]:
    """``xftoxg -NumberToFit 0 -input ts.prexf -goutput ts.prexg`` (0: global alignment, no trend fit)."""
    if nfit < 0:
        raise ProcessingError(f"xftoxg NumberToFit must be ≥ 0, got {nfit}")
    return [str(program), "-NumberToFit", str(nfit), "-input", str(source), "-goutput", str(output)]


def tilt_command(
    source: str | Path,
    output: str | Path,
    tilt_file: str | Path,
    *,
    thickness: int,
    full_image: tuple[int, int],
    radial: tuple[float, float] = (0.35, 0.035),
    scale: tuple[float, float] = (0.0, 0.05),
    mode: int = 2,
    perpendicular: bool = True,
    program: str | Path = "tilt",
) -> list[str]:
    """``tilt -InputProjections ts_ali.mrc -OutputFile tomo.rec -TILTFILE ts.tlt -THICKNESS 300
    -RADIAL 0.35,0.035 -FalloffIsTrueSigma 1 -SCALE 0.0,0.05 [-PERPENDICULAR] -MODE 2 -FULLIMAGE nx,ny``:
    weighted back-projection; ``thickness`` in pixels, ``full_image`` the (nx, ny) of the aligned stack,
    ``radial`` the cutoff and fall-off of the radial filter (reciprocal pixels)."""
    if thickness < 1 or min(full_image) < 1:
        raise ProcessingError(f"thickness {thickness} and full_image {full_image} must be positive pixels")
    argv = [
        str(program), "-InputProjections", str(source), "-OutputFile", str(output),
        "-TILTFILE", str(tilt_file),
        "-THICKNESS", str(thickness), "-RADIAL", _pair(radial), "-FalloffIsTrueSigma", "1",
        "-SCALE", _pair(scale),
    ]  # fmt: skip
    if perpendicular:
        argv.append("-PERPENDICULAR")
    argv += ["-MODE", str(mode), "-FULLIMAGE", f"{full_image[0]},{full_image[1]}"]
    return argv


def run_imod(
    argv: Sequence[str | Path], cwd: Path, log_dir: Path, *, timeout: float | None = None
) -> ProgramRun:
    """Run an IMOD command built above; its program is looked up (``$SCIPION_KG_<NAME>`` or PATH)."""
    if not argv:
        raise ProcessingError("run_imod needs a command")
    program = find_program(Path(str(argv[0])).name)
    return run_program([str(program), *(str(item) for item in argv[1:])], cwd, log_dir, timeout=timeout)


@dataclass(frozen=True)
class XfTransforms:
    """Per-view 2D transforms of an IMOD ``.xf``-style file: x' = matrices[i] @ x + shifts[i]."""

    matrices: FloatArray  # (n, 2, 2): [[A11, A12], [A21, A22]]
    shifts: FloatArray  # (n, 2): (DX, DY) pixels

    def __len__(self) -> int:
        return len(self.matrices)

    def apply(self, points: npt.ArrayLike) -> FloatArray:
        """Points (n_views, 2) or (n_views, m, 2) mapped by each view's transform."""
        array = np.asarray(points, dtype=np.float64)
        if array.ndim == 2:
            return np.asarray(np.einsum("nij,nj->ni", self.matrices, array) + self.shifts)
        return np.asarray(np.einsum("nij,nmj->nmi", self.matrices, array) + self.shifts[:, None, :])


def read_xf(path: Path) -> XfTransforms:
    """The transforms of an ``.xf``, ``.prexf``, ``.prexg``, ``.xg`` file (via converters.imod)."""
    try:
        document = imod_format.read(Path(path), imod_format.XF_IRI)
    except ParseError as error:
        raise ProcessingError(f"cannot read the IMOD transforms {path}: {error}") from None
    columns = document.blocks["views"].columns
    a11, a12, a21, a22, dx, dy = (
        np.asarray(columns[label], dtype=np.float64) for label in imod_format.XF_COLUMNS
    )
    matrices = np.stack([np.stack([a11, a12], axis=-1), np.stack([a21, a22], axis=-1)], axis=-2)
    return XfTransforms(matrices, np.column_stack([dx, dy]))


def read_tilt_angles(path: Path) -> FloatArray:
    """The angles (degrees) of a ``.tlt`` or ``.rawtlt`` file, one per view (via converters.imod)."""
    try:
        document = imod_format.read(Path(path), imod_format.TILT_ANGLES_IRI)
    except ParseError as error:
        raise ProcessingError(f"cannot read the IMOD tilt angles {path}: {error}") from None
    return np.asarray(document.blocks["views"].columns["tilt_angle"], dtype=np.float64)


def compose_xf(first: XfTransforms, then: XfTransforms) -> XfTransforms:
    """The transforms that apply ``first`` and then ``then``, view by view (IMOD's ``xfproduct``):
    A = A₂·A₁, d = A₂·d₁ + d₂."""
    if len(first) != len(then):
        raise ProcessingError(f"cannot compose {len(first)} transforms with {len(then)}: one per view needed")
    matrices = then.matrices @ first.matrices
    shifts = np.einsum("nij,nj->ni", then.matrices, first.shifts) + then.shifts
    return XfTransforms(np.asarray(matrices), np.asarray(shifts))
