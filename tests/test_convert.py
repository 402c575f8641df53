"""``scipion-kg convert``: validated, atomic, recorded conversions and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters.engine import read_table
from scipion_kg.converters.mapping import ConversionOptions

from scipion_kg.cli import main
from scipion_kg.conversion import convert
from scipion_kg.errors import ConversionError, ParseError, TableValidationError
from scipion_kg.project import Project

RELION31 = "formats/relion_star/cryodrgn_relion31.star"


def test_convert_command_writes_the_target_and_reports_losses(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "particles.cs"
    assert main(["convert", "--no-project", str(shared_data / RELION31), str(target)]) == 0
    captured = capsys.readouterr()
    assert (
        "RELION 3.1+ particles STAR" in captured.out
        and "cryoSPARC particles .cs" in captured.out
        and "5 rows" in captured.out
    )
    # RELION's per-particle scores have no place in a .cs: said on stderr, not silently dropped.
    assert "log_likelihood" in captured.err and "rlnNrOfSignificantSamples" in captured.err
    table, convention = read_table(target)
    assert convention.name == "skg:Convention_CryoSPARC" and table.n_rows == 5


def test_convert_inside_a_project_is_recorded_with_its_reports(shared_data: Path, tmp_path: Path) -> None:
    project = Project.init(tmp_path / "project")
    target = project.root / "converted" / "particles.cs"
    try:
        outcome = convert(shared_data / RELION31, target, project=project)
        assert outcome.run_iri is not None
    finally:
        project.close()
    assert main(["lineage", "--project", str(project.root), str(target), "--format", "json"]) == 0


def test_recorded_conversion_lineage_names_conventions_and_reports(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project.init(tmp_path / "project")
    project.close()
    target = project.root / "particles.cs"
    assert main(["convert", "--project", str(project.root), str(shared_data / RELION31), str(target)]) == 0
    capsys.readouterr()
    assert main(["lineage", "--project", str(project.root), str(target), "--format", "json"]) == 0
    lineage = json.loads(capsys.readouterr().out)
    (run,) = lineage["runs"].values()
    parameters = {p["name"]: p["value"] for p in run["parameters"]}
    assert parameters["source_convention"].endswith("#Convention_RELION31")
    assert parameters["target_convention"].endswith("#Convention_CryoSPARC")
    assert sorted(role for _, role in run["generated"]) == [
        "converted",
        "validation-input",
        "validation-output",
    ]


def test_a_missing_value_names_the_option_that_supplies_it(shared_data: Path, tmp_path: Path) -> None:
    # A Dynamo table knows no voltage: RELION 3.1's optics block needs one.
    source = shared_data / "formats" / "dynamo_tbl" / "dynamo2m_example.tbl"
    with pytest.raises(ConversionError, match="--pixel-size"):
        convert(source, tmp_path / "out.star", target_format="RELION31")
    with pytest.raises(ConversionError, match="--voltage"):
        convert(
            source, tmp_path / "out.star", target_format="RELION31", options=ConversionOptions(pixel_size=1.1)
        )
    assert not (tmp_path / "out.star").exists()
    options = ConversionOptions(pixel_size=1.1, voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1)
    outcome = convert(source, tmp_path / "out.star", target_format="RELION31", options=options)
    assert outcome.result.rows == 4934


def write_star(path: Path, rows: list[str], optics_group: int = 1) -> Path:
    path.write_text(
        "# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n"
        "_rlnVoltage #3\n_rlnSphericalAberration #4\n_rlnAmplitudeContrast #5\n_rlnImagePixelSize #6\n"
        f"{optics_group} opticsGroup1 300.0 2.7 0.1 1.05\n\n"
        "# version 30001\n\ndata_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n_rlnAngleTilt #3\n"
        "_rlnAnglePsi #4\n_rlnOriginXAngst #5\n_rlnOriginYAngst #6\n_rlnDefocusU #7\n_rlnDefocusV #8\n"
        "_rlnDefocusAngle #9\n_rlnOpticsGroup #10\n" + "\n".join(rows) + "\n"
    )
    return path


GOOD = "000001@stack.mrcs 10.0 20.0 30.0 1.5 -2.0 12000.0 11800.0 45.0 1"


def test_a_wrong_value_names_file_line_and_column(tmp_path: Path) -> None:
    source = write_star(tmp_path / "bad.star", [GOOD, GOOD.replace("12000.0", "abc")])
    with pytest.raises(ParseError, match=r"bad\.star: line \d+, column rlnDefocusU: 'abc' is not a number"):
        convert(source, tmp_path / "out.cs")
    assert not (tmp_path / "out.cs").exists()


def test_nan_angles_are_refused(tmp_path: Path) -> None:
    source = write_star(tmp_path / "nan.star", [GOOD, GOOD.replace("20.0", "nan")])
    with pytest.raises(ParseError, match=r"nan\.star: line \d+: the rotation has a NaN"):
        convert(source, tmp_path / "out.cs")


def test_a_row_of_an_undeclared_optics_group_is_refused(tmp_path: Path) -> None:
    source = write_star(tmp_path / "groups.star", [GOOD, GOOD[:-1] + "3"])
    with pytest.raises(ParseError, match="row 2 uses optics group 3"):
        convert(source, tmp_path / "out.cs")


def test_an_absurd_pixel_size_stops_the_conversion_unless_permissive(tmp_path: Path) -> None:
    source = tmp_path / "absurd.star"
    write_star(source, [GOOD])
    source.write_text(source.read_text().replace("0.1 1.05", "0.1 1050.0"))
    with pytest.raises(TableValidationError, match="pixelSize"):
        convert(source, tmp_path / "out.cs")
    assert not (tmp_path / "out.cs").exists()
    outcome = convert(source, tmp_path / "out.cs", permissive=True)
    assert any("violates" in warning for warning in outcome.warnings)
    assert (tmp_path / "out.cs").exists()


def test_a_cs_without_ctf_fields_cannot_become_relion_without_the_voltage(tmp_path: Path) -> None:
    import numpy.lib.format as npy

    array = np.zeros(
        3, dtype=[("uid", "<u8"), ("blob/path", "S10"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4")]
    )
    array["blob/path"], array["blob/psize_A"] = b"p.mrcs", 1.2
    path = tmp_path / "partial.cs"
    with path.open("wb") as handle:
        npy.write_array(handle, array)
    with pytest.raises(ConversionError, match="--voltage"):
        convert(path, tmp_path / "out.star")


def test_a_truncated_file_names_the_file(shared_data: Path, tmp_path: Path) -> None:
    text = (shared_data / RELION31).read_text()
    truncated = tmp_path / "truncated.star"
    truncated.write_text(text[: len(text) * 2 // 3].rsplit(" ", 1)[0])
    with pytest.raises(ParseError, match=r"truncated\.star"):
        convert(truncated, tmp_path / "out.cs")


def test_an_existing_target_is_replaced_whole_or_not_at_all(shared_data: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.cs"
    target.write_bytes(b"previous content")
    bad = write_star(tmp_path / "bad.star", [GOOD.replace("12000.0", "abc")])
    with pytest.raises(ParseError):
        convert(bad, target)
    assert target.read_bytes() == b"previous content"
    convert(shared_data / RELION31, target)
    assert target.read_bytes()[:6] == b"\x93NUMPY"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.cs")]


def test_written_files_get_the_permissions_of_the_umask(shared_data: Path, tmp_path: Path) -> None:
    # Regression: atomic writes went through mkstemp's 0600, so group members could not read results.
    import os

    previous = os.umask(0o022)
    try:
        convert(shared_data / RELION31, tmp_path / "out.cs")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.cs").stat().st_mode & 0o777 == 0o644


def test_the_recorded_set_carries_its_size_shape_and_optics_values(shared_data: Path, tmp_path: Path) -> None:
    project = Project.init(tmp_path / "project")
    target = project.root / "particles.cs"
    try:
        convert(shared_data / RELION31, target, project=project)
        with project.open_store() as store:
            rows = store.select(
                "PREFIX skg: <https://w3id.org/scipion-kg/ontology#> "
                "PREFIX dct: <http://purl.org/dc/terms/> "
                "SELECT ?count ?pixel ?kv ?shape WHERE { ?set a skg:ParticleSet ; skg:itemCount ?count ; "
                "skg:pixelSize ?pixel ; skg:accelerationVoltage ?kv ; dct:conformsTo ?shape }"
            )
    finally:
        project.close()
    assert len(rows) == 1
    # cryodrgn_relion31.star: 5 particles, optics group 1 at 2.806 Å/px and 300 kV.
    assert int(str(rows[0]["count"])) == 5
    assert float(str(rows[0]["pixel"])) == pytest.approx(2.806, abs=1e-6)
    assert float(str(rows[0]["kv"])) == pytest.approx(300.0)
    assert str(rows[0]["shape"]).endswith("shapes#ParticleRowShape")
