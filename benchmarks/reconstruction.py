"""Reconstruction benchmark: the built-in direct Fourier inversion against ``relion_reconstruct``.

Particles with known poses, origin shifts and CTFs are simulated from a gemmi map of a real atomic model
(electron scattering factors, processing notes §2), written as an MRC stack plus a RELION 3.1 particles
STAR (with a ``data_optics`` block), and reconstructed side by side in one run by

* scipion-kg: ``tasks.builtin.reconstruct.reconstruct`` reading the stack memory-mapped, with the CTF
  given as per-particle parameters (evaluated only where it is used), in 2 threads (wall and CPU time of
  this process, all threads);
* RELION: ``relion_reconstruct --i p.star --o r.mrc --ctf --angpix A`` (CPU time of the child process).

Both maps are compared with the ground truth (FSC = 0.5 and 0.143). Medians over the repeats.

    python benchmarks/reconstruction.py                                   # 2,000 x 64 px, quick
    python benchmarks/reconstruction.py --particles 20000 --box 128 --repeats 3

Target (issue): built-in time <= 1.5 x RELION's, FSC(vs truth) = 0.5 within 0.3 Å of RELION's.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.tasks.builtin.ctf import ctf_2d
from scipion_kg.tasks.builtin.fourier import Projector, frequency_grid_2d, fsc, resolution_at
from scipion_kg.tasks.builtin.reconstruct import reconstruct
from scipion_kg.tasks.builtin.simulate import ground_truth_map

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPOSITORY.parent / "shared" / "data" / "models" / "1BD2.cif.gz"
VOLTAGE, CS, AMPLITUDE_CONTRAST = 300.0, 2.7, 0.1
CHUNK = 500


@dataclass(frozen=True)
class CTFTable:
    """Per-particle CTF parameters (``reconstruct.CTFParameterSet``): the CTF is then evaluated only at the
    frequencies the reconstruction inserts."""

    defocus_u: npt.NDArray[np.float64]
    defocus_v: npt.NDArray[np.float64]
    defocus_angle: npt.NDArray[np.float64]
    voltage: float = VOLTAGE
    spherical_aberration: float = CS
    amplitude_contrast: float = AMPLITUDE_CONTRAST


def simulate(
    truth: npt.NDArray[np.float32], n: int, pixel_size: float, snr: float, folder: Path, seed: int
) -> dict[str, npt.NDArray[np.float64]]:
    """Write ``particles.mrcs`` and ``particles.star``: I = CTF ⊛ P(x + o) + white noise at ``snr``."""
    rng = np.random.default_rng(seed)
    box = truth.shape[0]
    angles = np.column_stack(
        [rng.uniform(-180, 180, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)]
    )
    shifts = rng.uniform(-4.0, 4.0, (n, 2)) * pixel_size  # Å
    defocus_u = rng.uniform(10000.0, 25000.0, n)
    defocus_v = defocus_u - rng.uniform(0.0, 500.0, n)
    defocus_angle = rng.uniform(0.0, 180.0, n)
    matrices = pivot_matrices(angles)
    projector = Projector(truth)
    kx, ky = frequency_grid_2d(box, pixel_size)
    noise_sigma = 0.0
    with mrcfile.new_mmap(
        folder / "particles.mrcs", shape=(n, box, box), mrc_mode=2, overwrite=True
    ) as stack:
        stack.voxel_size = pixel_size
        for start in range(0, n, CHUNK):
            part = slice(start, min(start + CHUNK, n))
            spectra = projector.project_spectra(matrices[part])
            ctf = ctf_2d(
                kx, ky, defocus_u[part], defocus_v[part], defocus_angle[part], VOLTAGE, CS, AMPLITUDE_CONTRAST
            )
            # I(x) = P(x + o)  <=>  Î(k) = P̂(k) exp(+2πi k·o)
            phase = np.exp(2j * np.pi * (kx * shifts[part, 0, None, None] + ky * shifts[part, 1, None, None]))
            images = np.fft.fftshift(
                np.fft.ifft2(np.fft.ifftshift(spectra * ctf * phase, axes=(-2, -1))), axes=(-2, -1)
            ).real
            if start == 0:
                noise_sigma = float(images.std() / np.sqrt(snr))
            images += rng.normal(0.0, noise_sigma, images.shape)
            stack.data[part] = images.astype(np.float32)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(n)]
    with open(folder / "particles.star", "w") as star:
        star.write("\n# version 30001\n\ndata_optics\n\nloop_\n")
        optics = "OpticsGroupName OpticsGroup Voltage SphericalAberration AmplitudeContrast ImagePixelSize"
        optics += " ImageSize ImageDimensionality"
        for label in optics.split():
            star.write(f"_rln{label}\n")
        star.write(f"opticsGroup1 1 {VOLTAGE} {CS} {AMPLITUDE_CONTRAST} {pixel_size} {box} 2\n\n")
        star.write("\n# version 30001\n\ndata_particles\n\nloop_\n")
        labels = ("rlnImageName", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst",
                  "rlnOriginYAngst", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnOpticsGroup",
                  "rlnRandomSubset")  # fmt: skip
        for label in labels:
            star.write(f"_{label}\n")
        for i in range(n):
            star.write(
                f"{names[i]} {angles[i, 0]:.6f} {angles[i, 1]:.6f} {angles[i, 2]:.6f} "
                f"{shifts[i, 0]:.6f} {shifts[i, 1]:.6f} {defocus_u[i]:.3f} {defocus_v[i]:.3f} "
                f"{defocus_angle[i]:.4f} 1 {i % 2 + 1}\n"
            )
        star.write("\n")
    return {"matrices": matrices, "shifts": shifts, "u": defocus_u, "v": defocus_v, "angle": defocus_angle}


def run_builtin(
    folder: Path, meta: dict[str, npt.NDArray[np.float64]], pixel_size: float
) -> tuple[npt.NDArray[np.float32], float, float]:
    """Reconstruct from the files' data as a task would: memory-mapped stack, CTF from its parameters."""
    wall, cpu = time.perf_counter(), time.process_time()
    with mrcfile.mmap(folder / "particles.mrcs", mode="r") as stack:
        ctf = CTFTable(meta["u"], meta["v"], meta["angle"])
        result = reconstruct(stack.data, meta["matrices"], meta["shifts"], pixel_size, ctf)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_relion(folder: Path, pixel_size: float) -> tuple[npt.NDArray[np.float32], float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    output = folder / "relion.mrc"
    command = [
        "relion_reconstruct",
        "--i",
        "particles.star",
        "--o",
        output.name,
        "--ctf",
        "--angpix",
        str(pixel_size),
    ]
    with open(folder / "relion.log", "w") as log:
        completed = subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"relion_reconstruct failed with status {completed.returncode}; see {folder / 'relion.log'}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with mrcfile.open(output) as handle:
        return np.asarray(handle.data, dtype=np.float32).copy(), wall, cpu


def measure(
    name: str, runner: Callable[[], tuple[npt.NDArray[np.float32], float, float]], repeats: int
) -> tuple[npt.NDArray[np.float32], float, float]:
    walls, cpus = [], []
    result = np.zeros(0, dtype=np.float32)
    for repeat in range(repeats):
        result, wall, cpu = runner()
        walls.append(wall)
        cpus.append(cpu)
        print(f"  {name} run {repeat + 1}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
    return result, statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=None, help="Å/px (default 1.3 x 128 / box)")
    parser.add_argument(
        "--snr", type=float, default=0.01, help="per-pixel signal/noise variance (default 0.01)"
    )
    parser.add_argument("--bfactor", type=float, default=30.0, help="atomic B-factor of the truth map, Å²")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="atomic model (.cif/.cif.gz/.pdb)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the simulated data here")
    parser.add_argument("--reuse", action="store_true", help="reuse the same simulation kept in --workdir")
    parser.add_argument("--skip-relion", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(
            f"atomic model {args.model} not found; pass --model PATH (e.g. 1BD2.cif.gz from mdanalysistests)"
        )
    if not args.skip_relion and shutil.which("relion_reconstruct") is None:
        sys.exit("relion_reconstruct is not on PATH (apt-get install relion), or pass --skip-relion")
    pixel_size = args.pixel_size or 1.3 * 128 / args.box
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="skg-reconstruction-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        settings = np.array([args.particles, args.box, pixel_size, args.snr, args.bfactor, args.seed])
        saved = folder / "simulation.npz"
        if args.reuse and saved.is_file() and np.array_equal(np.load(saved)["settings"], settings):
            print(f"reusing the simulation in {folder}")
            with np.load(saved) as stored:
                truth = stored["truth"]
                meta = {key: stored[key] for key in ("matrices", "shifts", "u", "v", "angle")}
        else:
            print(f"simulating {args.particles} particles of {args.box} px at {pixel_size:.3f} Å/px, "
                  f"SNR {args.snr}")  # fmt: skip
            start = time.perf_counter()
            truth = ground_truth_map(args.model, args.box, pixel_size, args.bfactor)
            meta = simulate(truth, args.particles, pixel_size, args.snr, folder, args.seed)
            arrays: dict[str, Any] = {"settings": settings, "truth": truth, **meta}
            np.savez(saved, **arrays)
            print(f"  simulation: {time.perf_counter() - start:.1f} s wall, data in {folder}")
        rows = []
        built, wall, cpu = measure("built-in", lambda: run_builtin(folder, meta, pixel_size), args.repeats)
        rows.append(("scipion-kg built-in", wall, cpu, built))
        if not args.skip_relion:
            relion, wall, cpu = measure(
                "relion_reconstruct", lambda: run_relion(folder, pixel_size), args.repeats
            )
            rows.append(("relion_reconstruct", wall, cpu, relion))
        print()
        print(f"{args.particles} particles x {args.box} px, {pixel_size:.3f} Å/px, median of {args.repeats}")
        print(f"{'program':<22}{'wall s':>9}{'CPU s':>9}{'FSC=0.5 Å':>12}{'FSC=0.143 Å':>13}")
        results = []
        for name, wall, cpu, volume in rows:
            curve = fsc(volume, truth)
            at_half = resolution_at(curve, 0.5, args.box, pixel_size)
            at_0143 = resolution_at(curve, 0.143, args.box, pixel_size)
            results.append((wall, cpu, at_half))
            print(f"{name:<22}{wall:>9.1f}{cpu:>9.1f}{at_half:>12.2f}{at_0143:>13.2f}")
        if len(results) == 2:
            (bw, bc, br), (rw, rc, rr) = results
            print(f"\nbuilt-in / RELION: wall {bw / rw:.2f}x, CPU {bc / rc:.2f}x; FSC=0.5 resolution "
                  f"difference {br - rr:+.2f} Å (target: time <= 1.5x, |diff| <= 0.3 Å)")  # fmt: skip
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
