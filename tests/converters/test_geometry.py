"""Rotation encodings against the known answers of other packages (docs/conventions §6)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters.geometry import euler_rotation, from_pivot, pivot_matrices, to_pivot
from scipy.spatial.transform import Rotation

EULER, VECTOR, MATRIX = "EulerAngleRotation", "RotationVectorRotation", "RotationMatrixRotation"


def test_pivot_matrix_entries_follow_the_relion_formula() -> None:
    # eulerangles test: euler2matrix zyz intrinsic (30, 60, 75) gives this matrix; it is A^T of the pivot.
    expected = np.array(
        [
            [-0.37089098, -0.54766767, 0.75],
            [0.90122107, -0.01733759, 0.4330127],
            [-0.22414387, 0.8365163, 0.5],
        ]
    )
    assert np.allclose(pivot_matrices(np.array([[30.0, 60.0, 75.0]]))[0].T, expected, atol=1e-8)


def test_dynamo_to_relion_eulerangles_pair() -> None:
    # eulerangles test_convert_eulers: Dynamo (tdrot, tilt, narot) = (-47.2730, 1.1777, -132.3000)
    # <-> RELION (137.7000, 1.1777, 42.7270); Dynamo's columns in sequence order are (narot, tilt, tdrot).
    dynamo = np.radians([[-132.3, 1.1777, -47.273]])
    assert np.allclose(to_pivot(EULER, dynamo, "ZXZ", True), [[137.7, 1.1777, 42.727]], atol=1e-9)
    back = np.degrees(from_pivot(EULER, np.array([[137.7, 1.1777, 42.727]]), "ZXZ", True))
    assert np.allclose(back, [[-132.3, 1.1777, -47.273]], atol=1e-9)


def test_cryosparc_pose_pyem_pair() -> None:
    # pyem TestConvert: RELION Euler (rad) <-> cryoSPARC pose <-> A.
    relion = np.degrees([[0.7844259044446438, 2.2296280676903204, -1.6883258657322704]])
    pose = np.array([[-2.14932622394, 0.746829503588, -0.487367610323]])
    matrix = np.array(
        [
            [0.75235481, -0.65220062, 0.09271774],
            [-0.34748354, -0.512477, -0.78525315],
            [0.55965831, 0.5585711, -0.61219352],
        ]
    )
    assert np.allclose(from_pivot(VECTOR, relion, "", True), pose, atol=1e-9)
    assert np.allclose(to_pivot(VECTOR, pose, "", True), relion, atol=1e-7)
    assert np.allclose(pivot_matrices(relion)[0], matrix, atol=1e-8)
    # The EMX transformation matrix is A itself.
    assert np.allclose(from_pivot(MATRIX, relion, "", False).reshape(3, 3), matrix, atol=1e-8)


def test_eman2_angles_are_the_dynamo_identity() -> None:
    # docs/conventions §1: EMAN (az, alt, phi) = (rot + 90, tilt, psi - 90) for the same matrix.
    pivot = np.array([[10.0, 20.0, 30.0]])
    eman = np.degrees(from_pivot(EULER, pivot, "ZXZ", True))
    assert np.allclose(eman, [[100.0, 20.0, -60.0]], atol=1e-9)


angles = st.tuples(st.floats(-180, 180), st.floats(0.5, 179.5), st.floats(-180, 180))


@settings(max_examples=200, deadline=None)
@given(st.lists(angles, min_size=1, max_size=20))
@pytest.mark.parametrize(
    ("encoding", "sequence", "transposed"),
    [
        (EULER, "ZXZ", True),
        (EULER, "zxz", False),
        (EULER, "ZYZ", False),
        (VECTOR, "", True),
        (MATRIX, "", False),
    ],
)
def test_every_encoding_round_trips_to_the_same_matrix(
    encoding: str, sequence: str, transposed: bool, triples: list[tuple[float, float, float]]
) -> None:
    pivot = np.array(triples)
    values = from_pivot(encoding, pivot, sequence, transposed)
    back = to_pivot(encoding, values, sequence, transposed)
    assert np.allclose(pivot_matrices(back), pivot_matrices(pivot), atol=1e-9)


@pytest.mark.parametrize(
    "sequence",
    [
        *("".join(axes) for axes in ("zyz", "zxz", "xyz", "zyx", "yzy", "xyx")),
        "ZYZ",
        "ZXZ",
        "XYZ",
        "ZYX",
        "z",
        "XY",
    ],
)
def test_euler_rotation_equals_scipy_from_euler(sequence: str) -> None:
    # The quaternion product must give scipy's rotation for intrinsic (upper) and extrinsic (lower) orders,
    # including the gimbal-lock angles (tilt 0 and 180).
    rng = np.random.default_rng(len(sequence) + ord(sequence[0]))
    angles = rng.uniform(-360.0, 360.0, (500, len(sequence)))
    if len(sequence) == 3:
        angles[:50, 1] = 0.0
        angles[50:100, 1] = 180.0
    ours = euler_rotation(sequence, angles, degrees=True).as_matrix()
    theirs = Rotation.from_euler(sequence, angles, degrees=True).as_matrix()
    assert np.abs(ours - theirs).max() < 1e-12
