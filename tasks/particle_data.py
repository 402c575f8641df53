"""Load a particle set for the built-in backends: its table, images, per-particle CTF and pixel size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipion_kg.converters.canonical import Table

from scipion_kg.errors import ProcessingError
from scipion_kg.project import Project

from .builtin.particles import ParticleCTF
from .images import read_mrc
from .tables import read_star

__all__ = ["ParticleData", "load_particles"]


@dataclass
class ParticleData:
    table: Table
    images: npt.NDArray[np.float32]
    ctf: ParticleCTF | None
    pixel_size: float

    @property
    def box(self) -> int:
        return int(self.images.shape[-1])


def load_particles(project: Project, path: Path) -> ParticleData:
    """Every image of the particle set at ``path``, in table order."""
    table = read_star(path, "particles")
    optics = table.related["optics"].columns
    if "pixel_size" not in optics:
        raise ProcessingError(f"{path}: the optics block gives no rlnImagePixelSize")
    names = np.asarray(table.columns["image_name"]).astype(str)
    indices = np.asarray(table.columns["image_index"], dtype=np.int64)
    images: npt.NDArray[np.float32] | None = None
    for name in dict.fromkeys(names):
        rows = np.flatnonzero(names == name)
        stack = read_mrc(project.resolve_path(name))
        if stack.ndim == 2:
            stack = stack[None]
        if images is None:
            images = np.empty((len(names), *stack.shape[1:]), dtype=np.float32)
        wanted = indices[rows] - 1
        if wanted.min() < 0 or wanted.max() >= len(stack):
            raise ProcessingError(
                f"{path}: {name} has {len(stack)} images, the set asks for image {wanted.max() + 1}"
            )
        images[rows] = stack[wanted]
    if images is None:
        raise ProcessingError(f"{path}: the particle set is empty")
    ctf = None
    if "defocus_u" in table.columns:
        phase = table.columns.get("phase_shift")
        ctf = ParticleCTF(
            np.asarray(table.columns["defocus_u"], dtype=float),
            np.asarray(table.columns["defocus_v"], dtype=float),
            np.asarray(table.columns["defocus_angle"], dtype=float),
            np.asarray(phase, dtype=float) if phase is not None else np.zeros(len(names)),
            voltage=float(optics["voltage"][0]),
            spherical_aberration=float(optics["spherical_aberration"][0]),
            amplitude_contrast=float(optics["amplitude_contrast"][0]),
        )
    return ParticleData(table, images, ctf, float(optics["pixel_size"][0]))
