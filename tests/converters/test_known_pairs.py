"""The known-answer pairs of docs/conventions §6, converted through the declared conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters.engine import convert_file, read_document, read_table, resolve_convention
from scipion_kg.converters.geometry import pivot_matrices, tomo_projection_matrices
from scipion_kg.converters.mapping import ConversionOptions, from_canonical, to_canonical


def test_aretomo_to_imod_matches_the_xf_alnfile_derived(shared_data: Path, tmp_path: Path) -> None:
    # Pair 6: AreTomo .aln -> IMOD .xf equals the .xf alnfile wrote from the same .aln (61 views).
    folder = shared_data / "formats" / "aretomo_aln"
    result, _, document = convert_file(folder / "alnfile_test_data_no_local.aln", tmp_path / "out.xf")
    assert result.rows == 61
    written = document.blocks["views"].columns
    expected = read_document(folder / "alnfile_global_no_local.xf").blocks["views"].columns
    assert written["DX"][0] == pytest.approx(-102.6027, abs=1e-4)
    assert written["DY"][0] == pytest.approx(18.9672, abs=1e-4)
    for label in ("A11", "A12", "A21", "A22"):
        assert np.allclose(written[label], expected[label], atol=1e-6), label
    for label in ("DX", "DY"):
        assert np.allclose(written[label], expected[label], atol=1e-3), label
    # The tilt angles and section numbers have no place in an .xf: reported, not silent.
    assert {"tilt_angle", "view_index"} <= set(result.loss.columns)


def test_imod_xf_back_to_aretomo_recovers_rotation_and_shifts(shared_data: Path) -> None:
    folder = shared_data / "formats" / "aretomo_aln"
    from_xf, _ = read_table(folder / "alnfile_global_no_local.xf")
    from_aln, _ = read_table(folder / "alnfile_test_data_no_local.aln")
    assert np.allclose(from_xf.columns["axis_rotation"], from_aln.columns["axis_rotation"], atol=1e-5)
    assert np.allclose(from_xf.columns["shift_x"], from_aln.columns["shift_x"], atol=1e-3)
    assert np.allclose(from_xf.columns["shift_y"], from_aln.columns["shift_y"], atol=1e-3)


def test_relion5_angles_and_shifts_give_the_projection_matrices_in_the_file(shared_data: Path) -> None:
    # Pair 8: every row's rlnTomoProjX/Y/Z/W equals the matrix built from its angles and shifts.
    folder = shared_data / "formats" / "relion_star"
    table, convention = read_table(folder / "relion5_tomo_220728_TS_01.star")
    assert convention.name == "skg:Convention_RELION5TiltSeries"
    global_block = next(iter(read_document(folder / "relion5_tomo_tilt_series_global.star")))
    row = list(global_block.columns["rlnTomoName"]).index("220728_TS_01")
    pixel = float(global_block.columns["rlnTomoTiltSeriesPixelSize"][row])
    size = tuple(float(global_block.columns[f"rlnTomoSize{axis}"][row]) for axis in "XYZ")
    raw = next(iter(read_document(folder / "relion5_tomo_220728_TS_01.star")))

    def matrix_rows(label: str) -> np.ndarray:
        return np.array([[float(x) for x in str(v).strip("[]").split(",")] for v in raw.columns[label]])

    in_file = np.stack([matrix_rows(f"rlnTomoProj{axis}") for axis in "XYZW"], axis=1)
    shifts = np.column_stack([table.columns["shift_x"], table.columns["shift_y"]])
    # The image centre is not in the file: take it from the first view, then every view must agree.
    first = tomo_projection_matrices(
        table.columns["x_tilt"][:1], table.columns["tilt_angle"][:1], table.columns["axis_rotation"][:1],
        shifts[:1], pixel, size, (0.0, 0.0),
    )  # fmt: skip
    centre = tuple(in_file[0, :2, 3] - first[0, :2, 3])
    built = tomo_projection_matrices(
        table.columns["x_tilt"], table.columns["tilt_angle"], table.columns["axis_rotation"],
        shifts, pixel, size, centre,
    )  # fmt: skip
    assert len(built) == 41
    assert np.allclose(built[:, :3, :3], in_file[:, :3, :3], atol=1e-6)
    assert np.allclose(built[:, :3, 3], in_file[:, :3, 3], atol=1e-3)
    assert np.allclose(centre, (1855.0, 1919.0), atol=1e-3)


def test_dynamo_to_relion_dynamo2m_numbers(shared_data: Path) -> None:
    # Pair 3: dynamo2m test_dynamo2warp on the corpus table (row 1, tag 52).
    table, _ = read_table(shared_data / "formats" / "dynamo_tbl" / "dynamo2m_example.tbl")
    relion = resolve_convention("RELION30")
    document, _ = from_canonical(
        table,
        relion,
        ConversionOptions(voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1, pixel_size=1.0),
    )
    block = next(iter(document))
    row = 1
    assert table.extras["tag"][row] == 52
    centre_x = block.columns["rlnCoordinateX"][row] - block.columns["rlnOriginX"][row]
    centre_y = block.columns["rlnCoordinateY"][row] - block.columns["rlnOriginY"][row]
    centre_z = block.columns["rlnCoordinateZ"][row] - block.columns["rlnOriginZ"][row]
    assert (centre_x, centre_y, centre_z) == pytest.approx((536.6156, 370.5493, 319.70611), abs=1e-4)
    angles = tuple(block.columns[f"rlnAngle{name}"][row] for name in ("Rot", "Tilt", "Psi"))
    expected = np.array([[-155.676, 8.4212, -157.3]])
    assert np.allclose(pivot_matrices(np.array([angles])), pivot_matrices(expected), atol=1e-9)


def test_relion_and_cryosparc_files_of_the_same_seven_particles_agree(shared_data: Path) -> None:
    # Pair 5: cryoDRGN's empiar_10076_7.star and .cs hold the same 7 particles.
    folder = shared_data / "formats"
    star, _ = read_table(folder / "relion_star" / "cryodrgn_empiar_10076_7.star")
    cs, convention = read_table(folder / "cryosparc_cs" / "cryodrgn_empiar_10076_7.cs")
    assert convention.name == "skg:Convention_CryoSPARC"
    assert star.n_rows == cs.n_rows == 7
    assert cs.columns["defocus_u"][0] == pytest.approx(15301.1, abs=1e-2)
    assert cs.columns["defocus_angle"][0] == pytest.approx(5.28, abs=1e-5)
    for column in ("defocus_u", "defocus_v", "defocus_angle"):
        assert np.allclose(star.columns[column], cs.columns[column], rtol=1e-6, atol=1e-3), column
    star_optics, cs_optics = star.related["optics"].columns, cs.related["optics"].columns
    assert cs_optics["pixel_size"][0] == pytest.approx(1.3099979, abs=1e-6)
    assert star_optics["pixel_size"][0] == pytest.approx(1e4 * 5 / 38168, abs=1e-6)
    for column in ("voltage", "spherical_aberration", "amplitude_contrast"):
        assert star_optics[column][0] == pytest.approx(cs_optics[column][0], rel=1e-6), column


def test_cryosparc_pose_round_trip_through_relion(shared_data: Path) -> None:
    cs_path = shared_data / "formats" / "cryosparc_cs" / "cryodrgn_cryosparc_P12_J24_001_particles.cs"
    table, convention = read_table(cs_path)
    document, _ = from_canonical(table, resolve_convention("RELION31"))
    document.source = Path("converted.star")
    back = to_canonical(document, resolve_convention("RELION31"))
    pivot = np.column_stack([table.columns[c] for c in ("angle_rot", "angle_tilt", "angle_psi")])
    again = np.column_stack([back.columns[c] for c in ("angle_rot", "angle_tilt", "angle_psi")])
    assert np.allclose(pivot_matrices(pivot), pivot_matrices(again), atol=1e-9)
    assert convention.name == "skg:Convention_CryoSPARC"


def test_spider_defocus_document_matches_its_ctffind_columns(shared_data: Path) -> None:
    # Pair 7: SPIDER's (mean, astigmatism, angle) and CTFFIND's (DF1, DF2, ANGAST) of the same fits,
    # written side by side in one SPIDER document.
    path = shared_data / "formats" / "spider_doc" / "spider_ctffind_def.dat"
    table, convention = read_table(path)
    assert convention.name == "skg:Convention_SPIDERDefocus"
    raw = read_document(path).blocks["doc"].columns
    assert table.columns["defocus_u"][0] == pytest.approx(30245.3, abs=0.1)
    assert table.columns["defocus_v"][0] == pytest.approx(39756.7, abs=0.1)
    assert table.columns["defocus_angle"][0] == pytest.approx(48.1913, abs=1e-4)
    assert np.allclose(table.columns["defocus_u"], raw["Defocus1"], atol=0.1)
    assert np.allclose(table.columns["defocus_v"], raw["Defocus2"], atol=0.1)
    assert np.allclose(table.columns["defocus_angle"], raw["MRC-Ang"], atol=1e-3)


def test_scipion_matrix_through_emx_gives_the_xmipp_row(tmp_path: Path) -> None:
    # Pair 4: scipion-em-xmipp test_isInverse. Scipion's projection matrix M is inv([A | -o]); EMX holds
    # [A | -o] itself, so EMX = inv(M). Xmipp's row: rot -20, tilt 0, psi 0, shiftX -12.8558, shiftY 15.3210.
    from scipion_kg.converters.raw import RawBlock, RawDocument

    from scipion_kg.namespaces import SKG

    scipion = np.array(
        [[0.93969, 0.34202, 0, -6.8404], [-0.34202, 0.93969, 0, 18.7939], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    emx = np.linalg.inv(scipion)
    columns = {
        f"transformationMatrix.t{i + 1}{j + 1}": np.array([emx[i, j]]) for i in range(3) for j in range(4)
    }
    columns.update({"fileName": np.array(["particles.mrcs"]), "index": np.array([1])})
    document = RawDocument(
        SKG + "Format_EMX", {"particles": RawBlock("particles", columns)}, source=tmp_path / "a.emx"
    )
    table = to_canonical(document, resolve_convention("EMX"), ConversionOptions(pixel_size=1.0))
    xmipp, _ = from_canonical(table, resolve_convention("Xmipp3"), ConversionOptions(pixel_size=1.0))
    row = next(iter(xmipp)).columns
    assert row["shiftX"][0] == pytest.approx(-12.8558097352, abs=1e-4)
    assert row["shiftY"][0] == pytest.approx(15.3209632479, abs=1e-4)
    angles = np.array([[row["angleRot"][0], row["angleTilt"][0], row["anglePsi"][0]]])
    assert np.allclose(pivot_matrices(angles), pivot_matrices(np.array([[-20.0, 0.0, 0.0]])), atol=1e-4)


def test_ctffind_rows_become_relion_micrograph_ctf_values(shared_data: Path, tmp_path: Path) -> None:
    # CTFFIND -> RELION: U = DF1, V = DF2, angle = azimuth, phase shift radians -> degrees (conventions §2).
    source = shared_data / "formats" / "ctffind" / "cryocat_TS_017_ctffind4.txt"
    options = ConversionOptions(
        pixel_size=1.327, voltage=300.0, spherical_aberration=2.7, amplitude_contrast=0.07
    )
    result, _, document = convert_file(source, tmp_path / "micrographs_ctf.star", options=options)
    assert result.target_convention.name == "skg:Convention_RELION31Micrographs"
    rows = document.blocks["micrographs"].columns
    raw = read_document(source).blocks["micrographs"].columns
    assert np.allclose(rows["rlnDefocusU"], raw["defocus 1 [Angstroms]"])
    assert np.allclose(rows["rlnDefocusV"], raw["defocus 2"])
    assert np.allclose(rows["rlnDefocusAngle"], raw["azimuth of astigmatism"])
    assert np.allclose(rows["rlnPhaseShift"], np.degrees(raw["additional phase shift [radians]"]))
    assert document.blocks["optics"].columns["rlnMicrographPixelSize"][0] == pytest.approx(1.327)
