"""Canonical (pivot) tables: one column vocabulary that every package's convention maps to and from.

Geometry follows the 3DEM/EMX pivot (docs: conventions §0): the pose is the Euler triple (rot, tilt, psi)
in degrees whose matrix is A = Rz(-psi)·Ry(-tilt)·Rz(-rot) (RELION's and Xmipp's numbers), the origin
shift o is in Å in the image plane (particle centre = coordinate - o/pixel size), defocus is in Å (positive
underfocus, U along the astigmatism angle measured from +x), angles are degrees, indices are 1-based.
Each column is also an ontology property (``skg:<name>`` in the conventions module) so the SHACL shapes of
``ontology/shapes/tables.ttl`` and the table checks compiled from them speak of the same things.

A table holds only the columns its source had. Columns a package writes that have no canonical meaning
travel as ``extra`` columns under their original label (``rlnNrOfSignificantSamples``): they survive a
round trip through the same package and are reported as lost when the target cannot hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CANONICAL_COLUMNS",
    "TABLE_KINDS",
    "ColumnSpec",
    "SetMetadata",
    "Table",
]


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str  # "float", "int" or "str"
    unit: str | None  # QUDT unit (compact), None for dimensionless or text
    description: str


def _spec(name: str, dtype: str, unit: str | None, description: str) -> ColumnSpec:
    return ColumnSpec(name, dtype, unit, description)


_COLUMNS = [
    # Images and where they come from.
    _spec("image_name", "str", None, "path of the image stack holding the particle"),
    _spec("image_index", "int", None, "1-based index of the image in its stack"),
    _spec("micrograph_name", "str", None, "path or name of the micrograph (or tomogram) of origin"),
    _spec("movie_name", "str", None, "path of the movie a micrograph was made from"),
    _spec(
        "coordinate_x", "float", "unit:PIXEL_COUNT", "x of the box centre in the micrograph, 0 at the left"
    ),
    _spec("coordinate_y", "float", "unit:PIXEL_COUNT", "y of the box centre in the micrograph, 0 at the top"),
    _spec("coordinate_z", "float", "unit:PIXEL_COUNT", "z of the box centre in the tomogram"),
    # Pose: pivot Euler angles and origin shift.
    _spec("angle_rot", "float", "unit:DEG", "first pivot Euler angle (about z)"),
    _spec("angle_tilt", "float", "unit:DEG", "second pivot Euler angle (about y)"),
    _spec("angle_psi", "float", "unit:DEG", "third pivot Euler angle (about z, in plane)"),
    _spec("origin_x", "float", "unit:ANGSTROM", "image-plane origin shift o, x"),
    _spec("origin_y", "float", "unit:ANGSTROM", "image-plane origin shift o, y"),
    _spec("origin_z", "float", "unit:ANGSTROM", "origin shift o, z (subtomograms)"),
    _spec("subtomo_rot", "float", "unit:DEG", "pivot rot of the subtomogram's own frame (RELION 4/5)"),
    _spec("subtomo_tilt", "float", "unit:DEG", "pivot tilt of the subtomogram's own frame"),
    _spec("subtomo_psi", "float", "unit:DEG", "pivot psi of the subtomogram's own frame"),
    # CTF.
    _spec("defocus_u", "float", "unit:ANGSTROM", "defocus along the U axis, positive underfocus"),
    _spec("defocus_v", "float", "unit:ANGSTROM", "defocus along the V axis, positive underfocus"),
    _spec("defocus_angle", "float", "unit:DEG", "angle from +x to the U axis"),
    _spec("phase_shift", "float", "unit:DEG", "additional phase shift (phase plate)"),
    _spec("ctf_bfactor", "float", "skg:SquareAngstrom", "CTF envelope B-factor"),
    _spec("ctf_scale", "float", None, "CTF scale factor"),
    _spec("ctf_max_resolution", "float", "unit:ANGSTROM", "resolution to which Thon rings fit"),
    _spec("ctf_figure_of_merit", "float", None, "CTF fit score"),
    # Groups.
    _spec("optics_group", "int", None, "1-based optics group"),
    _spec("class_number", "int", None, "1-based class"),
    _spec("half_set", "int", None, "random half set, 1 or 2"),
    _spec("tomo_name", "str", None, "tomogram or tilt series the particle belongs to"),
    # Scores.
    _spec("log_likelihood", "float", None, "log-likelihood contribution of the image"),
    _spec("max_probability", "float", None, "highest posterior probability of the image's pose"),
    _spec("figure_of_merit", "float", None, "picking or alignment score"),
    # Tilt series (one row per view).
    _spec("view_index", "int", None, "1-based view (section) in the tilt series stack"),
    _spec("tilt_angle", "float", "unit:DEG", "specimen tilt about the tilt axis (y after alignment)"),
    _spec("x_tilt", "float", "unit:DEG", "tilt about x (RELION 5 rlnTomoXTilt)"),
    _spec("axis_rotation", "float", "unit:DEG", "in-plane rotation of the view (tilt-axis angle)"),
    _spec("magnification", "float", None, "isotropic magnification of the view's alignment"),
    _spec("shift_x", "float", "unit:ANGSTROM", "specimen shift of the view, x (AreTomo TX sense)"),
    _spec("shift_y", "float", "unit:ANGSTROM", "specimen shift of the view, y"),
    _spec("dose", "float", "skg:ElectronPerSquareAngstrom", "accumulated dose before the view"),
    _spec("exposure_time", "float", "unit:SEC", "exposure time of the view"),
    # Optics groups (one row per group).
    _spec("optics_group_name", "str", None, "name of the optics group"),
    _spec("pixel_size", "float", "unit:ANGSTROM", "pixel size of the particle images (Å/px)"),
    _spec("micrograph_pixel_size", "float", "unit:ANGSTROM", "pixel size of the micrographs (Å/px)"),
    _spec("voltage", "float", "unit:KiloV", "acceleration voltage"),
    _spec("spherical_aberration", "float", "unit:MilliM", "spherical aberration Cs"),
    _spec("amplitude_contrast", "float", "unit:FRACTION", "amplitude contrast, fraction 0-1"),
    _spec("image_size", "int", "unit:PIXEL_COUNT", "box size of the particle images"),
    _spec("image_dimensionality", "int", None, "2 for images, 3 for subtomograms"),
]

CANONICAL_COLUMNS: dict[str, ColumnSpec] = {spec.name: spec for spec in _COLUMNS}

# Which columns each kind of table may hold (the SHACL shape of each kind says which are required).
_OPTICS = frozenset(
    {
        "optics_group", "optics_group_name", "pixel_size", "micrograph_pixel_size", "voltage",
        "spherical_aberration", "amplitude_contrast", "image_size", "image_dimensionality",
    }
)  # fmt: skip
_VIEWS_ONLY = frozenset(
    {"view_index", "tilt_angle", "x_tilt", "axis_rotation", "magnification", "shift_x", "shift_y", "dose",
     "exposure_time"}
)  # fmt: skip
_CTF = frozenset(
    {"defocus_u", "defocus_v", "defocus_angle", "phase_shift", "ctf_max_resolution", "ctf_figure_of_merit"}
)
TABLE_KINDS: dict[str, frozenset[str]] = {
    "particles": frozenset(CANONICAL_COLUMNS) - (_OPTICS - {"optics_group"}) - _VIEWS_ONLY,
    "optics": _OPTICS,
    "micrographs": _CTF | {"micrograph_name", "movie_name", "optics_group", "ctf_bfactor", "ctf_scale"},
    "coordinates": frozenset(
        {
            "micrograph_name",
            "coordinate_x",
            "coordinate_y",
            "coordinate_z",
            "class_number",
            "figure_of_merit",
            "tomo_name",
        }
    ),
    "tilt_series": _VIEWS_ONLY | _CTF | {"tomo_name", "image_name"},
}


@dataclass
class SetMetadata:
    """Set-level values (recorded as RDF on the set's entity): what is the same for every row."""

    pixel_size: float | None = None  # Å/px of the images the table refers to
    voltage: float | None = None  # kV
    spherical_aberration: float | None = None  # mm
    amplitude_contrast: float | None = None  # fraction
    symmetry: str | None = None  # point group, e.g. "C1", "D7"
    image_size: int | None = None  # px
    micrograph_size: tuple[int, int] | None = None  # (nx, ny) px, for packages with fractional positions
    tomogram_size: tuple[int, int, int] | None = None  # (nx, ny, nz) px


@dataclass
class Table:
    """A canonical table: typed columns of one kind, optional extras, set-level metadata."""

    kind: str
    columns: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)
    extras: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)
    metadata: SetMetadata = field(default_factory=SetMetadata)
    # Child tables: "optics" for particles/micrographs that carry optics groups.
    related: dict[str, Table] = field(default_factory=dict)
    source_format: str | None = None
    # The convention the table was read with and the source's layout (block names, label order, image
    # locator width): writing back with the same convention reproduces the file.
    source_convention: str | None = None
    layout: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TABLE_KINDS:
            raise ValueError(f"unknown table kind {self.kind!r} (one of {', '.join(TABLE_KINDS)})")

    @property
    def n_rows(self) -> int:
        for values in (*self.columns.values(), *self.extras.values()):
            return len(values)
        return 0

    def has(self, *names: str) -> bool:
        return all(name in self.columns for name in names)
