"""Provenance benchmark: record, ingest and query two synthetic 10,000-run projects.

(a) 500 independent 20-step pipelines; (b) one 10,000-step chain. Every run has 2 inputs, 2 outputs and
10 parameters and is recorded through the real recorder (one bundle file per run). Ingest and the upstream
lineage of the last output are timed on the on-disk Oxigraph store, side by side with the same bundles
parsed into an rdflib in-memory Dataset and the same SPARQL text run there.

    python benchmarks/provenance.py                 # full size (several minutes)
    python benchmarks/provenance.py --runs 400      # quick look

Targets (2-core machine, medians): ingest >= 50,000 triples/s; (a) lineage of one map < 20 ms;
(b) closure of the chain (~15,000 entities) < 400 ms on disk and >= 3x faster than rdflib in memory.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import rdflib

from scipion_kg.ingest import find_bundles, ingest_bundles
from scipion_kg.lineage import closure, lineage
from scipion_kg.project import Project
from scipion_kg.queries import fill_query, iri_term
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from scipion_kg.vocabulary import vocabulary

STEPS = [
    "MotionCorrection",
    "CTFEstimation",
    "ParticlePicking",
    "ParticleExtraction",
    "Classification2D",
    "InitialModel",
    "Classification3D",
    "Refinement3D",
    "PostProcessing",
    "Masking",
]


def parameters(index: int) -> list[Parameter]:
    return [
        Parameter("box_size", 64 + index % 7),
        Parameter("pixel_size", 1.05, "unit:ANGSTROM"),
        Parameter("low_pass", 20.0, "unit:ANGSTROM"),
        Parameter("iterations", 25),
        Parameter("symmetry", "C1"),
        Parameter("angular_step", 7.5, "unit:DEG"),
        Parameter("use_ctf", True),
        Parameter("seed", index),
        Parameter("threads", 2, significant=False),
        Parameter("classes", [1, 2, 3]),
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def progress(label: str, done: int, total: int, started: float) -> None:
    if done == total or done % max(1, total // 20) == 0:
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(
            f"\r  {label}: {done}/{total} runs ({rate:.0f} runs/s)",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )


def record_pipelines(project: Project, pipelines: int, length: int) -> Path:
    """(a): independent pipelines; each step uses both outputs of the step before."""
    recorder = Recorder(project, None)
    raw = project.root / "raw"
    raw.mkdir()
    started = time.perf_counter()
    last = raw
    total = pipelines * length
    for p in range(pipelines):
        inputs = [
            write(raw / f"p{p}_movies.star", f"movies {p}\n"),
            write(raw / f"p{p}_gain.mrc", f"gain {p}\n"),
        ]
        for s in range(length):
            index = p * length + s
            with recorder.run(
                f"skg:{STEPS[s % len(STEPS)]}",
                inputs=[Input(inputs[0], "main"), Input(inputs[1], "aux")],
                parameters=parameters(index),
                software=[Software("scipion-kg", "bench")],
                command_line="benchmark",
            ) as run:
                outputs = [
                    write(run.directory / "out_a.star", f"a {index}\n"),
                    write(run.directory / "out_b.star", f"b {index}\n"),
                ]
                run.add_output(outputs[0], "main", "skg:ParticleSet")
                run.add_output(outputs[1], "aux", "skg:DataFile")
            inputs = outputs
            last = outputs[0]
            progress("record (a)", index + 1, total, started)
    return last


def record_chain(project: Project, length: int) -> Path:
    """(b): one chain; every run uses output a of the run before and, on even steps, its output b,
    on odd steps a shared reference (so the closure holds about 1.5 entities per run)."""
    recorder = Recorder(project, None)
    reference = write(project.root / "reference.mrc", "reference map\n")
    previous = [write(project.root / "movies.star", "movies\n"), write(project.root / "gain.mrc", "gain\n")]
    started = time.perf_counter()
    for index in range(length):
        second = previous[1] if index % 2 == 0 else reference
        with recorder.run(
            f"skg:{STEPS[index % len(STEPS)]}",
            inputs=[Input(previous[0], "main"), Input(second, "aux")],
            parameters=parameters(index),
            software=[Software("scipion-kg", "bench")],
            command_line="benchmark",
        ) as run:
            previous = [
                write(run.directory / "out_a.star", f"a {index}\n"),
                write(run.directory / "out_b.star", f"b {index}\n"),
            ]
            run.add_output(previous[0], "main", "skg:ParticleSet")
            run.add_output(previous[1], "aux", "skg:DataFile")
        progress("record (b)", index + 1, length, started)
    return previous[0]


def median_time(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def in_deep_thread(function: Callable[[], object]) -> object:
    """Run ``function`` where deep recursion is allowed: rdflib evaluates property paths recursively,
    one Python frame per step, so a 10,000-step chain overflows the default limit and stack."""
    result: list[object] = []
    previous_limit = sys.getrecursionlimit()
    threading.stack_size(512 * 1024 * 1024)
    sys.setrecursionlimit(1_000_000)
    try:
        worker = threading.Thread(target=lambda: result.append(function()))
        worker.start()
        worker.join()
    finally:
        sys.setrecursionlimit(previous_limit)
        threading.stack_size(0)
    if not result:
        raise SystemExit("the rdflib query failed (see the traceback above)")
    return result[0]


def rdflib_dataset(bundles: list[Path]) -> rdflib.Dataset:
    dataset = rdflib.Dataset(default_union=True)
    for path in bundles:
        dataset.graph(rdflib.URIRef(path.parent.as_uri())).parse(path, format="turtle")
    return dataset


def bench_project(name: str, project: Project, last_output: Path, repeats: int) -> dict[str, float]:
    bundles = find_bundles(project)
    digest = project.hash_cache.digest(last_output)
    root = "https://w3id.org/scipion-kg/id/entity/sha256-" + digest.sha256
    results: dict[str, float] = {}

    ingest_times = []
    triples = 0
    for attempt in range(repeats):
        store_dir = project.store_path
        shutil.rmtree(store_dir)
        gc.collect()
        with project.open_store(write=True) as store:
            start = time.perf_counter()
            report = ingest_bundles(store, project, bundles, vocabulary())
            ingest_times.append(time.perf_counter() - start)
            triples = report.triples
        print(f"  ingest {name} #{attempt + 1}: {ingest_times[-1]:.2f} s", file=sys.stderr)
    results["triples"] = triples
    results["ingest_s"] = statistics.median(ingest_times)

    start = time.perf_counter()
    dataset = rdflib_dataset(bundles)
    results["rdflib_ingest_s"] = time.perf_counter() - start
    print(f"  rdflib parse {name}: {results['rdflib_ingest_s']:.2f} s", file=sys.stderr)

    query = fill_query("upstream-closure", root=iri_term(root))
    with project.open_store() as store:
        results["closure_s"], found = median_time(lambda: closure(store, root), repeats * 3)
        results["closure_entities"] = len(found[0])  # type: ignore[index]
        results["lineage_s"], full = median_time(lambda: lineage(store, root), repeats)
        results["lineage_runs"] = len(full.runs)  # type: ignore[attr-defined]
    results["rdflib_closure_s"], rows = median_time(
        lambda: in_deep_thread(lambda: list(dataset.query(query))), max(1, repeats)
    )
    entities = {row[0] for row in rows}  # type: ignore[attr-defined]
    if len(entities) != results["closure_entities"]:
        raise SystemExit(f"rdflib found {len(entities)} entities, Oxigraph {results['closure_entities']}")
    return results


def report(name: str, r: dict[str, float]) -> None:
    oxi_rate = r["triples"] / r["ingest_s"]
    rdf_rate = r["triples"] / r["rdflib_ingest_s"]
    print(f"\n{name}")
    print(f"  triples ingested             {r['triples']:>12,.0f}")
    print(f"  ingest, Oxigraph on disk     {r['ingest_s']:>10.2f} s  {oxi_rate:>10,.0f} triples/s")
    print(
        f"  parse, rdflib in memory      {r['rdflib_ingest_s']:>10.2f} s  {rdf_rate:>10,.0f} triples/s"
        f"   ratio {oxi_rate / rdf_rate:.1f}x"
    )
    print(f"  upstream closure ({r['closure_entities']:.0f} entities)")
    print(f"    Oxigraph on disk           {r['closure_s'] * 1000:>10.1f} ms")
    print(
        f"    rdflib in memory           {r['rdflib_closure_s'] * 1000:>10.1f} ms"
        f"   ratio {r['rdflib_closure_s'] / r['closure_s']:.1f}x"
    )
    print(f"  full lineage with details ({r['lineage_runs']:.0f} runs) {r['lineage_s'] * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000, help="runs per project (default 10000)")
    parser.add_argument("--pipeline-length", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (medians are reported)")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="scipion-kg-bench-"))
    try:
        a = Project.init(base / "pipelines")
        last_a = record_pipelines(a, args.runs // args.pipeline_length, args.pipeline_length)
        results_a = bench_project("(a)", a, last_a, args.repeats)
        a.close()
        b = Project.init(base / "chain")
        last_b = record_chain(b, args.runs)
        results_b = bench_project("(b)", b, last_b, args.repeats)
        b.close()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report(f"(a) {args.runs // args.pipeline_length} pipelines of {args.pipeline_length} steps", results_a)
    report(f"(b) one chain of {args.runs} steps", results_b)
    print("\ntargets: ingest >= 50,000 triples/s; (a) lineage < 20 ms; (b) closure < 400 ms and >= 3x rdflib")
    ok = (
        min(results_a["triples"] / results_a["ingest_s"], results_b["triples"] / results_b["ingest_s"])
        >= 50_000
        and results_a["closure_s"] < 0.020
        and results_b["closure_s"] < 0.400
        and results_b["rdflib_closure_s"] / results_b["closure_s"] >= 3
    )
    print("all targets met" if ok else "some target missed")


if __name__ == "__main__":
    main()
