"""Viewer benchmark: a 10,000-run project served by the Flask viewer.

The project holds 500 independent 20-step pipelines (10,000 runs recorded through the real recorder and
ingested into the on-disk store) plus one 100-step chain whose last output has a lineage of about 300
nodes. Timed, median of several requests, server time (Flask's test client, no network):
  - the overview page (/), the map's entity page, its lineage page and the lineage graph JSON;
  - side by side, what a user would otherwise run: ``scipion-kg runs`` and ``scipion-kg lineage`` in a
    fresh process (the ratio says how the page compares with the command line).
Then, in real headless Chromium (Playwright driving the system browser) against a real server: the time
to draw the 300-node lineage graph and the time of one pan/zoom frame.

    python benchmarks/webview.py               # full size (several minutes: recording 10,000 runs)
    python benchmarks/webview.py --runs 1000   # quick look

Targets: overview and lineage page < 1 s (median, server time); the 300-node graph stays interactive
(draw < 2 s, a pan/zoom frame < 50 ms).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from provenance import record_chain, record_pipelines
from scipion_kg.webview import ViewerConfig, create_app
from scipion_kg.webview.links import entity_token
from werkzeug.serving import make_server

from scipion_kg.ingest import find_bundles, ingest_bundles
from scipion_kg.namespaces import entity_iri
from scipion_kg.ontology_graph import sync_ontology_graph
from scipion_kg.project import Project
from scipion_kg.vocabulary import vocabulary

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm caches (templates, ontology)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def build(base: Path, runs: int) -> tuple[Project, Path]:
    project = Project.init(base / "project")
    record_pipelines(project, runs // 20, 20)
    chain_end = record_chain(project, 100)  # seed files at the root, runs beside the pipelines'
    started = time.perf_counter()
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        report = ingest_bundles(store, project, find_bundles(project), vocabulary())
    print(f"  ingest: {report.triples} triples in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return project, chain_end


def cli_seconds(arguments: list[str], repeats: int) -> float:
    return median_seconds(
        lambda: subprocess.run(["scipion-kg", *arguments], check=True, capture_output=True), repeats
    )


def browser_figures(app_factory: Callable[[], object], token: str) -> dict[str, float] | None:
    executable = next((path for path in CHROMIUM_CANDIDATES if Path(path).exists()), None)
    if executable is None:
        print("  no chromium found: browser figures skipped", file=sys.stderr)
        return None
    from playwright.sync_api import sync_playwright

    server = make_server("127.0.0.1", 0, app_factory(), threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/lineage/{token}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            draws, frames = [], []
            for _ in range(5):
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("[data-node-id]")
                draws.append(time.perf_counter() - started)
                frames.append(
                    page.evaluate(
                        """() => new Promise(resolve => {
                            const svg = document.querySelector('svg');
                            const t0 = performance.now();
                            svg.dispatchEvent(new WheelEvent('wheel', {deltaY: -120, clientX: 400,
                                clientY: 300, bubbles: true, cancelable: true}));
                            requestAnimationFrame(() => resolve(performance.now() - t0));
                        })"""
                    )
                )
            nodes = page.locator("[data-node-id]").count()
            browser.close()
    finally:
        server.shutdown()
    return {"draw_s": statistics.median(draws), "frame_ms": statistics.median(frames), "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="scipion-kg-webview-"))
    try:
        project, chain_end = build(base, args.runs)
        digest = project.hash_cache.digest(chain_end)
        token = entity_token(entity_iri(digest.sha256))
        assert token is not None

        def app() -> object:
            return create_app(ViewerConfig(project_dir=project.root))

        client = create_app(ViewerConfig(project_dir=project.root)).test_client()
        pages = {
            "overview /": "/",
            "entity page": f"/entity/{token}",
            "lineage page": f"/lineage/{token}",
            "lineage graph JSON": f"/lineage/{token}/graph.json",
        }
        timings = {}
        for label, url in pages.items():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            timings[label] = median_seconds(partial(client.get, url), args.repeats)
        runs_cli = cli_seconds(["runs", "--project", str(project.root)], 3)
        lineage_cli = cli_seconds(["lineage", str(chain_end), "--project", str(project.root)], 3)
        figures = browser_figures(app, token)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    timings["lineage page + graph JSON"] = timings["lineage page"] + timings["lineage graph JSON"]
    print(f"\nproject: {args.runs} pipeline runs + a 100-step chain; medians of {args.repeats} requests")
    for label, seconds in timings.items():
        print(f"  {label:22} {seconds * 1000:8.1f} ms")
    speedup = runs_cli / timings["overview /"]
    print(f"  scipion-kg runs (CLI)  {runs_cli * 1000:8.1f} ms  -> overview is {speedup:.1f}x faster")
    print(
        f"  scipion-kg lineage     {lineage_cli * 1000:8.1f} ms  -> lineage page is "
        f"{lineage_cli / timings['lineage page + graph JSON']:.1f}x faster (page and its graph JSON)"
    )
    if figures:
        print(
            f"  browser: {figures['nodes']:.0f} nodes drawn in {figures['draw_s'] * 1000:.0f} ms; "
            f"one zoom frame {figures['frame_ms']:.1f} ms"
        )
    ok = timings["overview /"] < 1.0 and timings["lineage page + graph JSON"] < 1.0
    if figures:
        ok = ok and figures["draw_s"] < 2.0 and figures["frame_ms"] < 50.0
    print("targets met" if ok else "some target missed")


if __name__ == "__main__":
    main()
