"""Step ``simulate``: a synthetic single-particle data set with known answers, from a real atomic model.

Computes the ground-truth map (gemmi, electron scattering factors), simulates movies with drift, an
astigmatic CTF per micrograph and shot noise with particles at known positions and poses, and writes a
SerialEM-style ``.mdoc`` beside each movie (pixel size, voltage, dose, frames) so the import step reads
the acquisition as it would from a microscope. The ground truth (map, positions, poses, defocus, drift)
is written beside the movies and recorded as outputs of the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.mrc import write_map

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ProcessingError

from .images import write_mrc
from .parameters import ParameterSpec, Value
from .software import builtin_software
from .step import Backend, Port, StepContext, StepTask
from .tables import optics_table, write_star

__all__ = ["TASK", "SimulationTask", "packaged_model"]


def packaged_model() -> Path:
    """The atomic model shipped with scipion-kg for the demo (PDB 1BD2, CC0)."""
    import scipion_kg

    return Path(scipion_kg.__file__).resolve().parent / "data" / "models" / "1BD2-atoms.cif.gz"


def _mdoc(
    movie: str, pixel_size: float, voltage: float, dose_per_frame: float, frames: int, size: int
) -> str:
    # SerialEM autodoc layout for a single-exposure movie (one [ZValue] section).
    return (
        f"PixelSpacing = {pixel_size:g}\n"
        f"Voltage = {voltage:g}\n"
        f"ImageFile = {movie}\n"
        f"ImageSize = {size} {size}\n"
        "DataMode = 2\n\n"
        "[T = SerialEM: simulated by scipion-kg]\n\n"
        "[ZValue = 0]\n"
        f"PixelSpacing = {pixel_size:g}\n"
        f"ExposureDose = {dose_per_frame * frames:g}\n"
        f"NumSubFrames = {frames}\n"
        f"SubFramePath = {movie}\n"
        f"Voltage = {voltage:g}\n"
    )


def run_builtin(context: StepContext) -> None:
    from .builtin import simulate

    preset = str(context.value("size")).upper()
    if not hasattr(simulate, preset):
        raise ProcessingError(f"step {context.step_id}: size must be small or standard, got {preset.lower()}")
    settings = getattr(simulate, preset)
    settings = type(settings)(**{**settings.__dict__, "seed": int(context.value("seed"))})
    model = context.optional_input("model") or packaged_model()
    bfactor = float(context.value("bfactor"))
    volume = simulate.ground_truth_map(model, settings.box, settings.pixel_size, bfactor)
    directory = context.directory
    truth_map = directory / "ground_truth.mrc"
    write_map(truth_map, volume, settings.pixel_size)
    context.add_output(truth_map, "ground_truth_map", {"skg:pixelSize": settings.pixel_size})

    movies_dir = directory / "movies"
    particles: dict[str, list[Any]] = {
        k: [] for k in ("mic", "x", "y", "rot", "tilt", "psi", "du", "dv", "da")
    }
    micrographs: dict[str, list[Any]] = {k: [] for k in ("mic", "du", "dv", "da")}
    drifts: dict[str, list[list[float]]] = {}
    for index, movie in enumerate(
        simulate.simulate_movies(volume, settings, progress=context.progress), start=1
    ):
        name = f"movie_{index:03d}"
        movie_path = movies_dir / f"{name}.mrc"
        write_mrc(movie_path, movie.frames, settings.pixel_size)
        mdoc_path = movies_dir / f"{name}.mrc.mdoc"
        atomic_write_bytes(
            mdoc_path,
            _mdoc(
                movie_path.name,
                settings.pixel_size,
                settings.voltage,
                settings.dose_per_frame,
                settings.n_frames,
                settings.micrograph_size,
            ).encode(),
        )
        context.add_output(movie_path, "movie")
        context.add_output(mdoc_path, "mdoc")
        relative = context.relative(movie_path)
        drifts[relative] = np.asarray(movie.drift, dtype=float).round(4).tolist()
        count = len(movie.x)
        particles["mic"] += [relative] * count
        particles["x"] += list(movie.x)
        particles["y"] += list(movie.y)
        particles["rot"] += list(movie.rot)
        particles["tilt"] += list(movie.tilt)
        particles["psi"] += list(movie.psi)
        particles["du"] += [movie.defocus_u] * count
        particles["dv"] += [movie.defocus_v] * count
        particles["da"] += [movie.defocus_angle] * count
        micrographs["mic"].append(relative)
        micrographs["du"].append(movie.defocus_u)
        micrographs["dv"].append(movie.defocus_v)
        micrographs["da"].append(movie.defocus_angle)

    optics = dict(
        voltage=settings.voltage,
        spherical_aberration=settings.spherical_aberration,
        amplitude_contrast=settings.amplitude_contrast,
    )
    truth_particles = Table(
        "particles",
        {
            "micrograph_name": np.array(particles["mic"]),
            "coordinate_x": np.array(particles["x"], dtype=float),
            "coordinate_y": np.array(particles["y"], dtype=float),
            "angle_rot": np.array(particles["rot"], dtype=float),
            "angle_tilt": np.array(particles["tilt"], dtype=float),
            "angle_psi": np.array(particles["psi"], dtype=float),
            "defocus_u": np.array(particles["du"], dtype=float),
            "defocus_v": np.array(particles["dv"], dtype=float),
            "defocus_angle": np.array(particles["da"], dtype=float),
            "optics_group": np.ones(len(particles["mic"]), dtype=np.int64),
        },
        related={"optics": optics_table(**optics, pixel_size=settings.pixel_size)},
    )
    path = directory / "ground_truth_particles.star"
    write_star(path, truth_particles)
    context.add_output(path, "truth_particles", {"skg:itemCount": len(particles["mic"])})
    truth_micrographs = Table(
        "micrographs",
        {
            "micrograph_name": np.array(micrographs["mic"]),
            "defocus_u": np.array(micrographs["du"], dtype=float),
            "defocus_v": np.array(micrographs["dv"], dtype=float),
            "defocus_angle": np.array(micrographs["da"], dtype=float),
            "optics_group": np.ones(len(micrographs["mic"]), dtype=np.int64),
        },
        related={"optics": optics_table(**optics, micrograph_pixel_size=settings.pixel_size)},
    )
    path = directory / "ground_truth_micrographs.star"
    write_star(path, truth_micrographs)
    context.add_output(path, "truth_micrographs")
    summary = {
        "model": model.name,
        "bfactor": bfactor,
        "settings": {k: v for k, v in settings.__dict__.items()},
        "drift_px": drifts,
    }
    path = directory / "ground_truth.json"
    atomic_write_bytes(path, (json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n").encode())
    context.add_output(path, "truth")


class SimulationTask(StepTask):
    name = "simulate"
    step_class = "skg:Simulation"
    input_ports = (Port("model", "skg:AtomicModel", optional=True, help="default: the shipped PDB 1BD2"),)
    output_ports = (
        Port("movie", "skg:Movie", many=True),
        Port("mdoc", "skg:MetadataFile", many=True),
        Port("ground_truth_map", "skg:Map"),
        Port("truth_particles", "skg:ParticleSet"),
        Port("truth_micrographs", "skg:MicrographSet"),
        Port("truth", "skg:MetadataFile"),
    )
    parameter_specs = (
        ParameterSpec("size", "str", "small", help="preset: small or standard"),
        ParameterSpec("seed", "int", 1, help="random seed of the whole simulation"),
        ParameterSpec("bfactor", "float", 30.0, "skg:SquareAngstrom", help="B-factor of every atom"),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software(
                "gemmi electron-scattering map; Fourier-slice projection, CTF, drift, Poisson noise"
            ),
        ),
    )

    @classmethod
    def check_inputs(
        cls,
        step_id: str,
        parameters: Mapping[str, Value | None],
        files: Mapping[str, list[Path]],
        upstream: Mapping[str, Any],
    ) -> dict[str, Any]:
        if parameters["size"] not in ("small", "standard"):
            raise ProcessingError(
                f"step {step_id}: size must be small or standard, got {parameters['size']!r}"
            )
        from .builtin import simulate

        settings = getattr(simulate, str(parameters["size"]).upper())
        return {
            **upstream,
            "micrograph_size": (settings.micrograph_size, settings.micrograph_size),
            "pixel_size": settings.pixel_size,
            "voltage": settings.voltage,
            "dose_per_frame": settings.dose_per_frame,
        }


TASK = SimulationTask
