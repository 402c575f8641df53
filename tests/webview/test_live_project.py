"""Serving a project while runs are being recorded in it: the viewer opens the store read-only for each
request, so a run ingested by another writer appears on the next request, without a restart. A request
never opens the store while a writer has it open (RocksDB's read-only instances do not survive a
concurrent writer's compactions): it waits, and says so if the writer takes too long."""

from __future__ import annotations

from pathlib import Path

from scipion_kg.webview import ViewerConfig, create_app

from scipion_kg.project import Project
from scipion_kg.recorder import Parameter, Recorder, Software

from ..conftest import record_chain


def test_new_runs_appear_without_a_restart(project: Project, tmp_path: Path) -> None:
    with project.open_store(write=True) as store:
        chain = record_chain(project, store)
    client = create_app(ViewerConfig(project_dir=project.root, store_wait_seconds=0.3)).test_client()
    before = client.get("/api/runs").get_json()
    # A pipeline step recorded while the viewer is up (the writer holds the store open meanwhile).
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        with recorder.run(
            "skg:Masking", parameters=[Parameter("extend", 4)], software=[Software("scipion-kg", "t")]
        ) as run:
            mask = run.directory / "mask.mrc"
            mask.write_bytes(b"mask")
            run.add_output(mask, "mask", "skg:VolumeMask")
        during = client.get("/")
    assert during.status_code == 503 and "being written" in during.get_data(as_text=True)
    after = client.get("/api/runs").get_json()
    token = run.iri.rsplit("/", 1)[-1]
    assert token in client.get("/").get_data(as_text=True)
    assert len(after["runs"]) == len(before["runs"]) + 1 == len(chain.runs) + 1
    assert after["runs"][0]["iri"] == run.iri  # newest first
