"""Recording runs: a 5-step chain, lineage both ways, failures, kills, identities and bad terms."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scipion_kg.errors import RecordError, UnknownTermError
from scipion_kg.ingest import find_bundles, ingest_bundles, parse_bundle
from scipion_kg.lineage import closure, lineage
from scipion_kg.namespaces import PROV, SKG, entity_iri
from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from scipion_kg.store import Store
from scipion_kg.vocabulary import vocabulary

from .conftest import Chain, record_chain


def test_upstream_of_the_last_output_is_the_whole_chain(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["particles"], "upstream")
    assert set(result.entities) == {
        chain.entities[n] for n in ("particles", "micrographs", "coords", "ctf", "movies")
    }
    assert set(result.runs) == set(chain.runs.values())


def test_upstream_of_a_branch_stops_at_its_own_inputs(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["coords"], "upstream")
    assert set(result.entities) == {chain.entities[n] for n in ("coords", "micrographs", "movies")}
    assert set(result.runs) == {chain.runs[n] for n in ("pick", "motion", "import")}


def test_downstream_of_micrographs_is_everything_made_from_them(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["micrographs"], "downstream")
    assert set(result.entities) == {chain.entities[n] for n in ("micrographs", "ctf", "coords", "particles")}
    assert set(result.runs) == {chain.runs[n] for n in ("ctf", "pick", "extract")}


def test_lineage_carries_parameters_software_roles_and_hashes(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["particles"], "upstream")
    ctf = result.runs[chain.runs["ctf"]]
    assert ctf.step == SKG + "CTFEstimation"
    assert ctf.status == SKG + "Succeeded"
    parameters = {p.name: p for p in ctf.parameters}
    assert parameters["max_resolution"].value == 5.0
    assert parameters["max_resolution"].unit == "http://qudt.org/vocab/unit/ANGSTROM"
    assert parameters["threads"].significant is False
    assert [{k: v for k, v in s.items() if k != "agent"} for s in ctf.software] == [
        {"name": "scipion-kg", "version": "test", "algorithm": "ctf"}
    ]
    assert ctf.used == [(chain.entities["micrographs"], "micrographs")]
    assert ctf.generated == [(chain.entities["ctf"], "ctf")]
    extract = result.runs[chain.runs["extract"]]
    assert sorted(str(role) for _, role in extract.used) == ["coordinates", "ctf", "micrographs"]
    particles = result.entities[chain.entities["particles"]]
    import hashlib

    content = chain.files["particles"].read_bytes()
    assert particles.sha256 == hashlib.sha256(content).hexdigest()
    assert particles.size == len(content)
    assert SKG + "ParticleSet" in particles.classes
    assert particles.paths == [
        chain.files["particles"].relative_to(chain.files["movies"].parents[1]).as_posix()
    ]


def test_ingesting_the_same_bundles_again_changes_nothing(
    chain: Chain, project: Project, store: Store
) -> None:
    before = sorted(str(q) for q in store.quads())
    report = ingest_bundles(store, project, find_bundles(project), vocabulary())
    assert (report.ingested, report.replaced, report.unchanged) == (0, 0, 5)
    assert sorted(str(q) for q in store.quads()) == before


def test_a_fresh_store_ingesting_all_bundles_gets_the_same_graph(
    chain: Chain, project: Project, store: Store, tmp_path: Path
) -> None:
    from scipion_kg.store_oxigraph import OxigraphStore

    other = OxigraphStore(tmp_path / "other-store")
    first = ingest_bundles(other, project, find_bundles(project), vocabulary())
    second = ingest_bundles(other, project, find_bundles(project), vocabulary())
    assert (first.ingested, second.unchanged) == (5, 5)
    assert closure(other, chain.entities["particles"])[0] == closure(store, chain.entities["particles"])[0]
    other.close()


def test_run_identity_follows_step_significant_parameters_and_inputs(project: Project) -> None:
    recorder = Recorder(project, None)
    source = project.root / "in.star"
    source.write_text("data_\n")

    def record(**parameters: float | str) -> str:
        params = [Parameter(k, v, significant=not k.startswith("ns_")) for k, v in parameters.items()]
        with recorder.run("skg:Masking", inputs=[Input(source, "map")], parameters=params) as run:
            pass
        return run.iri

    assert record(radius=10) == record(radius=10)
    assert record(radius=10, ns_threads=1) == record(radius=10, ns_threads=8)
    assert record(radius=10) != record(radius=11)
    source.write_text("data_changed\n")
    assert record(radius=10) != record(radius=11)


def test_a_failed_run_registers_its_failure_and_no_output(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    with (
        pytest.raises(ZeroDivisionError),
        recorder.run("skg:Refinement3D", parameters=[Parameter("iterations", 3)]) as run,
    ):
        half = run.directory / "half1.mrc"
        half.write_bytes(b"partial")
        run.add_output(half, "half_map_1", "skg:HalfMap")
        1 / 0  # noqa: B018
    assert run.bundle_path is not None and run.bundle_path.is_file()
    rows = store.select(
        f"SELECT ?status ?error WHERE {{ <{run.iri}> <{SKG}runStatus> ?status ; <{SKG}errorMessage> ?error }}"
    )
    assert [(str(r["status"]), str(r["error"])) for r in rows] == [
        (SKG + "Failed", "ZeroDivisionError: division by zero")
    ]
    import hashlib

    partial = entity_iri(hashlib.sha256(b"partial").hexdigest())
    assert not store.ask(f"ASK {{ <{partial}> ?p ?o }}")
    assert not store.ask(f"ASK {{ ?e <{PROV}wasGeneratedBy> <{run.iri}> }}")


def test_a_missing_output_fails_the_run(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    with pytest.raises(RecordError, match="no such file"), recorder.run("skg:Masking") as run:
        run.add_output(run.directory / "never-written.mrc", "mask", "skg:Mask")
    assert store.ask(f"ASK {{ <{run.iri}> <{SKG}runStatus> <{SKG}Failed> }}")


def test_a_rerun_that_succeeds_replaces_the_failed_record(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    with pytest.raises(RuntimeError), recorder.run("skg:Masking", parameters=[Parameter("radius", 3)]):
        raise RuntimeError("out of memory")
    with recorder.run("skg:Masking", parameters=[Parameter("radius", 3)]) as run:
        mask = run.directory / "mask.mrc"
        mask.write_bytes(b"mask")
        run.add_output(mask, "mask", "skg:Mask")
    rows = store.select(f"SELECT ?status WHERE {{ <{run.iri}> <{SKG}runStatus> ?status }}")
    assert [str(r["status"]) for r in rows] == [SKG + "Succeeded"]
    assert not store.ask(f"ASK {{ <{run.iri}> <{SKG}errorMessage> ?e }}")


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from scipion_kg.project import Project
    from scipion_kg.recorder import Recorder

    project = Project.find(Path(sys.argv[1]))
    with project.open_store(write=True) as store:
        with Recorder(project, store).run("skg:Reconstruction") as run:
            out = run.directory / "map.mrc"
            out.write_bytes(b"half-written map")
            run.add_output(out, "map", "skg:Map")
            print(run.directory, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_run_registers_nothing(project: Project) -> None:
    with project.open_store(write=True) as store:
        before = store.count()
    result = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(project.root)], capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL
    run_directory = Path(result.stdout.strip())
    assert (run_directory / "map.mrc").is_file()
    assert not (run_directory / "provenance.ttl").exists()
    # The killed writer's lock died with it: the project opens for writing again, nothing was added.
    with project.open_store(write=True) as store:
        assert store.count() == before
        report = ingest_bundles(store, project, find_bundles(project), vocabulary())
        assert report.ingested == 0
        assert store.count() == before


@pytest.mark.parametrize(
    ("step", "kwargs", "term"),
    [
        ("skg:Refinment3D", {}, "skg:Refinment3D"),
        ("skg:Map", {}, "skg:Map"),
        ("skg:Masking", {"parameters": [Parameter("radius", 3, "unit:FURLONG")]}, "unit:FURLONG"),
    ],
)
def test_unknown_terms_are_refused_before_anything_runs(
    project: Project, store: Store, step: str, kwargs: dict[str, object], term: str
) -> None:
    before = store.count()
    with pytest.raises(UnknownTermError, match=term), Recorder(project, store).run(step, **kwargs):  # type: ignore[arg-type]
        pytest.fail("the body must not run")
    assert store.count() == before
    assert list(project.runs_dir.iterdir()) == []


def test_unknown_data_class_and_format_name_the_term(project: Project) -> None:
    recorder = Recorder(project, None)
    path = project.root / "x.mrc"
    path.write_bytes(b"x")
    with pytest.raises(UnknownTermError, match="skg:Mapp"):
        recorder.entity(path, "map", "skg:Mapp", None)
    with pytest.raises(UnknownTermError, match="skg:Format_Nope"):
        recorder.entity(path, "map", "skg:Map", "skg:Format_Nope")


def test_bundles_are_self_contained_and_parse(chain: Chain, project: Project) -> None:
    bundles = find_bundles(project)
    assert len(bundles) == 5
    runs = {parse_bundle(path, vocabulary()).run for path in bundles}
    assert runs == set(chain.runs.values())
    assert not any(path.name.endswith(".tmp") for path in project.runs_dir.rglob("*"))


def test_recording_without_a_store_then_ingesting_gives_the_same_lineage(project: Project) -> None:
    chain = record_chain(project, None)
    with project.open_store(write=True) as store:
        report = ingest_bundles(store, project, find_bundles(project), vocabulary())
        assert report.ingested == 5
        assert set(lineage(store, chain.entities["particles"]).runs) == set(chain.runs.values())


def test_keyboard_interrupt_is_recorded_as_a_failure(project: Project, store: Store) -> None:
    with pytest.raises(KeyboardInterrupt), Recorder(project, store).run("skg:Masking") as run:
        raise KeyboardInterrupt
    assert store.ask(
        f'ASK {{ <{run.iri}> <{SKG}runStatus> <{SKG}Failed> ; <{SKG}errorMessage> "KeyboardInterrupt" }}'
    )


def test_software_is_recorded_with_its_version(project: Project, store: Store) -> None:
    with Recorder(project, store).run("skg:Masking", software=[Software("RELION", "3.1.3")]) as run:
        pass
    rows = store.select(
        f"SELECT ?v WHERE {{ <{run.iri}> <{PROV}wasAssociatedWith> ?a . ?a <{SKG}softwareVersion> ?v }}"
    )
    assert [str(r["v"]) for r in rows] == ["3.1.3"]


def test_described_nodes_are_recorded_with_a_successful_run_only(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    with recorder.run("skg:Deposition", software=[Software("scipion-kg", "t")]) as run:
        node = run.describe(
            "field/em_buffer/1/pH",
            "skg:DepositionField",
            {"skg:fieldValue": "7.4", "skg:evidenceKind": "metadata", "skg:fieldOfDeposition": run.iri},
        )
        with pytest.raises(RecordError, match="not valid"):
            run.describe("../escape", "skg:DepositionField", {})
        with pytest.raises(UnknownTermError):
            run.describe("field/x", "skg:NoSuchClass", {})
        with pytest.raises(UnknownTermError):
            run.describe("field/y", "skg:DepositionField", {"skg:noSuchProperty": 1})
    assert node == f"{run.iri}/field/em_buffer/1/pH"
    rows = store.select(
        f"PREFIX skg: <{SKG}> SELECT ?v ?d WHERE {{ <{node}> skg:fieldValue ?v ; skg:fieldOfDeposition ?d }}"
    )
    assert [(str(row["v"]), str(row["d"])) for row in rows] == [("7.4", run.iri)]
    failing = recorder.run("skg:Deposition", parameters=[Parameter("n", 2)])
    with pytest.raises(RuntimeError), failing as failed:
        failed.describe("field/z", "skg:DepositionField", {"skg:fieldValue": "lost"})
        raise RuntimeError("boom")
    assert not store.ask(f"ASK {{ <{failed.iri}/field/z> ?p ?o }}")


def test_two_outputs_with_the_same_bytes_are_one_entity_listed_in_both_roles(
    project: Project, store: Store
) -> None:
    # A 2D selection that keeps every particle writes the same bytes twice: one content-addressed entity,
    # generated in two roles, and the run's summary finds it under each.
    from scipion_kg.run_summary import read_run_summary

    recorder = Recorder(project, store)
    with recorder.run("skg:Classification2D") as run:
        for name, role in (("particles.star", "particles"), ("selected.star", "selected")):
            path = run.directory / name
            path.write_text("data_particles\n")
            run.add_output(path, role, "skg:ParticleSet")
    assert run.bundle_path is not None
    summary = read_run_summary(run.bundle_path)
    assert [f.role for f in summary.generated] == ["particles", "selected"]
    assert summary.outputs("selected")[0].sha256 == summary.outputs("particles")[0].sha256
