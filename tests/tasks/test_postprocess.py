"""Post-processing of half maps from independent noisy halves of a simulation with a known map."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters.mrc import write_map
from scipion_kg.tasks.builtin.ctf import ctf_2d
from scipion_kg.tasks.builtin.fourier import (
    Projector,
    centered_fft2,
    centered_ifft2,
    frequency_grid_2d,
    fsc,
    resolution_at,
)
from scipion_kg.tasks.builtin.postprocess import (
    PostprocessResult,
    automatic_mask,
    phase_randomise,
    plot_fsc,
    plot_guinier,
    postprocess,
)
from scipion_kg.tasks.builtin.reconstruct import reconstruct
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

FloatArray = npt.NDArray[np.float64]
BOX = 64
PIXEL = 1.0
BLUR = 30.0  # Å², the known B-factor applied to the sharp map


@dataclass
class Simulation:
    truth: FloatArray
    half1: FloatArray
    half2: FloatArray
    result: PostprocessResult


def gemmi_map(model: Path, box: int, pixel_size: float, bfactor: float = 30.0) -> FloatArray:
    """Electron-scattering map of the model's atoms centred in the box (gemmi, processing notes §2)."""
    structure = gemmi.read_structure(str(model))
    structure.setup_entities()
    structure.remove_ligands_and_waters()
    structure.remove_hydrogens()
    centre = structure[0].calculate_center_of_mass()
    middle = (box // 2) * pixel_size
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = gemmi.Position(
                    atom.pos.x - centre.x + middle,
                    atom.pos.y - centre.y + middle,
                    atom.pos.z - centre.z + middle,
                )
                atom.b_iso = bfactor
    edge = box * pixel_size
    structure.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    structure.spacegroup_hm = "P 1"
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = 2.0 * pixel_size
    calculator.set_grid_cell_and_spacegroup(structure)
    calculator.grid.set_size(box, box, box)
    calculator.grid.fill(0.0)
    calculator.add_model_density_to_grid(structure[0])
    calculator.grid.symmetrize_sum()
    return np.array(calculator.grid, dtype=np.float64).transpose(2, 1, 0)


def point_atom_map(seed: int = 0) -> FloatArray:
    """Unit point 'atoms' (a flat amplitude spectrum on average) blurred by exp(-B s²/4), B = 30 Å², and
    band-limited inside the Nyquist sphere."""
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, 7.0, (400, 3))
    points = points[np.linalg.norm(points, axis=1) < 20]
    sharp = np.zeros((BOX,) * 3)
    np.add.at(sharp, tuple((np.rint(points).astype(int) + BOX // 2).T), 1.0)
    frequency = np.fft.fftfreq(BOX, PIXEL)
    s2 = frequency[:, None, None] ** 2 + frequency[None, :, None] ** 2 + frequency[None, None, :] ** 2
    band = np.clip((BOX / 2 - np.sqrt(s2) * BOX * PIXEL) / 3.0, 0.0, 1.0)
    return np.asarray(np.fft.ifftn(np.fft.fftn(sharp) * np.exp(-BLUR * s2 / 4.0) * band).real)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    """2 x 1,000 particles with CTF and white noise (per-pixel SNR 0.01), one half map per half."""
    rng = np.random.default_rng(1)
    truth = point_atom_map()
    n = 2000
    matrices = Rotation.random(n, random_state=2).as_matrix()
    kx, ky = frequency_grid_2d(BOX, PIXEL)
    defocus = rng.uniform(8000.0, 20000.0, n)
    ctf = ctf_2d(kx, ky, defocus, defocus - 300.0, rng.uniform(0, 180, n), 300.0, 2.7, 0.1)
    images = centered_ifft2(centered_fft2(Projector(truth).project(matrices)) * ctf)
    images += rng.normal(0.0, images.std() / np.sqrt(0.01), images.shape)
    shifts = np.zeros((n, 2))
    half1 = reconstruct(images[::2], matrices[::2], shifts[::2], PIXEL, ctf[::2])
    half2 = reconstruct(images[1::2], matrices[1::2], shifts[1::2], PIXEL, ctf[1::2])
    result = postprocess(half1, half2, PIXEL)
    return Simulation(truth, half1.astype(np.float64), half2.astype(np.float64), result)


def test_resolution_matches_the_fsc_against_the_truth(simulation: Simulation) -> None:
    result = simulation.result
    full = 0.5 * (simulation.half1 + simulation.half2)
    mask = result.mask
    # Half maps at 0.143 <=> full map against the truth at 0.5 (Rosenthal & Henderson 2003), same mask.
    truth_masked = resolution_at(fsc(full * mask, simulation.truth * mask), 0.5, BOX, PIXEL)
    assert result.resolution == pytest.approx(truth_masked, rel=0.2)
    truth_unmasked = resolution_at(fsc(full, simulation.truth), 0.5, BOX, PIXEL)
    assert result.resolution_unmasked == pytest.approx(truth_unmasked, rel=0.2)
    assert 1 / 1.5 < result.resolution / truth_unmasked < 1.5
    assert 2.0 * PIXEL <= result.resolution < result.resolution_unmasked
    assert result.frequencies[1] == pytest.approx(1.0 / (BOX * PIXEL))
    assert len(result.fsc_corrected) == BOX // 2 + 1


def test_masked_fsc_and_phase_randomisation(simulation: Simulation) -> None:
    result = simulation.result
    mid = slice(BOX // 8, 3 * BOX // 8)
    assert result.fsc_masked[mid].mean() > result.fsc_unmasked[mid].mean() + 0.1
    # Randomised from where the unmasked FSC falls below 0.8 (RELION's rule).
    shell = round(BOX * PIXEL / result.randomise_from)
    assert result.fsc_unmasked[shell] < 0.8 <= result.fsc_unmasked[1:shell].min()
    beyond = result.fsc_phase_randomised[shell + 2 :]
    assert abs(beyond.mean()) < 0.03 and np.abs(beyond).max() < 0.2
    before = slice(1, shell - 1)  # the mask mixes neighbouring shells: leave out the one just below
    assert np.allclose(result.fsc_phase_randomised[before], result.fsc_masked[before], atol=0.02)
    assert np.all(result.fsc_corrected[shell + 2 :] <= result.fsc_masked[shell + 2 :] + 0.05)


def test_automatic_mask_covers_a_real_molecule(shared_data: Path) -> None:
    box, pixel = 64, 2.6
    truth = gemmi_map(shared_data / "models" / "1BD2.cif.gz", box, pixel)
    noisy = truth + np.random.default_rng(4).normal(0.0, 0.3 * truth.std(), truth.shape)
    mask = automatic_mask(noisy, pixel)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask[truth > 0.02 * truth.max()].min() > 0.99  # every bit of the molecule is inside
    # But it hugs the molecule: nothing farther than extend + soft edge (9 px) + a low-pass margin.
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(truth < 0.02 * truth.max())
    assert mask[distance > 16].max() == 0.0
    assert mask.mean() < 0.3


def test_mask_of_the_simulation(simulation: Simulation) -> None:
    mask = simulation.result.mask
    positive = np.clip(simulation.truth, 0.0, None)
    assert (mask * positive).sum() > 0.95 * positive.sum()
    assert 0.02 < mask.mean() < 0.5


def test_auto_bfactor_recovers_the_blur(simulation: Simulation) -> None:
    result = simulation.result
    assert -60.0 <= result.bfactor <= -20.0  # simulated blur B = 30 Å²
    guinier = result.guinier
    assert guinier.fit_range == pytest.approx((1 / 10.0**2, 1 / result.resolution**2))
    assert result.bfactor == pytest.approx(4.0 * guinier.slope)
    # After sharpening, ln|F| is flat over the fit range (within noise).
    inside = (guinier.s2 >= guinier.fit_range[0]) & (guinier.s2 <= guinier.fit_range[1])
    flat_slope = np.polyfit(guinier.s2[inside], guinier.ln_amplitude_sharpened[inside], 1)[0]
    assert abs(4.0 * flat_slope) < 12.0
    # The sharpened map correlates with the (sharper) truth at least as well as the plain average.
    full = 0.5 * (simulation.half1 + simulation.half2)
    band = slice(BOX // 8, int(BOX * PIXEL / result.resolution))
    assert fsc(result.map, simulation.truth)[band].mean() == pytest.approx(
        fsc(full, simulation.truth)[band].mean(), abs=0.05
    )


def test_manual_bfactor_and_no_sharpening(simulation: Simulation) -> None:
    mask = simulation.result.mask
    manual = postprocess(simulation.half1, simulation.half2, PIXEL, mask=mask, bfactor=-50.0)
    assert manual.bfactor == -50.0 and np.isnan(manual.guinier.slope)
    plain = postprocess(simulation.half1, simulation.half2, PIXEL, mask=mask, auto_bfactor=False)
    assert plain.bfactor == 0.0
    # Sharpening boosts high frequencies relative to the unsharpened map.
    high = slice(int(0.6 * BOX * PIXEL / plain.resolution), int(BOX * PIXEL / plain.resolution))
    boost = manual.guinier.ln_amplitude_sharpened[high] - plain.guinier.ln_amplitude_sharpened[high]
    assert np.all(boost > 0)


def test_phase_randomise_keeps_amplitudes_and_low_frequencies() -> None:
    volume = point_atom_map(seed=3)
    randomised = phase_randomise(volume, 8, np.random.default_rng(0))
    curve = fsc(volume, randomised)
    assert curve[1:8].min() > 0.999
    assert abs(curve[10:].mean()) < 0.1
    spectrum, randomised_spectrum = np.abs(np.fft.fftn(volume)), np.abs(np.fft.fftn(randomised))
    assert np.allclose(spectrum, randomised_spectrum, rtol=1e-6, atol=1e-9 * spectrum.max())


def test_plots_are_deterministic_pngs(simulation: Simulation, tmp_path: Path) -> None:
    for plot in (plot_fsc, plot_guinier):
        first, second = tmp_path / f"{plot.__name__}_1.png", tmp_path / f"{plot.__name__}_2.png"
        plot(simulation.result, first)
        plot(simulation.result, second)
        data = first.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
        assert data == second.read_bytes()
        assert b"tIME" not in data and b"matplotlib" not in data


def test_bad_inputs(simulation: Simulation, tmp_path: Path) -> None:
    half = simulation.half1
    with pytest.raises(ProcessingError, match="different shapes"):
        postprocess(half, half[:-2, :-2, :-2], PIXEL)
    with pytest.raises(ProcessingError, match="pixel_size"):
        postprocess(half, half)
    first, second = tmp_path / "h1.mrc", tmp_path / "h2.mrc"
    write_map(first, half, 1.0)
    write_map(second, half, 1.2)
    with pytest.raises(ProcessingError, match="voxel size"):
        postprocess(first, second)
    with pytest.raises(ProcessingError, match="voxel size"):
        postprocess(first, first, 1.3)
    with pytest.raises(ProcessingError, match="mask"):
        postprocess(half, half, PIXEL, mask=np.ones((8, 8, 8)))
    with pytest.raises(ProcessingError, match="cubic"):
        postprocess(np.zeros((8, 8, 6)), np.zeros((8, 8, 6)), PIXEL)
    with pytest.raises(ProcessingError, match="automatic mask"):
        automatic_mask(np.zeros((16, 16, 16)), PIXEL)
