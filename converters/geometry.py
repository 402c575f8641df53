"""Rotations between a package's encoding and the pivot Euler angles (docs/conventions §0).

The pivot triple (rot, tilt, psi) has matrix A = Rz(-psi)·Ry(-tilt)·Rz(-rot), so scipy's
``Rotation.from_euler("ZYZ", [rot, tilt, psi])`` is A^T. A package declares how its numbers relate to A
(conventions module): Euler angles in some scipy sequence, a rotation vector or matrix entries, equal to
A or to A^T. Everything here is vectorised over rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

__all__ = [
    "euler_rotation",
    "from_pivot",
    "pivot_matrices",
    "rotation_vectors",
    "to_pivot",
    "tomo_projection_matrices",
]

FloatArray = npt.NDArray[np.float64]

EULER = "EulerAngleRotation"
ROTATION_VECTOR = "RotationVectorRotation"
MATRIX = "RotationMatrixRotation"


_AXES = {"x": 0, "y": 1, "z": 2}


def euler_rotation(sequence: str, angles: npt.ArrayLike, degrees: bool = False) -> Rotation:
    """``Rotation.from_euler(sequence, angles)`` for angles (n, len(sequence)), built as a product of
    elementary quaternions in numpy: the same rotations, about 15x faster on a million rows (scipy 1.17's
    from_euler spends ~0.9 µs per row). Uppercase sequences are intrinsic, lowercase extrinsic, as scipy."""
    values = np.asarray(angles, dtype=np.float64)
    axes = sequence.lower()
    if (
        values.ndim != 2
        or values.shape[1] != len(sequence)
        or not set(axes) <= set(_AXES)
        or not 1 <= len(sequence) <= 3
    ):
        return Rotation.from_euler(sequence, values, degrees=degrees)
    half = (np.radians(values) if degrees else values) / 2.0
    if axes == "zyz":
        return Rotation.from_quat(_zyz_quaternions(half, intrinsic=sequence.isupper()))
    factors: list[_Quaternion] = []
    for position, axis in enumerate(axes):
        # Elementary quaternions as (x, y, z, w) columns; the two zero components stay scalars.
        components: list[FloatArray | float] = [0.0, 0.0, 0.0, np.cos(half[:, position])]
        components[_AXES[axis]] = np.sin(half[:, position])
        factors.append((components[0], components[1], components[2], components[3]))
    if sequence.islower():  # extrinsic: the first rotation is applied first, so it stands rightmost
        factors.reverse()
    product = factors[0]
    for factor in factors[1:]:
        product = _hamilton(product, factor)
    quaternions = np.empty((len(values), 4))
    for column, component in enumerate(product):
        quaternions[:, column] = component
    return Rotation.from_quat(quaternions)


def _zyz_quaternions(half: FloatArray, intrinsic: bool) -> FloatArray:
    """Quaternions (x, y, z, w) of ZYZ rotations from half angles, in closed form: the product
    qz(a)·qy(b)·qz(c) is (-sin b sin(a - c), sin b cos(a - c), cos b sin(a + c), cos b cos(a + c)) with
    a, b, c the half angles (the pivot convention's sequence, 2x faster than three general products)."""
    first, middle, last = half[:, 0], half[:, 1], half[:, 2]
    if not intrinsic:  # extrinsic zyz (a, b, c) is intrinsic ZYZ (c, b, a)
        first, last = last, first
    difference, total = first - last, first + last
    sine, cosine = np.sin(middle), np.cos(middle)
    quaternions = np.empty((len(half), 4))
    quaternions[:, 0] = -sine * np.sin(difference)
    quaternions[:, 1] = sine * np.cos(difference)
    quaternions[:, 2] = cosine * np.sin(total)
    quaternions[:, 3] = cosine * np.cos(total)
    return quaternions


_Quaternion = tuple["FloatArray | float", "FloatArray | float", "FloatArray | float", "FloatArray | float"]


def _hamilton(p: _Quaternion, q: _Quaternion) -> _Quaternion:
    """Row-wise quaternion products p ⊗ q of (x, y, z, w) columns."""
    px, py, pz, pw = p
    qx, qy, qz, qw = q
    return (
        pw * qx + px * qw + py * qz - pz * qy,
        pw * qy - px * qz + py * qw + pz * qx,
        pw * qz + px * qy - py * qx + pz * qw,
        pw * qw - px * qx - py * qy - pz * qz,
    )


def _as_transposed_pivot(encoding: str, values: FloatArray, sequence: str, transposed: bool) -> Rotation:
    """The scipy rotation whose matrix is A^T, from a package's values (angles in radians)."""
    if encoding == EULER:
        rotation = euler_rotation(sequence, values)
    elif encoding == ROTATION_VECTOR:
        rotation = Rotation.from_rotvec(values)
    elif encoding == MATRIX:
        rotation = Rotation.from_matrix(values.reshape(-1, 3, 3))
    else:
        raise ValueError(f"unknown rotation encoding {encoding!r}")
    return rotation if transposed else rotation.inv()


def to_pivot(encoding: str, values: FloatArray, sequence: str, transposed: bool) -> FloatArray:
    """Pivot (rot, tilt, psi) in degrees, shape (n, 3), from package values (radians for angles)."""
    if encoding == EULER and sequence == "ZYZ" and transposed:
        return np.degrees(values)  # the package writes the pivot numbers themselves
    rotation = _as_transposed_pivot(encoding, values, sequence, transposed)
    with warnings.catch_warnings():
        # Gimbal lock (tilt 0 or 180): scipy sets the third angle to 0 and warns; the matrix is exact.
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(rotation.as_euler("ZYZ", degrees=True), dtype=np.float64)


def from_pivot(encoding: str, pivot_degrees: FloatArray, sequence: str, transposed: bool) -> FloatArray:
    """Package values (radians for angles; 9 entries row by row for matrices) from pivot angles."""
    if encoding == EULER and sequence == "ZYZ" and transposed:
        return np.radians(pivot_degrees)
    transposed_pivot = euler_rotation("ZYZ", pivot_degrees, degrees=True)
    rotation = transposed_pivot if transposed else transposed_pivot.inv()
    if encoding == EULER:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(rotation.as_euler(sequence), dtype=np.float64)
    if encoding == ROTATION_VECTOR:
        return rotation_vectors(rotation)
    if encoding == MATRIX:
        return np.asarray(rotation.as_matrix(), dtype=np.float64).reshape(-1, 9)
    raise ValueError(f"unknown rotation encoding {encoding!r}")


def rotation_vectors(rotation: Rotation) -> FloatArray:
    """``rotation.as_rotvec()`` (angles in [0, π]) from the quaternions in numpy: the same vectors, about 5x
    faster on a million rows."""
    quaternions = np.atleast_2d(rotation.as_quat())
    vector, scalar = quaternions[:, :3], quaternions[:, 3]
    flip = scalar < 0  # q and -q are the same rotation; w >= 0 gives the angle in [0, π]
    vector = np.where(flip[:, None], -vector, vector)
    scalar = np.abs(scalar)
    sine_half = np.linalg.norm(vector, axis=1)
    angle = 2.0 * np.arctan2(sine_half, scalar)
    # angle / sin(angle / 2), with its series near 0 where the ratio is 0 / 0.
    small = angle <= 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(small, 2.0 + angle**2 / 12.0 + 7.0 * angle**4 / 2880.0, angle / sine_half)
    vectors: FloatArray = scale[:, None] * vector
    return vectors if rotation.single is False else vectors[0]


def pivot_matrices(pivot_degrees: FloatArray) -> FloatArray:
    """The pivot matrices A, shape (n, 3, 3), of pivot Euler triples in degrees."""
    transposed = euler_rotation("ZYZ", pivot_degrees, degrees=True).as_matrix()
    return np.asarray(np.transpose(transposed, (0, 2, 1)), dtype=np.float64)


def tomo_projection_matrices(
    x_tilt: npt.ArrayLike,
    y_tilt: npt.ArrayLike,
    z_rot: npt.ArrayLike,
    shift_angstrom: npt.ArrayLike,
    pixel_size: float,
    tomogram_size: tuple[float, ...],
    image_centre: tuple[float, ...],
) -> FloatArray:
    """RELION 5's 4x4 projection matrices of a tilt series, shape (n, 4, 4).

    P = S(c_img) · S(shift / pixel) · Rz(ZRot) · Ry(YTilt) · Rx(XTilt) · S(-c_tomo), with c_tomo the
    tomogram centre (size / 2, tilt-series pixels); angles in degrees (RELION
    src/tomography_python_programs/align_tilt_series/_job_utils.py, docs/conventions §1).
    """
    rotation = (
        Rotation.from_euler("z", np.reshape(z_rot, (-1, 1)), degrees=True)
        * Rotation.from_euler("y", np.reshape(y_tilt, (-1, 1)), degrees=True)
        * Rotation.from_euler("x", np.reshape(x_tilt, (-1, 1)), degrees=True)
    ).as_matrix()
    count = len(rotation)
    matrices = np.zeros((count, 4, 4))
    matrices[:, :3, :3] = rotation
    centre = np.asarray(tomogram_size, dtype=np.float64) / 2
    translation = -(rotation @ centre)
    translation[:, :2] += np.asarray(shift_angstrom, dtype=np.float64) / pixel_size + np.asarray(image_centre)
    matrices[:, :3, 3] = translation
    matrices[:, 3, 3] = 1.0
    return matrices
