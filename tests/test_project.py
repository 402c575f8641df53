"""Projects: layout, discovery as git does it, the write lock, bad directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scipion_kg.errors import ProjectError, ProjectLockedError
from scipion_kg.project import Project


def test_init_creates_the_layout_and_an_on_disk_store(tmp_path: Path) -> None:
    project = Project.init(tmp_path / "p")
    assert (project.root / "runs").is_dir()
    assert (project.root / ".scipion-kg" / "project.json").is_file()
    assert (project.root / ".scipion-kg" / "store").is_dir()
    with project.open_store() as store:
        assert store.ask("ASK { <https://w3id.org/scipion-kg/ontology#Map> a ?kind }")


def test_find_walks_up_from_a_subdirectory(project: Project) -> None:
    deep = project.root / "runs" / "a" / "b"
    deep.mkdir(parents=True)
    assert Project.find(start=deep).root == project.root
    assert Project.find(explicit=project.root).root == project.root


def test_a_directory_that_is_not_a_project_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not inside a scipion-kg project"):
        Project.find(start=tmp_path)
    with pytest.raises(ProjectError, match="is not a scipion-kg project"):
        Project.find(explicit=tmp_path)


def test_init_refuses_an_existing_or_nested_project(project: Project) -> None:
    with pytest.raises(ProjectError, match="already a scipion-kg project"):
        Project.init(project.root)
    with pytest.raises(ProjectError, match="cannot be nested"):
        Project.init(project.root / "runs" / "inner")


def test_a_broken_configuration_names_the_file(project: Project) -> None:
    config = project.root / ".scipion-kg" / "project.json"
    config.write_text("{not json")
    with pytest.raises(ProjectError, match=r"project\.json"):
        Project.find(explicit=project.root)


def test_opening_twice_for_writing_fails_in_process(project: Project) -> None:
    with (
        project.open_store(write=True),
        pytest.raises(ProjectLockedError, match="already open for writing"),
        project.open_store(write=True),
    ):
        pass


def test_opening_twice_for_writing_fails_across_processes(project: Project) -> None:
    script = (
        "import sys\nfrom pathlib import Path\nfrom scipion_kg.project import Project\n"
        "from scipion_kg.errors import ProjectLockedError\n"
        "try:\n    Project.find(Path(sys.argv[1])).open_store(write=True).__enter__()\n"
        "except ProjectLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    with project.open_store(write=True):
        result = subprocess.run(
            [sys.executable, "-c", script, str(project.root)], capture_output=True, text=True
        )
    assert result.returncode == 3, result.stderr
    assert "already open for writing" in result.stdout and "pid" in result.stdout
    # Once released, another process can write.
    result = subprocess.run([sys.executable, "-c", script, str(project.root)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readers_work_while_a_writer_holds_the_project(project: Project) -> None:
    with project.open_store(write=True) as writer, project.open_store() as reader:
        assert reader.read_only
        assert reader.ask("ASK { ?s ?p ?o }")
        assert writer.ask("ASK { ?s ?p ?o }")


def test_a_writer_waits_for_a_reader_of_the_store_and_a_reader_for_a_writer(project: Project) -> None:
    import threading
    import time

    from scipion_kg.errors import ProjectLockedError
    from scipion_kg.locking import STORE_LOCK, store_access

    lock = project.control_dir / STORE_LOCK
    opened_at: list[float] = []

    def write() -> None:
        with project.open_store(write=True):
            opened_at.append(time.monotonic())

    with store_access(lock, exclusive=False, timeout=1.0):
        writer = threading.Thread(target=write)
        started = time.monotonic()
        writer.start()
        time.sleep(0.3)
        assert opened_at == []  # the writer is waiting for the reader
    writer.join(timeout=10)
    assert opened_at and opened_at[0] - started >= 0.3
    with (
        project.open_store(write=True),
        pytest.raises(ProjectLockedError, match="being written"),
        store_access(lock, exclusive=False, timeout=0.1),
    ):
        pass
