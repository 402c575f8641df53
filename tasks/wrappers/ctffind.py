"""CTFFIND 4.1 (Rohou & Grigorieff 2015, J Struct Biol 192:216): its interactive answers, a run, and its
output summary.

CTFFIND asks its parameters one by one on stdin; the wrapper writes the answers in CTFFIND 4.1's order
(the ``DoInteractiveUserInput`` of ``src/programs/ctffind/ctffind.cpp`` in cisTEM; the same order as
Scipion's cistem plugin ``program_ctffind.py``, research notes processing.md §6):

input micrograph; [input is a movie? and frames to average: asked only when the file holds more than one
section]; diagnostic output; pixel size (Å); voltage (kV); Cs (mm); amplitude contrast; spectrum box (px);
minimum resolution (Å, ≤ 50); maximum resolution (Å); minimum, maximum defocus and search step (Å);
known astigmatism? (no); slower exhaustive search / very large astigmatism expected?; restrain
astigmatism? (+ tolerated astigmatism, Å); find additional phase shift? (+ minimum, maximum, step in
radians); expert options? (no).

CTFFIND 5 asks more questions (sample tilt, thickness) and is refused by :func:`run_ctffind`.
The summary ``<diagnostic>.txt`` is read by :mod:`scipion_kg.converters.ctffind` and mapped to canonical
columns by the ``CTFFIND4`` convention: defocus 1/2 are U/V (Å, underfocus positive), the azimuth is the
astigmatism angle from +x (degrees), the phase shift is converted from radians to degrees
(``docs/conventions.md`` §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
from scipion_kg.converters import ctffind as ctffind_format
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.engine import read_table

from scipion_kg.errors import ParseError, ProcessingError

from .programs import ProgramRun, find_program, run_program

__all__ = [
    "CTFFINDOutput",
    "CTFFINDResult",
    "CTFFit",
    "ctffind_script",
    "read_ctffind_output",
    "run_ctffind",
    "summary_path",
]

_LOWEST_MINIMUM_RESOLUTION = 50.0  # Å: CTFFIND refuses a larger "minimum resolution"
_MAX_PHASE_RADIANS = 3.15  # CTFFIND's bounds of the phase-shift search


def _number(value: float) -> str:
    return f"{float(value):g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def ctffind_script(
    micrograph: str | Path,
    diagnostic: str | Path,
    pixel_size: float,
    voltage: float,
    cs: float,
    amplitude_contrast: float,
    box: int = 512,
    min_res: float = 30.0,
    max_res: float = 5.0,
    min_defocus: float = 5000.0,
    max_defocus: float = 50000.0,
    step: float = 500.0,
    find_phase_shift: bool = False,
    *,
    min_phase_shift: float = 0.0,
    max_phase_shift: float = 180.0,
    phase_shift_step: float = 10.0,
    slower_search: bool = False,
    restrain_astigmatism: bool = False,
    astigmatism_tolerance: float = 200.0,
    n_sections: int = 1,
    frames_to_average: int | None = None,
) -> str:
    """The stdin answers of one CTFFIND 4.1 run, one per line, ending with a newline.

    Units: pixel size, resolutions, defocus values and tolerance in Å, voltage kV, Cs mm, phase shifts
    in degrees (written in radians, as CTFFIND asks). ``n_sections`` is the number of sections of the
    input file: when above 1 CTFFIND asks whether it is a movie, answered yes with
    ``frames_to_average`` when given, else no (every section is then fitted as its own micrograph)."""
    _positive(pixel_size, "pixel_size", "Å")
    _positive(voltage, "voltage", "kV")
    if cs < 0:
        raise ProcessingError(f"cs (spherical aberration) must be ≥ 0 mm, got {cs:g}")
    if not 0.0 <= amplitude_contrast <= 1.0:
        raise ProcessingError(f"amplitude_contrast is a fraction 0..1, got {amplitude_contrast:g}")
    if box < 128:
        raise ProcessingError(f"box (spectrum size) must be at least 128 px for CTFFIND, got {box}")
    if not 0 < max_res < min_res <= _LOWEST_MINIMUM_RESOLUTION:
        raise ProcessingError(
            f"resolution range min_res={min_res:g} Å, max_res={max_res:g} Å is not accepted: CTFFIND fits "
            f"from the low resolution min_res (≤ {_LOWEST_MINIMUM_RESOLUTION:g} Å) to the higher max_res"
        )
    if not 0 <= min_defocus <= max_defocus:
        raise ProcessingError(
            f"defocus range {min_defocus:g}..{max_defocus:g} Å is not accepted: 0 ≤ min_defocus ≤ max_defocus"
        )
    if step < 1.0:
        raise ProcessingError(f"step (defocus search step) must be at least 1 Å, got {step:g}")
    if n_sections < 1:
        raise ProcessingError(f"n_sections must be at least 1, got {n_sections}")
    if frames_to_average is not None and not 1 <= frames_to_average <= n_sections:
        raise ProcessingError(
            f"frames_to_average={frames_to_average} must lie in 1..{n_sections} (the sections of the input)"
        )
    answers = [str(micrograph)]
    if n_sections > 1:
        answers.append(_yes(frames_to_average is not None))
        if frames_to_average is not None:
            answers.append(str(frames_to_average))
    answers += [
        str(diagnostic),
        _number(pixel_size),
        _number(voltage),
        _number(cs),
        _number(amplitude_contrast),
        str(box),
        _number(min_res),
        _number(max_res),
        _number(min_defocus),
        _number(max_defocus),
        _number(step),
        "no",  # the astigmatism is not known
        _yes(slower_search),
        _yes(restrain_astigmatism),
    ]
    if restrain_astigmatism:
        answers.append(_number(astigmatism_tolerance))
    answers.append(_yes(find_phase_shift))
    if find_phase_shift:
        low, high, increment = (math.radians(v) for v in (min_phase_shift, max_phase_shift, phase_shift_step))
        if not -_MAX_PHASE_RADIANS <= low <= high <= _MAX_PHASE_RADIANS or increment <= 0:
            raise ProcessingError(
                f"phase shift search {min_phase_shift:g}..{max_phase_shift:g}° step {phase_shift_step:g}° is "
                "not accepted: CTFFIND searches within ±180° with a positive step"
            )
        answers += [_number(low), _number(high), _number(increment)]
    answers.append("no")  # no expert options
    return "\n".join(answers) + "\n"


def _positive(value: float, name: str, unit: str) -> None:
    if not value > 0:
        raise ProcessingError(f"{name} must be positive, got {value:g} {unit}")


@dataclass(frozen=True)
class CTFFit:
    """One fitted micrograph, in canonical units."""

    micrograph_number: int
    defocus_u: float  # Å, underfocus positive (CTFFIND's defocus 1)
    defocus_v: float  # Å (defocus 2)
    defocus_angle: float  # degrees from +x to the U axis (CTFFIND's azimuth of astigmatism)
    phase_shift: float  # degrees (CTFFIND writes radians)
    cross_correlation: float
    fit_resolution: float  # Å up to which the Thon rings were fitted


@dataclass(frozen=True)
class CTFFINDOutput:
    fits: list[CTFFit]
    version: str | None  # "4.1.8", from the first header line
    fields: dict[str, str]  # header values as text ("Pixel size": "1.327", ...)
    table: Table  # canonical "micrographs" table (CTFFIND4 convention)


def summary_path(diagnostic: Path) -> Path:
    """CTFFIND's summary text file of a diagnostic image: the extension replaced by ``.txt``."""
    return Path(diagnostic).with_suffix(".txt")


def read_ctffind_output(path: Path) -> CTFFINDOutput:
    """Parse a CTFFIND 4/5 summary ``.txt`` through :mod:`scipion_kg.converters.ctffind`."""
    path = Path(path)
    try:
        document = ctffind_format.read(path)
        table, _ = read_table(path, "CTFFIND4")
    except ParseError as error:
        raise ProcessingError(f"cannot read the CTFFIND output {path}: {error}") from None
    columns = table.columns
    n = table.n_rows
    numbers = columns.get("view_index", np.arange(1, n + 1))
    fits = [
        CTFFit(
            int(numbers[i]),
            float(columns["defocus_u"][i]),
            float(columns["defocus_v"][i]),
            float(columns["defocus_angle"][i]),
            float(columns["phase_shift"][i]),
            float(columns["ctf_figure_of_merit"][i]),
            float(columns["ctf_max_resolution"][i]),
        )
        for i in range(n)
    ]
    return CTFFINDOutput(fits, document.version, dict(document.fields), table)


@dataclass(frozen=True)
class CTFFINDResult:
    output: CTFFINDOutput
    diagnostic: Path  # the diagnostic spectrum image (.mrc)
    summary: Path  # <diagnostic>.txt
    rotational_average: Path  # <diagnostic>_avrot.txt
    script: str  # the stdin answers given
    run: ProgramRun
    version: str | None = field(default=None)


def run_ctffind(
    micrograph: Path,
    diagnostic: Path,
    *,
    pixel_size: float,
    voltage: float,
    cs: float,
    amplitude_contrast: float,
    box: int = 512,
    min_res: float = 30.0,
    max_res: float = 5.0,
    min_defocus: float = 5000.0,
    max_defocus: float = 50000.0,
    step: float = 500.0,
    find_phase_shift: bool = False,
    min_phase_shift: float = 0.0,
    max_phase_shift: float = 180.0,
    phase_shift_step: float = 10.0,
    slower_search: bool = False,
    restrain_astigmatism: bool = False,
    astigmatism_tolerance: float = 200.0,
    frames_to_average: int | None = None,
    timeout: float | None = None,
) -> CTFFINDResult:
    """Run ``ctffind`` (``$SCIPION_KG_CTFFIND`` or PATH) on one micrograph (or movie) with the answers of
    :func:`ctffind_script`; logs go beside the diagnostic image. Returns the parsed summary."""
    micrograph = Path(micrograph)
    if not micrograph.is_file():
        raise ProcessingError(f"micrograph {micrograph} does not exist")
    with mrcfile.open(micrograph, header_only=True, permissive=True) as mrc:
        n_sections = int(mrc.header.nz)
    diagnostic = Path(diagnostic)
    diagnostic.parent.mkdir(parents=True, exist_ok=True)
    script = ctffind_script(
        micrograph.resolve(), diagnostic.resolve(), pixel_size, voltage, cs, amplitude_contrast, box,
        min_res, max_res, min_defocus, max_defocus, step, find_phase_shift,
        min_phase_shift=min_phase_shift, max_phase_shift=max_phase_shift, phase_shift_step=phase_shift_step,
        slower_search=slower_search, restrain_astigmatism=restrain_astigmatism,
        astigmatism_tolerance=astigmatism_tolerance, n_sections=n_sections,
        frames_to_average=frames_to_average,
    )  # fmt: skip
    program = find_program("ctffind")
    run = run_program(
        [str(program)], diagnostic.parent, diagnostic.parent, stdin=script, timeout=timeout,
        name=f"{diagnostic.stem}_ctffind",
    )  # fmt: skip
    summary = summary_path(diagnostic)
    if not summary.is_file():
        raise ProcessingError(f"ctffind finished but did not write {summary}; see {run.stdout_log}")
    output = read_ctffind_output(summary)
    if output.version is not None and not output.version.startswith("4."):
        raise ProcessingError(
            f"{program} is CTFFIND {output.version}; only CTFFIND 4.x's question order is supported"
        )
    avrot = summary.with_name(summary.stem + "_avrot.txt")
    return CTFFINDResult(output, diagnostic, summary, avrot, script, run, output.version)
