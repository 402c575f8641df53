"""Wrappers of RELION 3.1 programs: typed parameters in, argv built, run in a RELION job directory, outputs
parsed into numpy arrays, canonical tables and dataclasses.

Method references: RELION (Scheres 2012, J Struct Biol 180:519; Zivanov et al. 2018, eLife 7:e42166;
optics groups of 3.1: Zivanov, Nakane & Scheres 2020, IUCrJ 7:253); RELION's own motion correction
implements MotionCor2's algorithm (Zheng et al. 2017, Nat Methods 14:331; Zivanov et al. 2019, IUCrJ 6:5);
Laplacian-of-Gaussian picking (Zivanov et al. 2018); gold-standard refinement (Scheres & Chen 2012, Nat
Methods 9:853); post-processing: FSC weighting and B-factor (Rosenthal & Henderson 2003, J Mol Biol
333:721), phase randomisation (Chen et al. 2013, Ultramicroscopy 135:24).

Layout. ``run_dir`` is the RELION project directory: every program runs there (RELION resolves the paths
inside STAR files from its working directory, and writes paths relative to it), and each call gets a new
job directory ``<run_dir>/<JobType>/jobNNN/`` (``MotionCorr/job001/``...). Job-directory outputs avoid the
Ghostscript pitfall seen with RELION 3.1.3 (a bare ``--o pp`` makes postprocess exit 1 after writing its
outputs when ``gs`` builds ``logfile.pdf``). Every job runs with ``--pipeline_control <job>/`` so RELION
writes ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE`` there; logs are ``<job>/<program>.out``
(progress bars trimmed) and ``.err``. Input STAR files must name their images and movies relative to
``run_dir`` (or absolutely); this is checked before RELION runs.

Units: lengths in Å, angles in degrees, as the canonical tables (``docs/conventions.md`` §0); converted to
RELION's pixels where RELION wants pixels (``offset_range``/``offset_step`` of relion_refine). Mask
extension and soft edge are in pixels (voxels), as RELION and the built-in ``soft_mask`` take them.
Micrograph coordinates are 0-based pixel centres, x right, y down the rows (RELION's, checked here by
extracting boxes around blobs at known positions); relion_preprocess truncates a fractional coordinate
(``xpos = (long int)x`` in ``src/preprocessing.cpp``), so the box centre, index box // 2, is pixel
``int(x)`` and the particle sits ``x - int(x)`` pixels right of it.

Facts measured here with RELION 3.1.3 (Debian, CPU, double precision): relion_preprocess 3.1.3 takes
coordinates through ``--coord_dir``/``--coord_suffix`` (no ``--coord_list``, which is RELION 4), the file of
micrograph ``M`` being ``<coord_dir>/<M after its jobNNN/ part, without extension><suffix>``; autopick
reads the pixel size from the micrographs' optics group; ``relion_reconstruct`` has no ``--j`` (threads
are MPI ranks of ``relion_reconstruct_mpi`` here); auto-refine with ``--split_random_halves`` stops with
"at least 3 MPI processes are required"; ``--auto_iter_max`` stops auto-refine without a final map.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
from scipion_kg.converters import star
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.engine import read_table, resolve_convention, write_document
from scipion_kg.converters.mapping import from_canonical
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError, ProcessingError

from .programs import ProgramRun, ProgramVersion, find_program, mpi_command, program_version, run_program

__all__ = [
    "AutopickResult",
    "Class2DResult",
    "ExtractResult",
    "FSCCurves",
    "MaskResult",
    "MotionCorrResult",
    "MovieMotion",
    "PostprocessResult",
    "ReconstructResult",
    "RefineResult",
    "auto_refine",
    "autopick_log",
    "coordinate_file_name",
    "extract",
    "mask_create",
    "motioncorr",
    "new_job_dir",
    "postprocess",
    "read_coordinates_star",
    "read_global_shifts",
    "read_postprocess_star",
    "reconstruct",
    "refine_2d",
    "relion_version",
    "write_coordinates_star",
    "write_micrographs_star",
    "write_movies_star",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
STAR_VERSION = "30001"  # RELION 3.1's "# version 30001"
_SYMMETRY = re.compile(r"^(?:[CD][1-9]\d*|T|O|I[1-5]?)$", re.IGNORECASE)
_ITERATION_FILE = re.compile(r"_it(\d{3})_optimiser\.star$")


# --- shared pieces -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _cached_version(path: str, mtime: float) -> ProgramVersion:
    del mtime  # part of the cache key only: a reinstalled program is asked again
    return program_version(Path(path))


def _version(program: Path) -> ProgramVersion:
    return _cached_version(str(program), program.stat().st_mtime)


def relion_version() -> ProgramVersion:
    """``relion_refine --version``: text "RELION version: 3.1.3, Precision: BASE=double", version "3.1.3"."""
    return _version(find_program("relion_refine"))


def new_job_dir(run_dir: Path, job_type: str) -> Path:
    """A new, empty ``<run_dir>/<job_type>/jobNNN/`` with the next free number (as RELION numbers jobs)."""
    parent = Path(run_dir) / job_type
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[3:]) for p in parent.iterdir() if re.fullmatch(r"job\d{3,}", p.name)]
    number = max(numbers, default=0) + 1
    while True:
        job = parent / f"job{number:03d}"
        try:
            job.mkdir()
        except FileExistsError:  # another process took it
            number += 1
            continue
        return job


def _arg(path: Path, cwd: Path) -> str:
    """``path`` as RELION should see it from ``cwd``: relative when inside ``cwd``, else absolute."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(absolute)


def _job_arg(job_dir: Path, run_dir: Path) -> str:
    return _arg(job_dir, run_dir) + "/"


def _num(value: float) -> str:
    """A number as RELION's parser reads it (``%g``: 6 significant digits)."""
    return f"{float(value):g}"


def _positive(value: float, name: str, unit: str = "") -> None:
    if not value > 0:
        raise ProcessingError(f"{name} must be positive, got {value:g}{unit}")


def _require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ProcessingError(f"{what} {path} does not exist")
    return path


def _read_star(path: Path, program: str) -> RawDocument:
    if not Path(path).is_file():
        raise ProcessingError(
            f"{program} finished but did not write {path}; see the logs in {Path(path).parent}"
        )
    try:
        return star.read(Path(path))
    except ParseError as error:
        raise ProcessingError(f"{program} wrote {path}, which cannot be read: {error}") from None


def _block_with(document: RawDocument, label: str, preferred: str, path: Path) -> RawBlock:
    if preferred in document.blocks and label in document.blocks[preferred].columns:
        return document.blocks[preferred]
    for block in document:
        if label in block.columns:
            return block
    raise ProcessingError(
        f"{path} has no column _{label} "
        f"(blocks: {', '.join('data_' + b for b in document.blocks) or 'none'}); "
        f"RELION 3.1 expects it in data_{preferred}"
    )


def _column(block: RawBlock, label: str) -> npt.NDArray[np.generic]:
    return block.columns[label]


def _first_float(document: RawDocument, block: str, label: str, path: Path) -> float:
    found = document.blocks.get(block)
    if found is None or label not in found.columns or found.n_rows == 0:
        raise ProcessingError(f"{path}: no _{label} in data_{block}")
    return float(found.columns[label][0])


def _check_references(path: Path, block: RawBlock, label: str, run_dir: Path, what: str) -> list[str]:
    """The distinct files named in column ``label`` (``index@`` removed), each of which must exist from
    ``run_dir``, RELION's working directory."""
    names = [str(value).partition("@")[2] or str(value) for value in _column(block, label).tolist()]
    distinct = list(dict.fromkeys(names))
    for row, name in enumerate(distinct):
        if not (Path(run_dir) / name).is_file():
            raise ProcessingError(
                f"{path}: the {what} {name!r} (column _{label}, {block.where(names.index(name))}) does not "
                f"exist from the RELION project directory {run_dir}; RELION resolves STAR paths from its "
                "working directory: write them relative to run_dir, or absolute"
            )
        if row > 2000:  # enough to catch a wrong base directory
            break
    return distinct


def _run(
    argv: Sequence[str], run_dir: Path, job_dir: Path, *, threads: int, timeout: float | None
) -> ProgramRun:
    return run_program(
        argv,
        run_dir,
        job_dir,
        env={"OMP_NUM_THREADS": str(threads)},
        timeout=timeout,
        marker_dir=job_dir,
    )


@dataclass(frozen=True)
class _Particles:
    """What the wrappers need from a particles STAR file, read once."""

    pixel_size: float  # Å, first optics group
    box: int  # px, first optics group
    has_ctf: bool


def _read_particles(particles_star: Path, run_dir: Path) -> _Particles:
    """Check a RELION 3.1 particles file (optics block, image stacks reachable from ``run_dir``)."""
    document = star.read(_require_file(particles_star, "particles STAR file"))
    block = _block_with(document, "rlnImageName", "particles", particles_star)
    optics = document.blocks.get("optics")
    if optics is None or not {"rlnImagePixelSize", "rlnImageSize"} <= set(optics.columns):
        raise ProcessingError(
            f"{particles_star}: no data_optics block with _rlnImagePixelSize and _rlnImageSize; RELION 3.1 "
            "particle files need one (write the particles with the RELION31 convention)"
        )
    _check_references(particles_star, block, "rlnImageName", run_dir, "image stack")
    return _Particles(
        float(optics.columns["rlnImagePixelSize"][0]),
        int(optics.columns["rlnImageSize"][0]),
        "rlnDefocusU" in block.columns,
    )


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise ProcessingError(f"threads must be at least 1, got {threads}")


def _post_name(name: str) -> str:
    """The part of a pipeline file name after its ``jobNNN/`` directory (RELION's decomposePipelineFileName:
    the first ``/job`` followed by three digits); the whole name when there is none."""
    match = re.search(r"/job\d{3}", name)
    if match is None:
        return name
    rest = name[match.end() :]
    slash = rest.find("/")
    return rest[slash + 1 :] if slash >= 0 else ""


def _without_extension(name: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return stem if dot and "/" not in extension else name


def coordinate_file_name(micrograph_name: str, suffix: str) -> str:
    """RELION's coordinate file of a micrograph, relative to the coordinate directory:
    ``MotionCorr/job002/Movies/mic_001.mrc`` + ``_autopick.star`` -> ``Movies/mic_001_autopick.star``."""
    return _without_extension(_post_name(micrograph_name)) + suffix


# --- STAR inputs -----------------------------------------------------------------------------------------


def _optics_block(columns: dict[str, npt.NDArray[np.generic]]) -> RawBlock:
    base: dict[str, npt.NDArray[np.generic]] = {
        "rlnOpticsGroupName": np.array(["opticsGroup1"]),
        "rlnOpticsGroup": np.array([1]),
    }
    return RawBlock("optics", {**base, **columns})


def write_movies_star(
    path: Path,
    movies: Sequence[str],
    *,
    pixel_size: float,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
) -> None:
    """A RELION 3.1 movies STAR file (``data_optics`` + ``data_movies``), one optics group; ``movies`` are
    paths relative to the RELION project directory. Pixel size in Å (unbinned), voltage kV, Cs mm."""
    if not movies:
        raise ProcessingError("write_movies_star needs at least one movie")
    _positive(pixel_size, "pixel_size", " Å")
    optics = _optics_block(
        {
            "rlnMicrographOriginalPixelSize": np.array([float(pixel_size)]),
            "rlnVoltage": np.array([float(voltage)]),
            "rlnSphericalAberration": np.array([float(spherical_aberration)]),
            "rlnAmplitudeContrast": np.array([float(amplitude_contrast)]),
        }
    )
    rows = RawBlock(
        "movies",
        {
            "rlnMicrographMovieName": np.array([str(movie) for movie in movies]),
            "rlnOpticsGroup": np.ones(len(movies), dtype=np.int64),
        },
    )
    star.write(
        RawDocument(star.FORMAT_IRI, {"optics": optics, "movies": rows}, version=STAR_VERSION), Path(path)
    )


def write_micrographs_star(
    path: Path,
    micrographs: Sequence[str],
    *,
    pixel_size: float,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    original_pixel_size: float | None = None,
    columns: Mapping[str, npt.ArrayLike] | None = None,
) -> None:
    """A RELION 3.1 micrographs STAR file through the canonical table and the RELION31Micrographs
    convention. ``columns`` adds canonical per-micrograph columns (``defocus_u``, ``defocus_v``,
    ``defocus_angle`` in Å and degrees, ``phase_shift``...)."""
    if not micrographs:
        raise ProcessingError("write_micrographs_star needs at least one micrograph")
    _positive(pixel_size, "pixel_size", " Å")
    n = len(micrographs)
    main: dict[str, npt.NDArray[np.generic]] = {
        "micrograph_name": np.array([str(name) for name in micrographs]),
        "optics_group": np.ones(n, dtype=np.int64),
    }
    for name, values in (columns or {}).items():
        array = np.asarray(values)
        if array.shape != (n,):
            raise ProcessingError(
                f"column {name!r} has shape {array.shape}; one value per micrograph ({n}) needed"
            )
        main[name] = array
    optics = Table(
        kind="optics",
        columns={
            "optics_group": np.array([1]),
            "optics_group_name": np.array(["opticsGroup1"]),
            "pixel_size": np.array([float(pixel_size)]),
            "micrograph_pixel_size": np.array([float(original_pixel_size or pixel_size)]),
            "voltage": np.array([float(voltage)]),
            "spherical_aberration": np.array([float(spherical_aberration)]),
            "amplitude_contrast": np.array([float(amplitude_contrast)]),
        },
    )
    try:
        table = Table(kind="micrographs", columns=main, related={"optics": optics})
        document, loss = from_canonical(table, resolve_convention("RELION31Micrographs"))
    except (ValueError, ConversionError) as error:
        raise ProcessingError(f"cannot write micrographs STAR file {path}: {error}") from None
    if not loss.lossless:
        raise ProcessingError(f"micrographs STAR file {path} cannot hold {loss}")
    write_document(document, Path(path))


def write_coordinates_star(
    path: Path, xy: npt.ArrayLike, figure_of_merit: npt.ArrayLike | None = None
) -> None:
    """A RELION coordinate file: ``data_`` with ``_rlnCoordinateX/Y`` (0-based pixel centres, x right,
    y down)."""
    points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    columns: dict[str, npt.NDArray[np.generic]] = {
        "rlnCoordinateX": points[:, 0].copy(),
        "rlnCoordinateY": points[:, 1].copy(),
    }
    if figure_of_merit is not None:
        columns["rlnAutopickFigureOfMerit"] = np.asarray(figure_of_merit, dtype=np.float64).reshape(-1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    star.write(RawDocument(star.FORMAT_IRI, {"": RawBlock("", columns)}, version=STAR_VERSION), Path(path))


def read_coordinates_star(path: Path) -> tuple[FloatArray, FloatArray | None]:
    """(xy (n, 2) pixels, figure of merit (n,) or None) of a RELION coordinate file."""
    document = star.read(_require_file(path, "coordinate file"))
    block = _block_with(document, "rlnCoordinateX", "", Path(path))
    xy = np.column_stack(
        [np.asarray(block.columns[label], dtype=np.float64) for label in ("rlnCoordinateX", "rlnCoordinateY")]
    )
    merit = block.columns.get("rlnAutopickFigureOfMerit")
    return xy.reshape(-1, 2), None if merit is None else np.asarray(merit, dtype=np.float64)


# --- motion correction -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MovieMotion:
    """Global motion of one movie as RELION reports it.

    ``shifts`` (n_frames, 2) are RELION's ``rlnMicrographShiftX/Y`` in pixels of the unbinned movie,
    relative to the first frame: the correction applied to each frame, i.e. minus the specimen motion
    (a specimen drifting by +d px appears as -d; measured here). MotionCor2 reports the same sense
    (RELION stores MotionCor2's shifts unchanged)."""

    movie: str
    micrograph: Path  # the corrected (dose-weighted when asked) micrograph
    metadata: Path  # the per-movie STAR file (data_general, data_global_shift)
    frames: IntArray  # 1-based frame numbers
    shifts: FloatArray


@dataclass(frozen=True)
class MotionCorrResult:
    job_dir: Path
    micrographs_star: Path  # corrected_micrographs.star (paths relative to run_dir)
    micrographs: Table  # canonical "micrographs" table of it
    movies: list[MovieMotion]
    run: ProgramRun
    version: ProgramVersion


def read_global_shifts(path: Path) -> tuple[IntArray, FloatArray]:
    """(frame numbers, shifts (n, 2) px) of the ``data_global_shift`` block of a RELION movie STAR file."""
    document = _read_star(path, "relion_run_motioncorr")
    block = document.blocks.get("global_shift")
    if block is None:
        raise ProcessingError(f"{path}: no data_global_shift block")
    frames = np.asarray(block.columns["rlnMicrographFrameNumber"], dtype=np.int64)
    shifts = np.column_stack(
        [
            np.asarray(block.columns[label], dtype=np.float64)
            for label in ("rlnMicrographShiftX", "rlnMicrographShiftY")
        ]
    )
    return frames, shifts.reshape(-1, 2)


def motioncorr(
    movies_star: Path,
    run_dir: Path,
    *,
    dose_per_frame: float,
    bfactor: float = 150.0,
    patch_x: int = 1,
    patch_y: int = 1,
    bin_factor: float = 1.0,
    dose_weighting: bool = False,
    threads: int = 1,
    iterations: int = 5,
    preexposure: float = 0.0,
    first_frame: int = 1,
    last_frame: int = -1,
    gain_reference: Path | None = None,
    timeout: float | None = None,
) -> MotionCorrResult:
    """``relion_run_motioncorr --use_own``: RELION's CPU implementation of MotionCor2's algorithm.

    ``dose_per_frame`` e⁻/Å² per frame; ``bfactor`` in pixels² of the movie as RELION takes it (B in Å²
    divided by the squared pixel size); ``patch_x × patch_y`` patches for local motion (1 × 1: global
    only); ``bin_factor`` Fourier binning of the output; ``iterations`` of the alignment (``--max_iter``).
    Returns the corrected micrographs and, per movie, the global shifts (see :class:`MovieMotion`)."""
    run_dir = Path(run_dir)
    movies_star = _require_file(movies_star, "movies STAR file")
    _positive(dose_per_frame, "dose_per_frame", " e/Å²")
    _positive(bin_factor, "bin_factor")
    _check_threads(threads)
    if iterations < 1:
        raise ProcessingError(f"iterations must be at least 1, got {iterations}")
    if patch_x < 1 or patch_y < 1:
        raise ProcessingError(f"patch_x and patch_y must be at least 1, got {patch_x} x {patch_y}")
    document = star.read(movies_star)
    block = _block_with(document, "rlnMicrographMovieName", "movies", movies_star)
    if "movies" not in document.blocks:
        raise ProcessingError(
            f"{movies_star}: RELION 3.1 reads movies from a data_movies block (see write_movies_star)"
        )
    _check_references(movies_star, block, "rlnMicrographMovieName", run_dir, "movie")
    program = find_program("relion_run_motioncorr")
    job = new_job_dir(run_dir, "MotionCorr")
    argv = [
        str(program), "--i", _arg(movies_star, run_dir), "--o", _job_arg(job, run_dir), "--use_own",
        "--j", str(threads), "--max_iter", str(iterations), "--bin_factor", _num(bin_factor),
        "--bfactor", _num(bfactor),
        "--dose_per_frame", _num(dose_per_frame), "--preexposure", _num(preexposure),
        "--patch_x", str(patch_x), "--patch_y", str(patch_y),
        "--first_frame_sum", str(first_frame), "--last_frame_sum", str(last_frame),
    ]  # fmt: skip
    if dose_weighting:
        argv.append("--dose_weighting")
    if gain_reference is not None:
        argv += ["--gainref", _arg(_require_file(gain_reference, "gain reference"), run_dir)]
    argv += ["--pipeline_control", _job_arg(job, run_dir)]
    run = _run(argv, run_dir, job, threads=threads, timeout=timeout)

    micrographs_star = job / "corrected_micrographs.star"
    _read_star(micrographs_star, "relion_run_motioncorr")
    table, _ = read_table(micrographs_star, "RELION31Micrographs")
    names = [str(name) for name in table.columns["micrograph_name"].tolist()]
    metadata = [str(name) for name in table.extras["rlnMicrographMetadata"].tolist()]
    movies: list[MovieMotion] = []
    for name, meta in zip(names, metadata, strict=True):
        meta_path = run_dir / meta
        meta_doc = _read_star(meta_path, "relion_run_motioncorr")
        movie = str(meta_doc.blocks["general"].columns["rlnMicrographMovieName"][0])
        frames, shifts = read_global_shifts(meta_path)
        movies.append(MovieMotion(movie, run_dir / name, meta_path, frames, shifts))
    return MotionCorrResult(job, micrographs_star, table, movies, run, _version(program))


# --- picking and extraction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutopickResult:
    job_dir: Path
    # Per micrograph (its name in the input STAR): (n, 2) x, y pixels, 0-based, and the LoG figures of merit.
    coordinates: dict[str, FloatArray]
    figure_of_merit: dict[str, FloatArray]
    coordinate_files: dict[str, Path]
    coord_dir: Path
    coord_suffix: str
    run: ProgramRun
    version: ProgramVersion


def _micrograph_names(micrographs_star: Path, run_dir: Path) -> list[str]:
    document = star.read(_require_file(micrographs_star, "micrographs STAR file"))
    block = _block_with(document, "rlnMicrographName", "micrographs", micrographs_star)
    optics = document.blocks.get("optics")
    if optics is None or "rlnMicrographPixelSize" not in optics.columns:
        raise ProcessingError(
            f"{micrographs_star}: no data_optics block with _rlnMicrographPixelSize; RELION 3.1 reads the "
            "micrograph pixel size from it (see write_micrographs_star)"
        )
    _check_references(micrographs_star, block, "rlnMicrographName", run_dir, "micrograph")
    return [str(name) for name in block.columns["rlnMicrographName"].tolist()]


def autopick_log(
    micrographs_star: Path,
    run_dir: Path,
    *,
    diameter_min: float,
    diameter_max: float,
    adjust_threshold: float = 0.0,
    upper_threshold: float | None = None,
    invert: bool = False,
    shrink: float = 0.0,
    lowpass: float = 20.0,
    timeout: float | None = None,
) -> AutopickResult:
    """``relion_autopick --LoG``: Laplacian-of-Gaussian blob picking of dark particles (``invert`` for
    white ones, RELION 3.1's ``--Log_invert``), diameters in Å. ``adjust_threshold`` > 0 picks fewer,
    < 0 more; ``shrink`` 0 and ``lowpass`` 20 Å are RELION's GUI defaults for LoG picking."""
    run_dir = Path(run_dir)
    _positive(diameter_min, "diameter_min", " Å")
    if diameter_max < diameter_min:
        raise ProcessingError(
            f"diameter_max ({diameter_max:g} Å) is smaller than diameter_min ({diameter_min:g} Å)"
        )
    names = _micrograph_names(micrographs_star, run_dir)
    program = find_program("relion_autopick")
    job = new_job_dir(run_dir, "AutoPick")
    argv = [
        str(program), "--i", _arg(micrographs_star, run_dir), "--odir", _job_arg(job, run_dir),
        "--pickname", "autopick", "--LoG", "--LoG_diam_min", _num(diameter_min),
        "--LoG_diam_max", _num(diameter_max), "--shrink", _num(shrink), "--lowpass", _num(lowpass),
        "--LoG_adjust_threshold", _num(adjust_threshold),
    ]  # fmt: skip
    if upper_threshold is not None:
        argv += ["--LoG_upper_threshold", _num(upper_threshold)]
    if invert:
        argv.append("--Log_invert")  # sic: RELION 3.1.3 spells this flag with a lower-case "og"
    argv += ["--pipeline_control", _job_arg(job, run_dir)]
    run = _run(argv, run_dir, job, threads=1, timeout=timeout)
    coordinates: dict[str, FloatArray] = {}
    merits: dict[str, FloatArray] = {}
    files: dict[str, Path] = {}
    for name in names:
        path = job / coordinate_file_name(name, "_autopick.star")
        files[name] = path
        if path.is_file() and path.stat().st_size > 0:
            xy, merit = read_coordinates_star(path)
        else:  # RELION writes no file for a micrograph without picks
            xy, merit = np.zeros((0, 2)), np.zeros(0)
        coordinates[name] = xy
        merits[name] = merit if merit is not None else np.zeros(len(xy))
    return AutopickResult(job, coordinates, merits, files, job, "_autopick.star", run, _version(program))


@dataclass(frozen=True)
class ExtractResult:
    job_dir: Path
    particles_star: Path
    stacks: list[Path]
    particles: Table  # canonical "particles" table (RELION31)
    run: ProgramRun
    version: ProgramVersion


def extract(
    micrographs_star: Path,
    coordinates: Mapping[str, npt.ArrayLike],
    run_dir: Path,
    *,
    box: int,
    bg_radius: float | None = None,
    invert_contrast: bool = False,
    normalise: bool = True,
    rescale: int | None = None,
    timeout: float | None = None,
) -> ExtractResult:
    """``relion_preprocess --extract``: boxes of ``box`` pixels around ``coordinates`` (per micrograph name
    as in the STAR file: (n, 2) x, y pixels, 0-based centres), optionally rescaled to ``rescale`` pixels,
    contrast-inverted and normalised (background mean 0, s.d. 1 outside ``bg_radius`` pixels of the final
    box; default 75 % of half the box, as RELION's GUI). RELION truncates fractional coordinates: the box
    centre is pixel ``int(x), int(y)``; the sub-pixel rest is not written as an origin shift."""
    run_dir = Path(run_dir)
    if box < 2 or box % 2:
        raise ProcessingError(f"box must be an even number of pixels ≥ 2, got {box}")
    final = rescale or box
    if rescale is not None and (rescale < 2 or rescale % 2):
        raise ProcessingError(f"rescale must be an even number of pixels ≥ 2, got {rescale}")
    radius = bg_radius if bg_radius is not None else round(0.375 * final)
    if normalise and not 0 < radius < final / 2:
        raise ProcessingError(
            f"bg_radius {radius:g} px must lie inside the {final}-pixel box (0 < r < {final // 2})"
        )
    names = _micrograph_names(micrographs_star, run_dir)
    unknown = sorted(set(coordinates) - set(names))
    if unknown:
        raise ProcessingError(
            f"coordinates are given for {unknown[0]!r}, which {micrographs_star} does not list "
            f"(it lists {', '.join(names[:5])}{'...' if len(names) > 5 else ''})"
        )
    program = find_program("relion_preprocess")
    job = new_job_dir(run_dir, "Extract")
    coord_dir = job / "coordinates"
    written = 0
    for name in names:
        points = np.asarray(coordinates.get(name, np.zeros((0, 2))), dtype=np.float64)
        if points.size == 0:
            continue
        if points.ndim != 2 or points.shape[1] != 2:
            raise ProcessingError(
                f"coordinates of {name!r} have shape {points.shape}; (n, 2) x, y pixels needed"
            )
        write_coordinates_star(coord_dir / coordinate_file_name(name, "_coords.star"), points)
        written += len(points)
    if written == 0:
        raise ProcessingError("extract: no coordinates given for any micrograph")
    particles_star = job / "particles.star"
    argv = [
        str(program), "--i", _arg(micrographs_star, run_dir), "--coord_dir", _job_arg(coord_dir, run_dir),
        "--coord_suffix", "_coords.star", "--part_star", _arg(particles_star, run_dir),
        "--part_dir", _job_arg(job, run_dir), "--extract", "--extract_size", str(box),
    ]  # fmt: skip
    if rescale is not None:
        argv += ["--scale", str(rescale)]
    if normalise:
        argv += ["--norm", "--bg_radius", _num(radius)]
    if invert_contrast:
        argv.append("--invert_contrast")
    argv += ["--pipeline_control", _job_arg(job, run_dir)]
    run = _run(argv, run_dir, job, threads=1, timeout=timeout)
    _read_star(particles_star, "relion_preprocess")
    table, _ = read_table(particles_star, "RELION31")
    stacks = [run_dir / name for name in dict.fromkeys(str(n) for n in table.columns["image_name"].tolist())]
    return ExtractResult(job, particles_star, stacks, table, run, _version(program))


# --- classification and refinement ------------------------------------------------------------------------


def _last_iteration(job_dir: Path) -> int:
    numbers = [int(m.group(1)) for p in job_dir.iterdir() if (m := _ITERATION_FILE.search(p.name))]
    return max(numbers, default=0)


@dataclass(frozen=True)
class Class2DResult:
    job_dir: Path
    classes_stack: Path  # run_itNNN_classes.mrcs of the last iteration, one average per class
    model_star: Path
    data_star: Path
    class_distribution: FloatArray  # fraction of particles per class
    class_resolution: FloatArray  # rlnEstimatedResolution per class, Å
    resolution: float  # rlnCurrentResolution, Å
    particles: Table  # canonical table of run_itNNN_data.star (class_number, angle_psi, origin_x/y...)
    run: ProgramRun
    version: ProgramVersion


def _angstrom_to_pixels(value: float, pixel_size: float, name: str) -> str:
    _positive(value, name, " Å")
    return _num(value / pixel_size)


def refine_2d(
    particles_star: Path,
    run_dir: Path,
    *,
    classes: int,
    iterations: int,
    particle_diameter: float,
    psi_step: float = 10.0,
    offset_range: float = 15.0,
    offset_step: float = 6.0,
    threads: int = 1,
    ctf: bool | None = None,
    tau2_fudge: float = 2.0,
    seed: int = 1,
    timeout: float | None = None,
) -> Class2DResult:
    """``relion_refine`` 2D classification (``--K classes --iter iterations``) of a RELION 3.1 particles
    STAR file. ``particle_diameter``, ``offset_range`` and ``offset_step`` in Å (RELION takes the offsets
    in pixels: converted with the first optics group's pixel size), ``psi_step`` in degrees. ``ctf``
    defaults to True when the particles carry defocus values. ``seed`` makes runs reproducible."""
    run_dir = Path(run_dir)
    if classes < 1 or iterations < 1:
        raise ProcessingError(f"classes and iterations must be at least 1, got {classes} and {iterations}")
    _positive(particle_diameter, "particle_diameter", " Å")
    _positive(psi_step, "psi_step", "°")
    _check_threads(threads)
    particles = _read_particles(particles_star, run_dir)
    pixel_size = particles.pixel_size
    use_ctf = particles.has_ctf if ctf is None else ctf
    program = find_program("relion_refine")
    job = new_job_dir(run_dir, "Class2D")
    argv = [
        str(program), "--i", _arg(particles_star, run_dir), "--o", _arg(job, run_dir) + "/run",
        "--K", str(classes), "--iter", str(iterations), "--tau2_fudge", _num(tau2_fudge),
        "--particle_diameter", _num(particle_diameter), "--zero_mask", "--flatten_solvent",
        "--psi_step", _num(psi_step),
        "--offset_range", _angstrom_to_pixels(offset_range, pixel_size, "offset_range"),
        "--offset_step", _angstrom_to_pixels(offset_step, pixel_size, "offset_step"),
        "--norm", "--scale", "--j", str(threads), "--dont_combine_weights_via_disc", "--pool", "30",
        "--pad", "2", "--random_seed", str(seed),
    ]  # fmt: skip
    if use_ctf:
        argv.append("--ctf")
    argv += ["--pipeline_control", _job_arg(job, run_dir)]
    run = _run(argv, run_dir, job, threads=threads, timeout=timeout)
    last = _last_iteration(job)
    root = job / f"run_it{last:03d}"
    model_star, data_star = Path(f"{root}_model.star"), Path(f"{root}_data.star")
    model = _read_star(model_star, "relion_refine")
    classes_block = model.blocks["model_classes"]
    _read_star(data_star, "relion_refine")
    table, _ = read_table(data_star, "RELION31")
    return Class2DResult(
        job,
        Path(f"{root}_classes.mrcs"),
        model_star,
        data_star,
        np.asarray(classes_block.columns["rlnClassDistribution"], dtype=np.float64),
        np.asarray(classes_block.columns["rlnEstimatedResolution"], dtype=np.float64),
        _first_float(model, "model_general", "rlnCurrentResolution", model_star),
        table,
        run,
        _version(program),
    )


@dataclass(frozen=True)
class RefineResult:
    job_dir: Path
    map: Path  # run_class001.mrc: final map from all particles
    half_maps: tuple[Path, Path]  # run_half{1,2}_class001_unfil.mrc
    data_star: Path
    model_star: Path
    resolution: float  # rlnCurrentResolution of the final model, Å (unmasked gold-standard FSC = 0.143)
    fsc: FloatArray  # rlnGoldStandardFsc per shell
    fsc_resolution: FloatArray  # rlnResolution per shell, 1/Å
    iterations: int
    particles: Table  # canonical table of run_data.star (poses, origins, half_set)
    run: ProgramRun
    version: ProgramVersion


def auto_refine(
    particles_star: Path,
    reference_map: Path,
    run_dir: Path,
    *,
    particle_diameter: float,
    symmetry: str = "C1",
    ini_high: float = 40.0,
    healpix_order: int = 2,
    offset_range: float = 15.0,
    offset_step: float = 3.0,
    mpi_ranks: int = 3,
    threads: int = 1,
    ctf: bool | None = None,
    local_healpix_order: int = 4,
    low_resol_join_halves: float = 40.0,
    absolute_greyscale: bool = False,
    fast_convergence: bool = False,
    max_iterations: int | None = None,
    seed: int = 1,
    timeout: float | None = None,
) -> RefineResult:
    """3D auto-refine (``relion_refine_mpi --auto_refine --split_random_halves``) under ``mpirun``.

    Needs at least 3 MPI ranks (a leader and one follower per half set). ``ini_high`` and
    ``low_resol_join_halves`` in Å; ``healpix_order`` 2 is 15° (each order halves it); local searches
    start at ``local_healpix_order``; offsets in Å (converted to pixels for RELION). The reference must
    have the particles' box size; unless ``absolute_greyscale``, the first iteration uses
    cross-correlation (``--firstiter_cc``). ``fast_convergence`` adds ``--auto_ignore_angles
    --auto_resol_angles``. ``max_iterations`` (``--auto_iter_max``) stops a run that has not converged: that
    is an error, as RELION then writes no final map."""
    run_dir = Path(run_dir)
    if mpi_ranks < 3:
        raise ProcessingError(
            f"auto-refine with --split_random_halves needs at least 3 MPI ranks (a leader and one follower "
            f"per half set), got mpi_ranks={mpi_ranks}"
        )
    if not _SYMMETRY.match(symmetry):
        raise ProcessingError(f"symmetry {symmetry!r} is not a RELION point group (C1, C7, D2, T, O, I1..I5)")
    _positive(particle_diameter, "particle_diameter", " Å")
    _positive(ini_high, "ini_high", " Å")
    _check_threads(threads)
    if not 0 <= healpix_order <= 8:
        raise ProcessingError(f"healpix_order must be 0..8, got {healpix_order}")
    if max_iterations is not None and max_iterations < 1:
        raise ProcessingError(f"max_iterations must be at least 1, got {max_iterations}")
    particles = _read_particles(particles_star, run_dir)
    pixel_size, box = particles.pixel_size, particles.box
    reference_map = _require_file(reference_map, "reference map")
    with mrcfile.open(reference_map, header_only=True, permissive=True) as mrc:
        shape = (int(mrc.header.nz), int(mrc.header.ny), int(mrc.header.nx))
    if shape != (box, box, box):
        raise ProcessingError(
            f"reference map {reference_map} is {shape[2]} x {shape[1]} x {shape[0]} voxels; the particles "
            f"are {box} px boxes: resample the reference to {box}³"
        )
    use_ctf = particles.has_ctf if ctf is None else ctf
    program = find_program("relion_refine_mpi")
    job = new_job_dir(run_dir, "Refine3D")
    refine = [
        str(program), "--i", _arg(particles_star, run_dir), "--o", _arg(job, run_dir) + "/run",
        "--auto_refine", "--split_random_halves", "--ref", _arg(reference_map, run_dir),
        "--ini_high", _num(ini_high), "--sym", symmetry.upper(),
        "--particle_diameter", _num(particle_diameter),
        "--healpix_order", str(healpix_order), "--auto_local_healpix_order", str(local_healpix_order),
        "--low_resol_join_halves", _num(low_resol_join_halves),
        "--offset_range", _angstrom_to_pixels(offset_range, pixel_size, "offset_range"),
        "--offset_step", _angstrom_to_pixels(offset_step, pixel_size, "offset_step"),
        "--flatten_solvent", "--zero_mask", "--norm", "--scale", "--pad", "2", "--j", str(threads),
        "--dont_combine_weights_via_disc", "--pool", "30", "--random_seed", str(seed),
    ]  # fmt: skip
    if not absolute_greyscale:
        refine.append("--firstiter_cc")
    if use_ctf:
        refine.append("--ctf")
    if fast_convergence:
        refine += ["--auto_ignore_angles", "--auto_resol_angles"]
    if max_iterations is not None:
        refine += ["--auto_iter_max", str(max_iterations)]
    refine += ["--pipeline_control", _job_arg(job, run_dir)]
    run = run_program(
        mpi_command(mpi_ranks, refine),
        run_dir,
        job,
        env={"OMP_NUM_THREADS": str(threads)},
        timeout=timeout,
        name="relion_refine_mpi",
        marker_dir=job,
    )
    final = job / "run_class001.mrc"
    iterations = _last_iteration(job)
    if not final.is_file():
        raise ProcessingError(
            f"auto-refine in {job} stopped after iteration {iterations} without converging (no final map "
            f"run_class001.mrc); raise max_iterations (now {max_iterations}) or leave it unset"
        )
    model_star, data_star = job / "run_model.star", job / "run_data.star"
    model = _read_star(model_star, "relion_refine_mpi")
    curve = model.blocks["model_class_1"]
    _read_star(data_star, "relion_refine_mpi")
    table, _ = read_table(data_star, "RELION31")
    return RefineResult(
        job,
        final,
        (job / "run_half1_class001_unfil.mrc", job / "run_half2_class001_unfil.mrc"),
        data_star,
        model_star,
        _first_float(model, "model_general", "rlnCurrentResolution", model_star),
        np.asarray(curve.columns["rlnGoldStandardFsc"], dtype=np.float64),
        np.asarray(curve.columns["rlnResolution"], dtype=np.float64),
        iterations,
        table,
        run,
        _version(program),
    )


# --- reconstruction, masking, post-processing --------------------------------------------------------------


@dataclass(frozen=True)
class ReconstructResult:
    map: Path
    run: ProgramRun
    version: ProgramVersion


def reconstruct(
    particles_star: Path,
    out_map: Path,
    *,
    ctf: bool = False,
    angpix: float | None = None,
    subset: int | None = None,
    symmetry: str = "C1",
    threads: int = 1,
    maxres: float | None = None,
    pad: int = 2,
    project_dir: Path | None = None,
    timeout: float | None = None,
) -> ReconstructResult:
    """``relion_reconstruct``: direct Fourier inversion of posed particles into ``out_map``.

    ``subset`` 1 or 2 reconstructs one random half (``_rlnRandomSubset``), None all particles; ``ctf``
    corrects the CTF (Wiener-like, as RELION); ``angpix``/``maxres`` in Å. ``project_dir`` is where the
    STAR file's image paths start (default: the STAR file's directory). relion_reconstruct 3.1 has no
    thread option: ``threads`` > 1 runs ``relion_reconstruct_mpi`` with that many MPI ranks. Logs go
    beside ``out_map`` (``<stem>_reconstruct.out/.err``)."""
    particles_star = _require_file(particles_star, "particles STAR file")
    cwd = Path(project_dir) if project_dir is not None else particles_star.parent
    if subset not in (None, 1, 2):
        raise ProcessingError(f"subset must be 1, 2 or None (all particles), got {subset}")
    if not _SYMMETRY.match(symmetry):
        raise ProcessingError(f"symmetry {symmetry!r} is not a RELION point group (C1, C7, D2, T, O, I1..I5)")
    _check_threads(threads)
    document = star.read(particles_star)
    block = _block_with(document, "rlnImageName", "particles", particles_star)
    _check_references(particles_star, block, "rlnImageName", cwd, "image stack")
    if subset is not None and "rlnRandomSubset" not in block.columns:
        raise ProcessingError(
            f"{particles_star} has no _rlnRandomSubset column: cannot reconstruct half {subset}"
        )
    out_map = Path(out_map)
    out_map.parent.mkdir(parents=True, exist_ok=True)
    name = "relion_reconstruct" if threads == 1 else "relion_reconstruct_mpi"
    program = find_program(name)
    argv = [
        str(program),
        "--i",
        _arg(particles_star, cwd),
        "--o",
        _arg(out_map, cwd),
        "--sym",
        symmetry.upper(),
    ]
    argv += ["--pad", str(pad)]
    if ctf:
        argv.append("--ctf")
    if angpix is not None:
        _positive(angpix, "angpix", " Å")
        argv += ["--angpix", _num(angpix)]
    if subset is not None:
        argv += ["--subset", str(subset)]
    if maxres is not None:
        argv += ["--maxres", _num(maxres)]
    command = argv if threads == 1 else mpi_command(threads, argv)
    run = run_program(command, cwd, out_map.parent, name=f"{out_map.stem}_reconstruct", timeout=timeout)
    if not out_map.is_file():
        raise ProcessingError(f"{name} finished but did not write {out_map}; see {run.stdout_log}")
    return ReconstructResult(out_map, run, _version(program))


@dataclass(frozen=True)
class MaskResult:
    mask: Path
    run: ProgramRun
    version: ProgramVersion


def mask_create(
    map: Path,
    out_mask: Path,
    *,
    threshold: float,
    extend: int = 3,
    soft_edge: int = 6,
    angpix: float | None = None,
    lowpass: float | None = None,
    threads: int = 1,
    timeout: float | None = None,
) -> MaskResult:
    """``relion_mask_create``: binarise ``map`` at ``threshold`` (map units), extend by ``extend`` voxels,
    add a raised-cosine edge ``soft_edge`` voxels wide; ``lowpass`` (Å) filters the map first."""
    map_path = _require_file(map, "map")
    if extend < 0 or soft_edge < 0:
        raise ProcessingError(f"extend and soft_edge are voxels ≥ 0, got {extend} and {soft_edge}")
    _check_threads(threads)
    out_mask = Path(out_mask)
    out_mask.parent.mkdir(parents=True, exist_ok=True)
    cwd = out_mask.parent
    program = find_program("relion_mask_create")
    argv = [
        str(program), "--i", _arg(map_path, cwd), "--o", _arg(out_mask, cwd),
        "--ini_threshold", _num(threshold),
        "--extend_inimask", str(extend), "--width_soft_edge", str(soft_edge), "--j", str(threads),
    ]  # fmt: skip
    if angpix is not None:
        _positive(angpix, "angpix", " Å")
        argv += ["--angpix", _num(angpix)]
    if lowpass is not None:
        _positive(lowpass, "lowpass", " Å")
        argv += ["--lowpass", _num(lowpass)]
    run = run_program(
        argv,
        cwd,
        cwd,
        name=f"{out_mask.stem}_mask_create",
        env={"OMP_NUM_THREADS": str(threads)},
        timeout=timeout,
    )
    if not out_mask.is_file():
        raise ProcessingError(
            f"relion_mask_create finished but did not write {out_mask}; see {run.stdout_log}"
        )
    return MaskResult(out_mask, run, _version(program))


@dataclass(frozen=True)
class FSCCurves:
    """The ``data_fsc`` loop of postprocess.star: one value per Fourier shell."""

    shells: IntArray  # rlnSpectralIndex
    resolution: FloatArray  # rlnResolution, 1/Å
    angstrom: FloatArray  # rlnAngstromResolution, Å
    columns: dict[str, FloatArray] = field(default_factory=dict)  # every column by its RELION label

    @property
    def corrected(self) -> FloatArray:
        """The phase-randomisation-corrected masked FSC (what the final resolution is read from)."""
        return self.columns["rlnFourierShellCorrelationCorrected"]

    @property
    def unmasked(self) -> FloatArray:
        return self.columns["rlnFourierShellCorrelationUnmaskedMaps"]


@dataclass(frozen=True)
class PostprocessResult:
    job_dir: Path
    map: Path  # postprocess.mrc (sharpened, FSC-weighted)
    masked_map: Path  # postprocess_masked.mrc
    star: Path
    final_resolution: float  # _rlnFinalResolution, Å (FSC = 0.143)
    bfactor: float  # _rlnBfactorUsedForSharpening, Å²
    fsc: FSCCurves
    general: dict[str, str]  # every data_general value, as text
    run: ProgramRun
    version: ProgramVersion


def read_postprocess_star(path: Path) -> tuple[float, float, FSCCurves, dict[str, str]]:
    """(final resolution Å, B-factor Å², FSC curves, data_general as text) of a postprocess.star file."""
    document = _read_star(path, "relion_postprocess")
    general = document.blocks.get("general")
    curves = document.blocks.get("fsc")
    if general is None or curves is None:
        raise ProcessingError(f"{path}: a postprocess.star file has data_general and data_fsc blocks")
    values = {label: str(column[0]) for label, column in general.columns.items()}
    columns = {label: np.asarray(column, dtype=np.float64) for label, column in curves.columns.items()}
    fsc = FSCCurves(
        np.asarray(curves.columns["rlnSpectralIndex"], dtype=np.int64),
        columns["rlnResolution"],
        columns["rlnAngstromResolution"],
        columns,
    )
    return (
        float(values["rlnFinalResolution"]),
        float(values.get("rlnBfactorUsedForSharpening", "nan")),
        fsc,
        values,
    )


def postprocess(
    half1: Path,
    half2: Path,
    mask: Path | None,
    run_dir: Path,
    *,
    angpix: float,
    auto_bfactor: bool = True,
    autob_lowres: float = 10.0,
    autob_highres: float = 0.0,
    adhoc_bfactor: float | None = None,
    skip_fsc_weighting: bool = False,
    timeout: float | None = None,
) -> PostprocessResult:
    """``relion_postprocess``: masked gold-standard FSC of two half maps with phase-randomisation
    correction, FSC weighting and sharpening by a B-factor fitted from ``autob_lowres`` Å (Guinier plot)
    or ``adhoc_bfactor`` Å². ``mask`` None uses RELION's automatic mask (``--auto_mask``)."""
    run_dir = Path(run_dir)
    _positive(angpix, "angpix", " Å")
    half1 = _require_file(half1, "half map")
    half2 = _require_file(half2, "half map")
    if auto_bfactor and adhoc_bfactor is not None:
        raise ProcessingError("give either auto_bfactor=True or adhoc_bfactor, not both")
    program = find_program("relion_postprocess")
    job = new_job_dir(run_dir, "PostProcess")
    root = job / "postprocess"
    argv = [
        str(program), "--i", _arg(half1, run_dir), "--i2", _arg(half2, run_dir), "--o", _arg(root, run_dir),
        "--angpix", _num(angpix),
    ]  # fmt: skip
    if mask is not None:
        argv += ["--mask", _arg(_require_file(mask, "mask"), run_dir)]
    else:
        argv.append("--auto_mask")
    if auto_bfactor:
        argv += ["--auto_bfac", "--autob_lowres", _num(autob_lowres), "--autob_highres", _num(autob_highres)]
    elif adhoc_bfactor is not None:
        argv += ["--adhoc_bfac", _num(adhoc_bfactor)]
    if skip_fsc_weighting:
        argv.append("--skip_fsc_weighting")
    argv += ["--pipeline_control", _job_arg(job, run_dir)]
    run = _run(argv, run_dir, job, threads=1, timeout=timeout)
    star_path = job / "postprocess.star"
    resolution, bfactor, fsc, general = read_postprocess_star(star_path)
    return PostprocessResult(
        job,
        job / "postprocess.mrc",
        job / "postprocess_masked.mrc",
        star_path,
        resolution,
        bfactor,
        fsc,
        general,
        run,
        _version(program),
    )
