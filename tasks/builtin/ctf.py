"""The contrast transfer function as RELION computes it (``src/ctf.h``, getCTF), vectorised.

CTF(k) = sin(χ(k)),  χ = π λ Δf(θ) k² - (π/2) Cs λ³ k⁴ + φ + arctan(Q / √(1 - Q²))
with Δf(θ) = ½ (U + V + (U - V) cos 2(θ - θ_ast)), positive underfocus in Å, θ_ast the angle from +x to
the U axis, φ the phase shift, Q the amplitude contrast, λ the relativistic electron wavelength.
(RELION writes -sin(K1·δf·k² + K2·k⁴ - K5 - K3) with its internal δf = -Δf: the same function; checked
against ``relion_ctf_toolbox --simulate`` to 5e-4.)
An optional envelope exp(-B k² / 4) models the CTF B-factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .fourier import frequency_grid_2d

__all__ = ["CTFParameters", "ctf_2d", "ctf_image", "electron_wavelength"]

FloatArray = npt.NDArray[np.float64]


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å at ``voltage_kv`` kilovolts."""
    volts = voltage_kv * 1e3
    return float(12.2642598 / np.sqrt(volts * (1.0 + volts * 0.978466e-6)))


@dataclass(frozen=True)
class CTFParameters:
    """One image's CTF: defocus in Å (positive underfocus), angle and phase shift in degrees."""

    defocus_u: float
    defocus_v: float
    defocus_angle: float
    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1  # fraction
    phase_shift: float = 0.0  # degrees
    bfactor: float = 0.0  # Å²


def ctf_2d(
    kx: FloatArray,
    ky: FloatArray,
    defocus_u: npt.ArrayLike,
    defocus_v: npt.ArrayLike,
    defocus_angle: npt.ArrayLike,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    phase_shift: npt.ArrayLike = 0.0,
    bfactor: float = 0.0,
) -> FloatArray:
    """CTF values at frequencies (kx, ky) in 1/Å; per-image parameters broadcast over a leading axis.

    With arrays of n defocus values and (m, m) frequency grids the result has shape (n, m, m)."""
    wavelength = electron_wavelength(voltage)
    cs = spherical_aberration * 1e7  # mm -> Å
    u = np.asarray(defocus_u, dtype=np.float64)[..., None, None]
    v = np.asarray(defocus_v, dtype=np.float64)[..., None, None]
    angle = np.radians(np.asarray(defocus_angle, dtype=np.float64))[..., None, None]
    phase = np.radians(np.asarray(phase_shift, dtype=np.float64))[..., None, None]
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    defocus = 0.5 * (u + v + (u - v) * np.cos(2.0 * (theta - angle)))
    amplitude = np.arctan(amplitude_contrast / np.sqrt(1.0 - amplitude_contrast**2))
    chi = np.pi * wavelength * defocus * k2 - 0.5 * np.pi * cs * wavelength**3 * k2**2 + phase + amplitude
    values = np.sin(chi)
    if bfactor:
        values = values * np.exp(-bfactor * k2 / 4.0)
    return np.asarray(values, dtype=np.float64)


def ctf_image(parameters: CTFParameters, size: int, pixel_size: float) -> FloatArray:
    """The CTF of one image on a centred ``size`` x ``size`` DFT grid (origin at size // 2)."""
    kx, ky = frequency_grid_2d(size, pixel_size)
    return ctf_2d(
        kx,
        ky,
        parameters.defocus_u,
        parameters.defocus_v,
        parameters.defocus_angle,
        parameters.voltage,
        parameters.spherical_aberration,
        parameters.amplitude_contrast,
        parameters.phase_shift,
        parameters.bfactor,
    )[()]
