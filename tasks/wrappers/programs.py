"""Running installed EM programs: finding them, asking their version, running them with captured logs.

This is the part of the wrapper pattern that Scipion and the CCP-EM pipeliner share (each step writes its
inputs in the tool's format, builds an argv list, runs it in a job directory with stdout and stderr
captured, checks a success marker and parses the outputs; research notes, processing.md §6). Everything a
provenance record needs about one execution is in :class:`ProgramRun`: argv, working directory, the stdin
text, exit status, log paths, wall time and the environment variables that change results (``PATH``,
``OMP_NUM_THREADS``).

RELION specifics handled here:

* progress bars: RELION draws ``000/??? sec ~~(,_,">   [oo]`` and carriage-return spinner segments on
  stdout (hundreds of KB for a long job); :func:`trim_progress` removes them from the kept log;
* success markers: with ``--pipeline_control DIR/`` RELION writes ``DIR/RELION_JOB_EXIT_SUCCESS`` or
  ``RELION_JOB_EXIT_FAILURE`` (seen here with RELION 3.1.3); :func:`run_program` removes stale markers
  first and treats a failure marker as a failed run even when the exit status is 0;
* MPI: Open MPI refuses to start as root without ``--allow-run-as-root`` and more ranks than cores
  without ``--oversubscribe`` (:func:`mpi_command`).

A program is looked up on ``PATH`` unless ``$SCIPION_KG_<NAME>`` names it (``SCIPION_KG_CTFFIND``,
``SCIPION_KG_RELION_REFINE``...): the value is a path or a command name.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scipion_kg.errors import ProcessingError

__all__ = [
    "FAILURE_MARKER",
    "RECORDED_ENVIRONMENT",
    "SUCCESS_MARKER",
    "ProgramRun",
    "ProgramVersion",
    "env_var_for",
    "find_program",
    "mpi_command",
    "program_version",
    "run_program",
    "trim_progress",
]

SUCCESS_MARKER = "RELION_JOB_EXIT_SUCCESS"
FAILURE_MARKER = "RELION_JOB_EXIT_FAILURE"
_MARKERS = (SUCCESS_MARKER, FAILURE_MARKER, "RELION_JOB_EXIT_ABORTED")
# Environment variables that can change what a program computes or which program runs.
RECORDED_ENVIRONMENT = ("PATH", "OMP_NUM_THREADS")

# (pattern on the program name, package that provides it, what to use instead).
_PROVIDERS: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"^relion_", re.IGNORECASE),
        "RELION 3.1 or later (Debian/Ubuntu: apt-get install relion)",
        "the built-in numpy backend of the step",
    ),
    (
        re.compile(r"^(mpirun|mpiexec)$"),
        "Open MPI (Debian/Ubuntu: apt-get install openmpi-bin; RELION's package depends on it)",
        "one process (mpi_ranks=1) where the step allows it",
    ),
    (
        re.compile(r"^ctffind", re.IGNORECASE),
        "CTFFIND 4.1 (Rohou & Grigorieff 2015; grigoriefflab.umassmed.edu, also shipped with cisTEM)",
        "the built-in CTF estimation backend",
    ),
    (
        re.compile(r"^motioncor", re.IGNORECASE),
        "MotionCor2 (Zheng et al. 2017, UCSF; needs an NVIDIA GPU)",
        "RELION's own implementation (relion_run_motioncorr --use_own) or the built-in motion correction",
    ),
    (
        re.compile(r"^(newstack|tiltxcorr|xftoxg|tilt|tiltalign|trimvol|header)$"),
        "IMOD (bio3d.colorado.edu/imod)",
        "the built-in tomography backend",
    ),
    (re.compile(r"^gs$"), "Ghostscript (apt-get install ghostscript)", "job-directory outputs (RELION)"),
]

# A RELION progress segment: the "~~(,_,">" mouse, or "  3/ 10 sec ....." spinner text.
_PROGRESS = re.compile(r'~~\(,_,">|^\s*\d+/\s*(?:\d+|\?\?\?)\s+(?:sec|min|hrs)\b')
# A glibc backtrace line: "relion_refine(+0x35b2b) [0x5557707d4d1a]".
_BACKTRACE = re.compile(r"^\S+\(.*\)\s+\[0x[0-9a-f]+\]$")
_VERSION_NUMBER = re.compile(r"\b(\d+\.\d+(?:\.\d+)*)\b")


def env_var_for(name: str) -> str:
    """The environment variable that overrides the location of program ``name`` (``SCIPION_KG_<NAME>``)."""
    return "SCIPION_KG_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def _provider(name: str) -> tuple[str, str]:
    for pattern, package, alternative in _PROVIDERS:
        if pattern.search(name):
            return package, alternative
    return "the package that provides it", "the built-in backend of the step"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_program(name: str, env_var: str | None = None) -> Path:
    """The executable of program ``name``: ``$SCIPION_KG_<NAME>`` (or ``env_var``) when set, else ``PATH``.

    A missing program is a ProcessingError naming the program, the package that provides it and the
    alternative backend."""
    variable = env_var or env_var_for(name)
    override = os.environ.get(variable, "").strip()
    if override:
        candidate = Path(override).expanduser()
        found = str(candidate) if _executable(candidate) else shutil.which(override)
        if found is None:
            raise ProcessingError(
                f"${variable} is set to {override!r}, which is not an executable file or a command on PATH; "
                f"point it at the {name} program or unset it"
            )
        return Path(found)
    found = shutil.which(name)
    if found is None:
        package, alternative = _provider(name)
        raise ProcessingError(
            f"program {name!r} is not on PATH: it is provided by {package}. Install it, or set ${variable} "
            f"to its path, or use {alternative}"
        )
    return Path(found)


@dataclass(frozen=True)
class ProgramVersion:
    """What a program says about its version: the whole text (one line) and the version number in it."""

    program: Path
    text: str  # "RELION version: 3.1.3, Precision: BASE=double"
    version: str | None  # "3.1.3"


def program_version(
    program: str | Path, args: Sequence[str] = ("--version",), timeout: float = 60.0
) -> ProgramVersion:
    """Run ``program args`` (``relion_refine --version``) and parse its answer.

    The text is the non-empty output lines joined with ", " (stdout, or stderr when stdout is empty);
    the version is the first dotted number in it (None when there is none)."""
    path = Path(program) if os.sep in str(program) else find_program(str(program))
    try:
        completed = subprocess.run(
            [str(path), *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProcessingError(f"cannot ask {path} for its version ({' '.join(args)}): {error}") from None
    output = completed.stdout if completed.stdout.strip() else completed.stderr
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = ", ".join(lines[:4])
    match = _VERSION_NUMBER.search(text)
    return ProgramVersion(path, text, match.group(1) if match else None)


@dataclass(frozen=True)
class ProgramRun:
    """One execution of a program, as provenance needs it."""

    argv: tuple[str, ...]
    cwd: Path
    stdin: str | None
    exit_code: int
    stdout_log: Path  # stdout with progress bars removed
    stderr_log: Path
    elapsed: float  # wall time, seconds
    started: str  # ISO 8601, UTC
    environment: dict[str, str] = field(default_factory=dict)  # RECORDED_ENVIRONMENT entries that were set

    @property
    def command_line(self) -> str:
        """The argv as one shell-quoted line."""
        return shlex.join(self.argv)


def trim_progress(text: str) -> str:
    """``text`` without RELION's progress bars: carriage-return segments and lines holding the
    ``~~(,_,">`` mouse or spinner counters are dropped; other lines are kept in order."""
    kept: list[str] = []
    for line in text.split("\n"):
        segments = line.split("\r")
        if len(segments) == 1 and not _PROGRESS.search(line):
            kept.append(line)
            continue
        kept.extend(segment for segment in segments if segment.strip() and not _PROGRESS.search(segment))
    return "\n".join(kept)


def _log_name(argv: Sequence[str]) -> str:
    """The program of an argv, skipping an ``mpirun`` prefix and its options."""
    first = Path(argv[0]).name
    if first not in {"mpirun", "mpiexec"}:
        return first
    for item in argv[1:]:
        if not item.startswith("-") and not item.isdigit():
            return Path(item).name
    return first


def _error_excerpt(stderr: str, stdout: str, lines: int = 12) -> str:
    """The useful end of a failed run's output: RELION's ERROR block, else the last lines."""
    text = stderr if stderr.strip() else stdout
    useful = [
        line.rstrip() for line in text.splitlines() if line.strip() and not _BACKTRACE.match(line.strip())
    ]
    useful = [line for line in useful if not line.startswith(("=== Backtrace", "=================="))]
    errors = [i for i, line in enumerate(useful) if "ERROR" in line]
    if errors:
        start = max(errors[0] - 1, 0)
        return "\n".join(useful[start : start + lines])
    return "\n".join(useful[-lines:])


def run_program(
    argv: Sequence[str | Path],
    cwd: Path,
    log_dir: Path,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    *,
    name: str | None = None,
    marker_dir: Path | None = None,
) -> ProgramRun:
    """Run ``argv`` in ``cwd``; stdout goes to ``log_dir/<name>.out`` (progress bars trimmed), stderr to
    ``log_dir/<name>.err`` (``name`` defaults to the program's file name; existing logs are replaced).

    ``env`` adds to (or overrides) the current environment. ``marker_dir`` is the directory given to
    RELION's ``--pipeline_control``: stale markers are removed first and ``RELION_JOB_EXIT_FAILURE``
    afterwards fails the run. A non-zero exit status, a failure marker or a timeout (the process group
    is killed) raise ProcessingError with the end of stderr and the log paths."""
    arguments = [str(item) for item in argv]
    if not arguments:
        raise ProcessingError("run_program needs a program to run (argv is empty)")
    cwd = Path(cwd)
    if not cwd.is_dir():
        raise ProcessingError(f"working directory {cwd} of {arguments[0]} does not exist")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    label = name or _log_name(arguments)
    stdout_log, stderr_log = log_dir / f"{label}.out", log_dir / f"{label}.err"
    raw_log = log_dir / f".{label}.out.raw"
    environment = dict(os.environ)
    environment.update({key: str(value) for key, value in (env or {}).items()})
    recorded = {key: environment[key] for key in RECORDED_ENVIRONMENT if key in environment}
    if marker_dir is not None:
        for marker in _MARKERS:
            (Path(marker_dir) / marker).unlink(missing_ok=True)

    started = datetime.now(UTC).isoformat(timespec="seconds")
    begin = time.monotonic()
    with raw_log.open("wb") as out, stderr_log.open("wb") as err:
        try:
            process = subprocess.Popen(
                arguments,
                cwd=cwd,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=environment,
                start_new_session=True,  # one process group: a timeout kills MPI ranks too
            )
        except OSError as error:
            raw_log.unlink(missing_ok=True)
            raise ProcessingError(f"cannot start {arguments[0]}: {error.strerror or error}") from None
        try:
            process.communicate(input=stdin.encode() if stdin is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _finish_log(raw_log, stdout_log)
            raise ProcessingError(
                f"{label} did not finish within {timeout:g} s and was stopped; "
                f"logs: {stdout_log}, {stderr_log}"
            ) from None
    elapsed = time.monotonic() - begin
    stdout_text = _finish_log(raw_log, stdout_log)
    code = process.returncode
    failed_marker = marker_dir is not None and (Path(marker_dir) / FAILURE_MARKER).exists()
    if code != 0 or failed_marker:
        stderr_text = stderr_log.read_text(errors="replace")
        why = f"exit status {code}" if code != 0 else f"{FAILURE_MARKER} written"
        raise ProcessingError(
            f"{label} failed ({why}) in {cwd}:\n{_error_excerpt(stderr_text, stdout_text)}\n"
            f"command: {shlex.join(arguments)}\nlogs: {stderr_log}, {stdout_log}"
        )
    return ProgramRun(tuple(arguments), cwd, stdin, code, stdout_log, stderr_log, elapsed, started, recorded)


def _finish_log(raw_log: Path, stdout_log: Path) -> str:
    """Trim the raw stdout into the kept log; returns the kept text."""
    text = trim_progress(raw_log.read_bytes().decode("utf-8", errors="replace"))
    stdout_log.write_text(text)
    raw_log.unlink(missing_ok=True)
    return text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group this module started (SIGTERM, then SIGKILL after 10 s)."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def mpi_command(n: int, argv: Sequence[str | Path], *, mpirun: str | Path | None = None) -> list[str]:
    """``mpirun [--allow-run-as-root] --oversubscribe -n N argv...``.

    ``--allow-run-as-root`` is added when this process runs as root (Open MPI refuses otherwise);
    ``--oversubscribe`` lets N exceed the number of cores (RELION's auto-refine needs 3 ranks even on
    2 cores). The caller puts the MPI build of the program in argv (``relion_refine_mpi``)."""
    if n < 1:
        raise ProcessingError(f"the number of MPI ranks must be at least 1, got {n}")
    launcher = str(mpirun) if mpirun is not None else str(find_program("mpirun"))
    flags = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [launcher, *flags, "--oversubscribe", "-n", str(n), *(str(item) for item in argv)]
