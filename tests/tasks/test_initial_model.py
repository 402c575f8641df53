"""Initial model from a reference map: the same analytic object sampled on two different grids."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.tasks.builtin.fourier import fsc, lowpass
from scipion_kg.tasks.builtin.initial_model import initial_model_from_reference

from scipion_kg.errors import ProcessingError

RNG = np.random.default_rng(11)
CENTRES = RNG.uniform(-1, 1, (20, 3)) * np.array([30.0, 18.0, 10.0])  # Å, (x, y, z): an anisotropic object
HEIGHTS = RNG.uniform(0.5, 1.5, 20)
WIDTH = 5.0  # Å, Gaussian sigma of every blob


def sample(shape: tuple[int, int, int], pixel_size: float) -> npt.NDArray[np.float64]:
    """The blob object sampled on a (z, y, x) grid whose voxel n // 2 is the origin."""
    axes = [(np.arange(n) - n // 2) * pixel_size for n in shape]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    volume = np.zeros(shape)
    for (cx, cy, cz), height in zip(CENTRES, HEIGHTS, strict=True):
        volume += height * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * WIDTH**2))
    return volume


@pytest.mark.parametrize(
    ("reference_shape", "reference_pixel", "resolution"),
    [((81, 80, 79), 1.4, 12.0), ((40, 40, 40), 2.7, 15.0), ((64, 64, 64), 2.0, 40.0)],
)
def test_resampled_reference_matches_lowpassed_truth(
    reference_shape: tuple[int, int, int], reference_pixel: float, resolution: float
) -> None:
    box, pixel = 48, 2.0
    reference = sample(reference_shape, reference_pixel)
    model = initial_model_from_reference(reference, reference_pixel, box, pixel, resolution)
    assert model.shape == (box, box, box) and model.dtype == np.float32
    truth = lowpass(sample((box, box, box), pixel), resolution, pixel, 2.0)
    curve = fsc(model.astype(np.float64), truth)
    below = [
        shell
        for shell in range(1, len(curve))
        if shell / (box * pixel) < 1.0 / resolution - 1.0 / (box * pixel)
    ]
    assert curve[below].min() > 0.9, curve[below]
    # Nothing survives well beyond the cut-off.
    spectrum = np.abs(np.fft.fftshift(np.fft.fftn(model)))
    grid = np.arange(box) - box // 2
    radius = np.sqrt(sum(g**2 for g in np.meshgrid(grid, grid, grid, indexing="ij")))
    assert spectrum[radius > box * pixel / resolution + 2].max() < 1e-3 * spectrum.max()
    # Density values are kept (sampled, not integrated): the peak is within 15 % of the truth's.
    assert abs(model.max() - truth.max()) < 0.15 * truth.max()


def test_a_mirrored_reference_is_detected() -> None:
    """Sanity of the test itself: the mirror image (hand flip) of the reference fails the FSC criterion."""
    box, pixel, resolution = 48, 2.0, 12.0
    reference = sample((64, 64, 64), 1.5)[:, :, ::-1]
    model = initial_model_from_reference(reference, 1.5, box, pixel, resolution)
    truth = lowpass(sample((box, box, box), pixel), resolution, pixel, 2.0)
    assert fsc(model.astype(np.float64), truth)[2:8].min() < 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference_pixel_size": 0.0}, "pixel sizes"),
        ({"resolution": 3.0}, "Nyquist"),
        ({"box": 2}, "box"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "reference_pixel_size": 2.0,
        "box": 32,
        "pixel_size": 2.0,
        "resolution": 20.0,
    }
    arguments.update(kwargs)
    with pytest.raises(ProcessingError, match=message):
        initial_model_from_reference(np.zeros((16, 16, 16)), **arguments)
    with pytest.raises(ProcessingError, match="3D"):
        initial_model_from_reference(np.zeros((16, 16)), 2.0, 32, 2.0)
