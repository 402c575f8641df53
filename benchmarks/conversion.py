"""Conversion benchmark: a 1,000,000-particle RELION 3.1 STAR through scipion-kg and through starfile.

Side by side, same file, same run, each measurement in its own process (so peak memory is its own):

* scipion-kg: STAR -> cryoSPARC .cs -> STAR with ``scipion_kg.conversion.convert`` (input and output
  validated against the table shapes at each step, files written atomically);
* starfile (the library a user would otherwise use): ``starfile.read`` + ``starfile.write`` of the STAR;
* the compiled SHACL table checks alone on the 1,000,000 canonical rows.

    python benchmarks/conversion.py                  # 1,000,000 rows, 3 repeats (several minutes)
    python benchmarks/conversion.py --rows 100000    # quick look

Targets (2-core machine, medians): the scipion-kg round trip with validation >= 5x faster than starfile
read + write; compiled validation of 1M rows < 0.5 s; peak memory < 3 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipion_kg.converters import star
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.namespaces import SKG


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A RELION 3.1 particles STAR with 4 optics groups, CTF, pose and shifts (RELION's labels)."""
    rng = np.random.default_rng(seed)
    micrograph = rng.integers(1, 5001, rows)
    optics = {
        "rlnOpticsGroupName": np.array([f"opticsGroup{i}" for i in range(1, 5)]),
        "rlnOpticsGroup": np.arange(1, 5),
        "rlnMicrographOriginalPixelSize": np.full(4, 0.83),
        "rlnVoltage": np.full(4, 300.0),
        "rlnSphericalAberration": np.full(4, 2.7),
        "rlnAmplitudeContrast": np.full(4, 0.1),
        "rlnImagePixelSize": np.full(4, 1.245),
        "rlnImageSize": np.full(4, 256),
        "rlnImageDimensionality": np.full(4, 2),
    }
    defocus_u = np.round(rng.uniform(8000, 30000, rows), 6)
    particles = {
        "rlnCoordinateX": np.round(rng.uniform(100, 4000, rows), 6),
        "rlnCoordinateY": np.round(rng.uniform(100, 4000, rows), 6),
        "rlnAutopickFigureOfMerit": np.round(rng.normal(2, 1, rows), 6),
        "rlnClassNumber": rng.integers(1, 6, rows),
        "rlnAnglePsi": np.round(rng.uniform(-180, 180, rows), 6),
        "rlnImageName": np.char.add(
            np.char.add(
                np.char.zfill((np.arange(rows) % 300 + 1).astype(str), 6), "@Extract/job012/Movies/mic_"
            ),
            np.char.add(np.char.zfill(micrograph.astype(str), 5), ".mrcs"),
        ),
        "rlnMicrographName": np.char.add(
            np.char.add("MotionCorr/job002/Movies/mic_", np.char.zfill(micrograph.astype(str), 5)), ".mrc"
        ),
        "rlnOpticsGroup": (micrograph % 4) + 1,
        "rlnCtfMaxResolution": np.round(rng.uniform(2.5, 6, rows), 6),
        "rlnCtfFigureOfMerit": np.round(rng.uniform(0.05, 0.3, rows), 6),
        "rlnDefocusU": defocus_u,
        "rlnDefocusV": np.round(defocus_u - rng.uniform(0, 800, rows), 6),
        "rlnDefocusAngle": np.round(rng.uniform(-180, 180, rows), 6),
        "rlnCtfBfactor": np.zeros(rows),
        "rlnCtfScalefactor": np.ones(rows),
        "rlnPhaseShift": np.zeros(rows),
        "rlnAngleRot": np.round(rng.uniform(-180, 180, rows), 6),
        "rlnAngleTilt": np.round(rng.uniform(0, 180, rows), 6),
        "rlnOriginXAngst": np.round(rng.normal(0, 3, rows), 6),
        "rlnOriginYAngst": np.round(rng.normal(0, 3, rows), 6),
        "rlnRandomSubset": rng.integers(1, 3, rows),
    }
    document = RawDocument(
        SKG + "Format_RELIONStar",
        {"optics": RawBlock("optics", optics), "particles": RawBlock("particles", particles)},
        version="30001",
    )
    star.write(document, path)


def child_scipion(star_path: Path) -> None:
    from scipion_kg.conversion import convert

    cs_path = star_path.with_name("converted.cs")
    back_path = star_path.with_name("back.star")
    convert(star_path, cs_path, target_format="CryoSPARC")
    convert(cs_path, back_path, target_format="RELION31")


def child_starfile(star_path: Path) -> None:
    import starfile  # the tool users would otherwise use

    data = starfile.read(star_path)
    starfile.write(data, star_path.with_name("starfile_copy.star"))


def child_validate(star_path: Path) -> float:
    from scipion_kg.converters.engine import read_table

    from scipion_kg.table_validation import validate_table

    table, _ = read_table(star_path)
    start = time.perf_counter()
    report = validate_table(table)
    elapsed = time.perf_counter() - start
    if not report.conforms:
        raise SystemExit(f"the generated table violates the shapes: {report.summary()}")
    return elapsed


def run_child(kind: str, star_path: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(star_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "STAR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child[0], Path(args.child[1])
        start = time.perf_counter()
        measured = {"scipion": child_scipion, "starfile": child_starfile, "validate": child_validate}[kind](
            path
        )
        elapsed = measured if isinstance(measured, float) else time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
        print(json.dumps({"seconds": elapsed, "peak_gib": peak}))
        return

    with tempfile.TemporaryDirectory(prefix="skg-conversion-bench-") as folder:
        star_path = Path(folder) / "particles.star"
        start = time.perf_counter()
        generate(star_path, args.rows)
        size = star_path.stat().st_size / 1024**2
        print(
            f"generated {args.rows:,} particles ({size:.0f} MiB) in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        results: dict[str, list[dict[str, float]]] = {"scipion": [], "starfile": [], "validate": []}
        for repeat in range(args.repeats):
            for kind in results:
                results[kind].append(run_child(kind, star_path))
                last = results[kind][-1]
                print(
                    f"  #{repeat + 1} {kind:9} {last['seconds']:7.2f} s  peak {last['peak_gib']:.2f} GiB",
                    file=sys.stderr,
                )

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    scipion, starfile_s, validate = (
        median("scipion", "seconds"),
        median("starfile", "seconds"),
        median("validate", "seconds"),
    )
    print(f"\n{args.rows:,} particles, RELION 3.1 STAR, medians of {args.repeats} runs")
    scipion_peak, starfile_peak = median("scipion", "peak_gib"), median("starfile", "peak_gib")
    print(f"  scipion-kg STAR -> .cs -> STAR, validated   {scipion:8.2f} s   peak {scipion_peak:.2f} GiB")
    print(f"  starfile read + write                       {starfile_s:8.2f} s   peak {starfile_peak:.2f} GiB")
    print(f"  ratio starfile / scipion-kg                 {starfile_s / scipion:8.1f}x   (target >= 5x)")
    print(f"  compiled validation of the particle rows    {validate:8.3f} s   (target < 0.5 s)")
    met = starfile_s / scipion >= 5 and validate < 0.5 and scipion_peak < 3
    print("all targets met" if met else "TARGETS NOT MET")


if __name__ == "__main__":
    main()
