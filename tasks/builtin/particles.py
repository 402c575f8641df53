"""Per-particle CTF parameters of a particle stack, shared by the built-in particle-processing backends.

The CTF model is RELION's (``ctf.ctf_2d``, after ``src/ctf.h`` getCTF): defocus U/V in Å (positive
underfocus), the angle from +x to the U axis and the phase shift in degrees; voltage (kV), spherical
aberration (mm) and amplitude contrast (fraction) are shared by the stack (one optics group).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ProcessingError

from .ctf import ctf_2d
from .fourier import frequency_grid_2d

__all__ = ["ParticleCTF"]

FloatArray = npt.NDArray[np.float64]


def _as_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1:
        raise ProcessingError(
            f"ParticleCTF.{name} must be a 1D array (one value per particle), got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ProcessingError(
            f"ParticleCTF.{name} has non-finite values; every particle needs a finite value"
        )
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ParticleCTF:
    """The CTF of every particle of a stack: arrays of length n plus optics scalars.

    Arrays are copied to read-only float64 on construction; ``phase_shift`` may be omitted (zeros)."""

    defocus_u: FloatArray
    defocus_v: FloatArray
    defocus_angle: FloatArray
    phase_shift: FloatArray = field(default_factory=lambda: np.zeros(0))
    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1  # fraction

    def __post_init__(self) -> None:
        u = _as_vector("defocus_u", self.defocus_u)
        n = len(u)
        phase = np.zeros(n) if np.size(self.phase_shift) == 0 and n else self.phase_shift
        arrays = {
            "defocus_u": u,
            "defocus_v": _as_vector("defocus_v", self.defocus_v),
            "defocus_angle": _as_vector("defocus_angle", self.defocus_angle),
            "phase_shift": _as_vector("phase_shift", phase),
        }
        for name, array in arrays.items():
            if len(array) != n:
                raise ProcessingError(
                    f"ParticleCTF.{name} has {len(array)} values but defocus_u has {n}; give one per particle"
                )
            object.__setattr__(self, name, array)
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise ProcessingError(f"amplitude contrast {self.amplitude_contrast} must lie in [0, 1)")
        if self.voltage <= 0:
            raise ProcessingError(f"voltage {self.voltage} kV must be positive")

    def __len__(self) -> int:
        return len(self.defocus_u)

    def subset(self, indices: npt.ArrayLike) -> ParticleCTF:
        """The CTFs of the particles at ``indices`` (integer indices or a boolean mask), in that order."""
        selection = np.asarray(indices)
        if selection.dtype == bool and selection.shape != (len(self),):
            raise ProcessingError(f"a boolean selection needs {len(self)} entries, got {selection.shape}")
        return ParticleCTF(
            self.defocus_u[selection],
            self.defocus_v[selection],
            self.defocus_angle[selection],
            self.phase_shift[selection],
            self.voltage,
            self.spherical_aberration,
            self.amplitude_contrast,
        )

    def ctf_images(self, size: int, pixel_size: float) -> npt.NDArray[np.float32]:
        """CTFs (n, size, size), float32, on the centred DFT grid of ``fourier.centered_fft2`` (origin at
        size // 2)."""
        if size < 2 or pixel_size <= 0:
            raise ProcessingError(
                f"CTF images need size >= 2 and a positive pixel size, got {size}, {pixel_size}"
            )
        kx, ky = frequency_grid_2d(size, pixel_size)
        out = np.empty((len(self), size, size), dtype=np.float32)
        for start in range(0, len(self), 256):  # chunks bound the float64 temporaries
            part = slice(start, start + 256)
            out[part] = ctf_2d(
                kx,
                ky,
                self.defocus_u[part],
                self.defocus_v[part],
                self.defocus_angle[part],
                self.voltage,
                self.spherical_aberration,
                self.amplitude_contrast,
                self.phase_shift[part],
            )
        return out
