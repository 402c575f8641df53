"""The command line: init, import, ingest, lineage, runs; errors go to stderr with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scipion_kg.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scipion_kg", *args], capture_output=True, text=True, cwd=cwd
    )


def test_help_lists_the_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("init", "ontology", "import", "ingest", "lineage", "runs", "formats"):
        assert command in result.stdout


def test_init_import_lineage_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "proj"
    assert main(["init", str(root)]) == 0
    data = root / "data"
    data.mkdir()
    (data / "particles.star").write_text("data_particles\nloop_\n_rlnImageName\n1@p.mrcs\n")
    assert main(["import", "--project", str(root), str(data / "particles.star")]) == 0
    out = capsys.readouterr().out
    assert "data/particles.star" in out and "skg:Format_RELIONStar" in out
    assert main(["lineage", "--project", str(root), str(data / "particles.star"), "--format", "json"]) == 0
    lineage = json.loads(capsys.readouterr().out)
    assert len(lineage["runs"]) == 1
    (run,) = lineage["runs"].values()
    assert run["step"].endswith("#Import")
    assert main(["runs", "--project", str(root)]) == 0
    assert "1 runs" in capsys.readouterr().out


def test_commands_find_the_project_from_the_current_directory(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert run_cli("init", str(root)).returncode == 0
    (root / "sub").mkdir()
    (root / "sub" / "model.pdb").write_text(
        "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N\n"
    )
    result = run_cli("import", "model.pdb", cwd=root / "sub")
    assert result.returncode == 0, result.stderr
    result = run_cli("lineage", "model.pdb", cwd=root / "sub")
    assert result.returncode == 0 and "skg:Import" in result.stdout


def test_outside_a_project_the_error_says_so(tmp_path: Path) -> None:
    result = run_cli("runs", cwd=tmp_path)
    assert result.returncode == 1
    assert "not inside a scipion-kg project" in result.stderr
    assert "Traceback" not in result.stderr


def test_lineage_of_an_unrecorded_file_names_it(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root))
    (root / "loose.mrc").write_bytes(b"x" * 1100)
    result = run_cli("lineage", "--project", str(root), str(root / "loose.mrc"))
    assert result.returncode == 1
    assert "loose.mrc" in result.stderr and "not recorded" in result.stderr


def test_import_of_a_missing_file_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root))
    (root / "a.star").write_text("data_\n")
    result = run_cli("import", "--project", str(root), str(root / "a.star"), str(root / "missing.star"))
    assert result.returncode == 1
    assert "missing.star: no such file" in result.stderr
    assert "0 runs" in run_cli("runs", "--project", str(root)).stdout
    assert list((root / "runs").iterdir()) == []
