"""Pictures of recorded data for the viewer: map slices and projections, FSC curves, micrograph thumbnails,
particle angle distributions. PNG bytes rendered with matplotlib's Agg canvas (no display, thread safe).

Rendered pictures are cached under ``<project>/.scipion-kg/cache/`` keyed by the entity's SHA-256: the
cache is not project data, so a read-only viewer may write it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
from defusedxml import ElementTree
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import atomic_write_bytes
from .converters import star
from .converters.raw import RawDocument
from .errors import FormatError, ParseError, ScipionKGError
from .namespaces import SKG
from .vocabulary import vocabulary

__all__ = [
    "PICTURE_KINDS",
    "FSCCurve",
    "angle_distribution_png",
    "cached_picture",
    "central_slices",
    "fsc_plot_png",
    "fsc_resolution",
    "map_projection_png",
    "map_slices_png",
    "micrograph_thumbnail_png",
    "picture_kinds",
    "read_angles",
    "read_fsc_curve",
    "render_picture",
]

PICTURE_KINDS = ("slices", "projection", "fsc", "thumbnail", "angles")
_PEEK_BYTES = 64 * 1024
_THUMBNAIL_PIXELS = 512
_SHA256 = re.compile(r"[0-9a-f]{64}")
FloatArray = npt.NDArray[np.float64]


# -- which pictures an entity has ---------------------------------------------------------------------
def _peek(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(_PEEK_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _is_mrc(path: Path) -> bool:
    return path.suffix.lower() in (".mrc", ".map", ".mrcs", ".rec", ".st", ".ccp4")


def picture_kinds(classes: Iterable[str], path: Path | None) -> list[str]:
    """The pictures :func:`render_picture` can draw for an entity of ``classes`` stored at ``path``.

    Decided from the data class and the first 64 KiB of the file (never the whole file).
    """
    if path is None:
        return []
    vocab = vocabulary()
    classes = list(classes)

    def is_a(ancestor: str) -> bool:
        return any(vocab.is_subclass(c, SKG + ancestor) for c in classes)

    if (is_a("Map") or is_a("VolumeMask")) and _is_mrc(path):
        return ["slices", "projection"]
    if is_a("Micrograph") and _is_mrc(path):
        return ["thumbnail"]
    head = _peek(path) if path.suffix.lower() in (".star", ".xml") else ""
    kinds = []
    if is_a("FSCCurve") and ("_rlnFourierShellCorrelation" in head or "<fsc" in head):
        kinds.append("fsc")
    if is_a("MicrographSet") and "_rlnMicrographName" in head:
        kinds.append("thumbnail")
    if "_rlnAngleRot" in head and "_rlnAngleTilt" in head:
        kinds.append("angles")
    return kinds


def render_picture(kind: str, path: Path, resolve: Callable[[str], Path | None]) -> bytes:
    """Draw picture ``kind`` of the file at ``path``; ``resolve`` turns a path written inside that file
    (a micrograph a STAR file lists) into a readable file, or None when it may not be read."""
    if kind == "slices":
        return map_slices_png(path)
    if kind == "projection":
        return map_projection_png(path)
    if kind == "fsc":
        return fsc_plot_png(path)
    if kind == "angles":
        return angle_distribution_png(path)
    if kind == "thumbnail":
        if _is_mrc(path):
            return micrograph_thumbnail_png(path)
        return micrograph_thumbnail_png(_first_listed_micrograph(path, resolve))
    raise FormatError(f"unknown picture kind {kind!r}; choose one of {', '.join(PICTURE_KINDS)}")


def cached_picture(cache_dir: Path, sha256: str, kind: str, render: Callable[[], bytes]) -> bytes:
    """The PNG of ``kind`` for the content ``sha256``, rendered once and then read from ``cache_dir``.

    A cache that cannot be written (read-only file system) only costs a re-render.
    """
    if not _SHA256.fullmatch(sha256) or kind not in PICTURE_KINDS:
        raise FormatError(f"no picture cache entry for sha256 {sha256!r} and kind {kind!r}")
    cached = cache_dir / f"{sha256}-{kind}.png"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = render()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, data)
    except OSError:
        pass
    return data


# -- rendering helpers ---------------------------------------------------------------------------------
def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _stretch(image: npt.NDArray[np.floating]) -> FloatArray:
    """Contrast stretch between the 1st and 99th percentiles (robust to hot pixels)."""
    data = np.asarray(image, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros_like(data)
    low, high = np.percentile(finite, [1.0, 99.0])
    if high <= low:
        return np.zeros_like(data)
    stretched: FloatArray = np.clip((data - low) / (high - low), 0.0, 1.0)
    return stretched


def _open_mrc(path: Path) -> mrcfile.mrcinterpreter.MrcInterpreter:
    try:
        return mrcfile.mmap(path, mode="r", permissive=True)
    except (OSError, ValueError) as error:
        raise ParseError(f"{path}: not a readable MRC file: {error}") from error


def _volume(mrc: mrcfile.mrcinterpreter.MrcInterpreter, path: Path) -> npt.NDArray[np.floating]:
    """The map's data as (z, y, x), memory-mapped (a 2D image becomes one section)."""
    data = mrc.data
    if data is None:
        raise ParseError(f"{path}: the MRC file holds no data")
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise ParseError(f"{path}: expected a 3D map, found {data.ndim} dimensions")
    volume: npt.NDArray[np.floating] = data
    return volume


def central_slices(volume: npt.NDArray[np.floating]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The three central orthogonal sections of a (z, y, x) map: XY (z = nz//2), XZ (y = ny//2),
    YZ (x = nx//2)."""
    nz, ny, nx = volume.shape
    return (
        np.array(volume[nz // 2, :, :], dtype=np.float64),
        np.array(volume[:, ny // 2, :], dtype=np.float64),
        np.array(volume[:, :, nx // 2], dtype=np.float64),
    )


def map_slices_png(path: Path) -> bytes:
    """Central XY, XZ and YZ sections of the map at ``path``, side by side."""
    with _open_mrc(path) as mrc:
        sections = central_slices(_volume(mrc, path))
    figure = Figure(figsize=(9, 3.2))
    for axes_index, (title, section) in enumerate(
        zip(("XY (central Z)", "XZ (central Y)", "YZ (central X)"), sections, strict=True)
    ):
        axes = figure.add_subplot(1, 3, axes_index + 1)
        axes.imshow(_stretch(section), cmap="gray", origin="lower", interpolation="nearest")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    figure.tight_layout()
    return _png(figure)


def map_projection_png(path: Path) -> bytes:
    """The projection of the map along Z (sum of the sections)."""
    with _open_mrc(path) as mrc:
        volume = _volume(mrc, path)
        projection = np.zeros(volume.shape[1:], dtype=np.float64)
        for section in volume:  # section by section: a memory-mapped map is never loaded whole
            projection += section
    figure = Figure(figsize=(4, 4))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(_stretch(projection), cmap="gray", origin="lower", interpolation="nearest")
    axes.set_title("projection along Z", fontsize=9)
    axes.set_axis_off()
    figure.tight_layout()
    return _png(figure)


def micrograph_thumbnail_png(path: Path) -> bytes:
    """A thumbnail (at most 512 pixels a side, block-averaged) of a micrograph or the first image of a
    stack."""
    with _open_mrc(path) as mrc:
        data = mrc.data
        if data is None or data.ndim not in (2, 3):
            raise ParseError(f"{path}: not a 2D image or image stack")
        image = np.array(data if data.ndim == 2 else data[0], dtype=np.float64)
    factor = max(1, int(np.ceil(max(image.shape) / _THUMBNAIL_PIXELS)))
    if factor > 1:
        ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        image = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
    figure = Figure(figsize=(5, 5 * image.shape[0] / max(image.shape[1], 1)))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(_stretch(image), cmap="gray", origin="upper", interpolation="nearest")
    axes.set_axis_off()
    return _png(figure)


def _first_listed_micrograph(path: Path, resolve: Callable[[str], Path | None]) -> Path:
    document = _read_star(path)
    for block in document.blocks.values():
        names = block.columns.get("rlnMicrographName")
        if block.is_loop and names is not None and len(names) > 0:
            listed = str(names[0]).split("@")[-1]
            found = resolve(listed)
            if found is None:
                raise ScipionKGError(
                    f"{path}: the first micrograph it lists, {listed}, is not in the project"
                )
            return found
    raise ParseError(f"{path}: no rlnMicrographName column: not a micrograph list")


# -- FSC curves ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FSCCurve:
    """FSC curves against spatial frequency (1/Å), one array per curve name."""

    frequency: FloatArray
    curves: dict[str, FloatArray]
    title: str = "FSC"

    @property
    def main(self) -> FloatArray:
        """The curve that defines the resolution: RELION's corrected FSC when present, else the first."""
        for name in ("FourierShellCorrelationCorrected", "FourierShellCorrelation"):
            if name in self.curves:
                return self.curves[name]
        return next(iter(self.curves.values()))


def _read_star(path: Path) -> RawDocument:
    try:
        return star.read(path)
    except ScipionKGError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise ParseError(f"{path}: cannot read the STAR file: {error}") from error


def read_fsc_curve(path: Path) -> FSCCurve:
    """The FSC curves of a RELION STAR file (``data_fsc`` block: rlnResolution or rlnAngstromResolution
    and every rlnFourierShellCorrelation* column) or of an EMDB FSC XML file (``<fsc><coordinate><x>``
    spatial frequency in 1/Å, ``<y>`` correlation)."""
    if _peek(path).lstrip().startswith("<"):
        return _read_fsc_xml(path)
    document = _read_star(path)
    block = document.blocks.get("fsc")
    if block is None:
        block = next(
            (b for b in document.blocks.values() if any("FourierShellCorrelation" in c for c in b.columns)),
            None,
        )
    if block is None:
        raise ParseError(f"{path}: no data_fsc block (or block with rlnFourierShellCorrelation columns)")
    if "rlnResolution" in block.columns:
        frequency = np.asarray(block.columns["rlnResolution"], dtype=np.float64)
    elif "rlnAngstromResolution" in block.columns:
        with np.errstate(divide="ignore"):
            frequency = 1.0 / np.asarray(block.columns["rlnAngstromResolution"], dtype=np.float64)
    else:
        raise ParseError(f"{path}: block {block.name!r} has neither rlnResolution nor rlnAngstromResolution")
    curves = {
        name.removeprefix("rln"): np.asarray(values, dtype=np.float64)
        for name, values in block.columns.items()
        if "FourierShellCorrelation" in name
    }
    if not curves:
        raise ParseError(f"{path}: block {block.name!r} has no rlnFourierShellCorrelation column")
    return FSCCurve(frequency, curves)


def _read_fsc_xml(path: Path) -> FSCCurve:
    try:
        root = ElementTree.parse(str(path)).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise ParseError(f"{path}: not a readable FSC XML file: {error}") from error
    if root is None or root.tag != "fsc":
        found = f"<{root.tag}>" if root is not None else "nothing"
        raise ParseError(f"{path}: the root element is {found}; an EMDB FSC file has <fsc>")
    xs: list[float] = []
    ys: list[float] = []
    for index, coordinate in enumerate(root.iter("coordinate")):
        x, y = coordinate.findtext("x"), coordinate.findtext("y")
        try:
            xs.append(float(x or ""))
            ys.append(float(y or ""))
        except ValueError as error:
            raise ParseError(f"{path}: coordinate {index + 1} needs numeric <x> and <y>") from error
    if not xs:
        raise ParseError(f"{path}: no <coordinate> elements")
    return FSCCurve(np.asarray(xs), {"FourierShellCorrelation": np.asarray(ys)}, root.get("title") or "FSC")


def fsc_resolution(curve: FSCCurve, threshold: float = 0.143) -> float | None:
    """The resolution (Å) of the last shell before the main curve first falls below ``threshold``, as
    RELION reports it (no interpolation); None when it never falls below."""
    values = curve.main
    below = np.nonzero(values[1:] < threshold)[0]
    if below.size == 0:
        return None
    shell = int(below[0])  # index in values of the last shell at or above the threshold
    frequency = curve.frequency[shell]
    return float(1.0 / frequency) if frequency > 0 else None


def fsc_plot_png(path: Path) -> bytes:
    """The FSC curves of ``path`` against spatial frequency, with the 0.143 threshold and resolution."""
    curve = read_fsc_curve(path)
    figure = Figure(figsize=(6, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    for name, values in curve.curves.items():
        axes.plot(curve.frequency, values, label=name, linewidth=1.2)
    axes.axhline(0.143, color="0.4", linestyle="--", linewidth=0.8, label="0.143")
    resolution = fsc_resolution(curve)
    if resolution is not None:
        axes.axvline(1.0 / resolution, color="0.6", linestyle=":", linewidth=0.8)
        axes.set_title(f"{curve.title}: {resolution:.2f} Å at FSC 0.143", fontsize=10)
    axes.set_xlabel("spatial frequency (1/Å)")
    axes.set_ylabel("FSC")
    axes.set_ylim(-0.1, 1.05)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


# -- particle angles -------------------------------------------------------------------------------------
def read_angles(path: Path) -> tuple[FloatArray, FloatArray]:
    """The rot and tilt angles (degrees) of every particle of a RELION STAR file."""
    document = _read_star(path)
    for block in document.blocks.values():
        if block.is_loop and "rlnAngleRot" in block.columns and "rlnAngleTilt" in block.columns:
            return (
                np.asarray(block.columns["rlnAngleRot"], dtype=np.float64),
                np.asarray(block.columns["rlnAngleTilt"], dtype=np.float64),
            )
    raise ParseError(f"{path}: no loop with rlnAngleRot and rlnAngleTilt columns")


def angle_distribution_png(path: Path) -> bytes:
    """A 2D histogram of particle orientations (rot against tilt)."""
    rot, tilt = read_angles(path)
    figure = Figure(figsize=(6, 3.4))
    axes = figure.add_subplot(1, 1, 1)
    counts, _, _, image = axes.hist2d(
        ((rot + 180.0) % 360.0) - 180.0, tilt, bins=(72, 36), range=((-180, 180), (0, 180)), cmap="viridis"
    )
    figure.colorbar(image, ax=axes, label="particles")
    axes.set_xlabel("rot (°)")
    axes.set_ylabel("tilt (°)")
    axes.set_title(f"angular distribution of {int(counts.sum())} particles", fontsize=10)
    figure.tight_layout()
    return _png(figure)
