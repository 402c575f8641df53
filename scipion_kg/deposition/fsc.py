"""Fourier shell correlation of two half maps, its resolution, and EMDB's FSC XML and plot.

Shells follow :func:`scipion_kg.tasks.builtin.fourier.fsc`: shell k holds the Fourier coefficients whose
distance from the origin rounds to k (k = 0 .. box // 2) and has spatial frequency k / (box · pixel) in 1/Å.

EMDB's FSC file (``fsc-xml`` in OneDep) is::

    <fsc title="..." xaxis="Resolution (A-1)" yaxis="Correlation Coefficient">
      <coordinate><x>0.0123</x><y>0.998</y></coordinate>
      ...
    </fsc>
"""

from __future__ import annotations

import io
import math
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as SafeElementTree
import mrcfile
import numpy as np
import numpy.typing as npt
from defusedxml import DefusedXmlException

from ..atomic import atomic_write_bytes
from ..errors import DepositionError, ParseError
from ..tasks.builtin.fourier import fsc

__all__ = [
    "FSCCurve",
    "fsc_of_arrays",
    "half_map_fsc",
    "plot_fsc_png",
    "read_fsc_xml",
    "write_fsc_xml",
]

FloatArray = npt.NDArray[np.float64]

X_AXIS = "Resolution (A-1)"
Y_AXIS = "Correlation Coefficient"


@dataclass(frozen=True, eq=False)
class FSCCurve:
    """One correlation per Fourier shell, with the shell's spatial frequency (1/Å)."""

    spatial_frequency: FloatArray  # 1/Å, one value per Fourier shell (shell k -> k / (box * pixel))
    correlation: FloatArray
    pixel_size: float  # Å
    box: int

    def __post_init__(self) -> None:
        frequency, correlation = self.spatial_frequency, self.correlation
        if frequency.ndim != 1 or frequency.shape != correlation.shape or len(frequency) < 2:
            raise DepositionError(
                f"an FSC curve needs as many correlations as frequencies (at least 2), got "
                f"{frequency.shape} frequencies and {correlation.shape} correlations"
            )
        if not (np.all(np.isfinite(frequency)) and np.all(np.isfinite(correlation))):
            raise DepositionError("an FSC curve needs finite frequencies and correlations")
        if np.any(np.diff(frequency) <= 0) or frequency[0] < 0:
            raise DepositionError("the spatial frequencies of an FSC curve must start at >= 0 and increase")
        if not (self.pixel_size > 0 and self.box > 0):
            raise DepositionError(
                f"an FSC curve needs a positive pixel size and box, got {self.pixel_size} Å and {self.box}"
            )

    def resolution(self, threshold: float = 0.143) -> float:
        """Resolution (Å) where the curve first falls below ``threshold``.

        The zero-frequency (DC) shell is skipped; the crossing is interpolated linearly in frequency
        between the two shells that bracket it. A curve that never falls below the threshold gives the
        Nyquist resolution 2 · pixel size.
        """
        frequency, correlation = self.spatial_frequency, self.correlation
        first = 1 if frequency[0] == 0 else 0
        if correlation[first] < threshold:
            raise DepositionError(
                f"the FSC is {correlation[first]:.3f} at the lowest frequency "
                f"({frequency[first]:.4g} 1/Å), already below the {threshold} threshold: the two maps "
                "share no signal; check that they are the half maps of one reconstruction"
            )
        for shell in range(first + 1, len(correlation)):
            if correlation[shell] < threshold:
                above, below = correlation[shell - 1], correlation[shell]
                fraction = (above - threshold) / (above - below)
                crossing = frequency[shell - 1] + fraction * (frequency[shell] - frequency[shell - 1])
                return float(1.0 / crossing)
        return 2.0 * self.pixel_size


def fsc_of_arrays(
    map1: npt.NDArray[np.floating], map2: npt.NDArray[np.floating], pixel_size: float
) -> FSCCurve:
    """The FSC of two cubic maps of the same box with voxels of ``pixel_size`` Å."""
    if map1.shape != map2.shape:
        raise DepositionError(f"FSC needs two maps of the same box, got {map1.shape} and {map2.shape}")
    if map1.ndim != 3 or len(set(map1.shape)) != 1:
        raise DepositionError(f"FSC needs cubic 3D maps (n x n x n voxels), got {map1.shape}")
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise DepositionError(f"FSC needs a positive pixel size in Å, got {pixel_size}")
    box = map1.shape[0]
    correlation = fsc(np.asarray(map1, dtype=np.float64), np.asarray(map2, dtype=np.float64))
    frequency = np.arange(len(correlation), dtype=np.float64) / (box * pixel_size)
    return FSCCurve(frequency, correlation, float(pixel_size), box)


def _read_map(path: Path, other: Path) -> tuple[FloatArray, tuple[float, float, float]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=False) as mrc:
                if mrc.data is None:
                    raise ValueError("no data block")
                voxel = mrc.voxel_size
                return np.asarray(mrc.data, dtype=np.float64), (
                    float(voxel.x),
                    float(voxel.y),
                    float(voxel.z),
                )
    except (ValueError, OSError) as error:
        raise DepositionError(
            f"half map {path} is not a readable MRC/CCP4 map ({error}), so its FSC with {other} "
            "cannot be computed"
        ) from error


def half_map_fsc(half1: Path, half2: Path) -> FSCCurve:
    """The FSC of two half maps (MRC files with the same cubic box and isotropic voxel size)."""
    data1, voxel1 = _read_map(half1, half2)
    data2, voxel2 = _read_map(half2, half1)
    if data1.shape != data2.shape:
        raise DepositionError(
            f"half maps {half1} and {half2} differ in box: {data1.shape[::-1]} vs {data2.shape[::-1]} "
            "voxels; half maps of one reconstruction share the box"
        )
    if not np.allclose(voxel1, voxel2, rtol=1e-4, atol=0):
        raise DepositionError(
            f"half maps {half1} and {half2} differ in voxel size: {voxel1} vs {voxel2} Å; half maps of "
            "one reconstruction share the voxel size"
        )
    if not np.allclose(voxel1, voxel1[0], rtol=1e-4, atol=0):
        raise DepositionError(
            f"half maps {half1} and {half2} have anisotropic voxels {voxel1} Å; FSC shells need the same "
            "voxel size along X, Y and Z"
        )
    if data1.ndim != 3 or len(set(data1.shape)) != 1:
        raise DepositionError(
            f"half maps {half1} and {half2} are not cubic 3D maps (shape {data1.shape[::-1]}); the FSC "
            "needs n x n x n voxels"
        )
    return fsc_of_arrays(data1, data2, voxel1[0])


@dataclass(frozen=True, eq=False)
class MaskedFSC:
    """The gold-standard FSC of two half maps within a mask, corrected for the mask's own correlation by
    phase randomisation beyond the point where the unmasked FSC falls below 0.8 (Chen et al. 2013,
    Ultramicroscopy 135:24), as relion_postprocess reports it; and the unmasked FSC beside it."""

    corrected: FSCCurve
    unmasked: FSCCurve


def masked_half_map_fsc(half1: Path, half2: Path, mask: Path) -> MaskedFSC:
    """The mask-corrected FSC of two half maps (same checks as :func:`half_map_fsc`)."""
    from ..errors import ProcessingError
    from ..tasks.builtin.postprocess import postprocess

    unmasked = half_map_fsc(half1, half2)
    mask_values, mask_voxel = _read_map(mask, half1)
    if mask_values.shape != (unmasked.box,) * 3 or not np.allclose(
        mask_voxel, unmasked.pixel_size, rtol=1e-4
    ):
        raise DepositionError(
            f"mask {mask} ({mask_values.shape[::-1]} voxels of {mask_voxel} Å) is not in the frame of the "
            f"half maps {half1} and {half2} ({unmasked.box}^3 voxels of {unmasked.pixel_size} Å)"
        )
    try:
        result = postprocess(half1, half2, mask=mask_values, auto_bfactor=False)
    except ProcessingError as error:
        raise DepositionError(f"the masked FSC of {half1} and {half2} cannot be computed: {error}") from error
    frequency = np.asarray(result.frequencies, dtype=np.float64)
    corrected = FSCCurve(
        frequency, np.asarray(result.fsc_corrected, dtype=np.float64), unmasked.pixel_size, unmasked.box
    )
    return MaskedFSC(corrected, unmasked)


def _number(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, without an exponent."""
    return np.format_float_positional(value, precision=digits, unique=True, fractional=False, trim="-")


def write_fsc_xml(curve: FSCCurve, path: Path, title: str) -> None:
    """Write ``curve`` as EMDB's FSC XML file (atomically)."""
    root = ElementTree.Element("fsc", {"title": title, "xaxis": X_AXIS, "yaxis": Y_AXIS})
    for frequency, correlation in zip(curve.spatial_frequency, curve.correlation, strict=True):
        coordinate = ElementTree.SubElement(root, "coordinate")
        ElementTree.SubElement(coordinate, "x").text = _number(float(frequency), 8)
        ElementTree.SubElement(coordinate, "y").text = _number(float(correlation), 6)
    ElementTree.indent(root)
    data = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    atomic_write_bytes(path, data)


def _coordinate_value(path: Path, index: int, coordinate: ElementTree.Element, name: str) -> float:
    element = coordinate.find(name)
    text = element.text if element is not None else None
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ParseError(
            f"{path}: <coordinate> number {index} has no numeric <{name}> (found {text!r}); "
            "each coordinate needs <x> (1/Å) and <y> (correlation)"
        )
    return value


def read_fsc_xml(path: Path) -> FSCCurve:
    """Read EMDB's FSC XML. Box and pixel size are inferred: Nyquist is taken as the last frequency."""
    try:
        root = SafeElementTree.parse(path).getroot()
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise ParseError(f"{path} is not well-formed FSC XML: {error}") from error
    except OSError as error:
        raise ParseError(f"{path} cannot be read as FSC XML: {error}") from error
    if root is None or root.tag != "fsc":
        found = "missing" if root is None else f"<{root.tag}>"
        raise ParseError(f"{path}: the root element is {found}; EMDB's FSC XML has <fsc>")
    coordinates = root.findall("coordinate")
    if len(coordinates) < 2:
        raise ParseError(
            f"{path}: <fsc> has {len(coordinates)} <coordinate> elements; a curve needs 2 or more"
        )
    xs = np.array([_coordinate_value(path, i, c, "x") for i, c in enumerate(coordinates, 1)])
    ys = np.array([_coordinate_value(path, i, c, "y") for i, c in enumerate(coordinates, 1)])
    steps = np.diff(xs)
    if xs[0] < 0 or np.any(steps <= 0):
        raise ParseError(
            f"{path}: the <x> frequencies must start at >= 0 and increase from one <coordinate> to the next"
        )
    nyquist = float(xs[-1])
    pixel_size = 1.0 / (2.0 * nyquist)
    box = max(2, round(2.0 * nyquist / float(np.median(steps))))
    return FSCCurve(xs.astype(np.float64), ys.astype(np.float64), pixel_size, box)


def plot_fsc_png(curve: FSCCurve, path: Path, title: str) -> None:
    """Plot ``curve`` with the 0.143 threshold and the resolution where it crosses, as a PNG (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(curve.spatial_frequency, curve.correlation, color="tab:blue", label="FSC")
    axes.axhline(0.143, color="tab:red", linestyle="--", linewidth=1, label="0.143")
    try:
        resolution = curve.resolution(0.143)
    except DepositionError:
        resolution = None
    if resolution is not None:
        axes.axvline(1.0 / resolution, color="grey", linestyle=":", linewidth=1)
        axes.annotate(
            f"{resolution:.2f} Å",
            xy=(1.0 / resolution, 0.143),
            xytext=(5, 10),
            textcoords="offset points",
        )
    axes.set_xlim(0.0, float(curve.spatial_frequency[-1]))
    axes.set_ylim(min(-0.1, float(curve.correlation.min())), 1.05)
    axes.set_xlabel("Spatial frequency (1/Å)")
    axes.set_ylabel("Fourier shell correlation")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    # No "Software" entry: the PNG does not change with the matplotlib version.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
