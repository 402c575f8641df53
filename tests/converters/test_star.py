"""RELION STAR read and write: every real file of the corpus, fast and exact readers, errors, round trips."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipion_kg.converters import star
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column

from scipion_kg.errors import ConversionError, ParseError

from .star_paths import python_writer, reader_path

# What each corpus file holds, read by eye from the file: version, header comments, blocks as
# (name, is_loop, rows, labels, line of the first row), and (block, label, row, value) samples.
Case = dict[str, Any]
CASES: dict[str, Case] = {
    "cryocat_relion5_TS_01_tilt.star": {
        "version": "50001",
        "comments": [],
        "blocks": [("TS_01", True, 40, 28, 35)],
        "values": [
            ("TS_01", "rlnMicrographMovieName", 0, "frames/TS_01_038_-57.0.mrc"),
            ("TS_01", "rlnTomoTiltMovieFrameCount", 0, 8),
            ("TS_01", "rlnTomoNominalStageTiltAngle", 0, -56.9985),
            ("TS_01", "rlnDefocusU", 0, 39527.78125),
            ("TS_01", "rlnTomoYTilt", 0, -57.0),
            ("TS_01", "rlnTomoYShiftAngst", 0, 108.499417),
            ("TS_01", "rlnCtfScalefactor", 0, 0.544639),
            ("TS_01", "rlnMicrographMovieName", 39, "frames/TS_01_040_60.0.mrc"),
            ("TS_01", "rlnTomoNominalStageTiltAngle", 39, 60.0006),
            ("TS_01", "rlnTomoYShiftAngst", 39, -156.67569),
        ],
    },
    "cryocat_relion5_tutorial_tomograms.star": {
        "version": "50001",
        "comments": [],
        "blocks": [("global", True, 5, 16, 23)],
        "values": [
            ("global", "rlnTomoName", 0, "TS_01"),
            ("global", "rlnTomoHand", 0, -1.0),
            ("global", "rlnTomoSizeX", 0, 4000),
            ("global", "rlnTomoSizeZ", 4, 2000),
            ("global", "rlnTomoName", 4, "TS_54"),
            (
                "global",
                "rlnTomoReconstructedTomogramHalf2",
                4,
                "Tomograms/job006/tomograms/rec_TS_54_half2.mrc",
            ),
        ],
    },
    "cryocat_relion_3.0_warp.star": {
        "version": None,
        "comments": [],
        "blocks": [("", True, 3, 15, 20)],
        "values": [
            ("", "rlnCoordinateX", 0, 1028.455),
            ("", "rlnAngleRot", 0, -60.19977),
            ("", "rlnMagnification", 0, 10000.0),
            ("", "rlnCtfMaxResolution", 0, 7.6),
            ("", "rlnCoordinateZ", 2, 366.455),
            ("", "rlnSphericalAberration", 2, 2.7),
        ],
    },
    "cryocat_relion_4.0_subtomo.star": {
        "version": "30001",
        "comments": [],
        "blocks": [("optics", True, 1, 10, 17), ("particles", True, 1746, 21, 46)],
        "values": [
            ("optics", "rlnOpticsGroupName", 0, "opticsGroup1"),
            ("optics", "rlnTomoTiltSeriesPixelSize", 0, 1.971),
            ("optics", "rlnImageSize", 0, 64),
            ("particles", "rlnCoordinateX", 0, 1700.0),
            ("particles", "rlnAngleRot", 0, -61.71449),
            ("particles", "rlnTomoName", 0, "TS_017"),
            ("particles", "rlnTomoParticleName", 0, "TS_017/68"),
            ("particles", "rlnMaxValueProbDistribution", 0, 0.009516),
            ("particles", "rlnNrOfSignificantSamples", 0, 48),
            ("particles", "rlnCoordinateY", 1745, 2156.0),
            ("particles", "rlnAngleRot", 1745, 46.523713),
            ("particles", "rlnNrOfSignificantSamples", 1745, 223),
        ],
    },
    "cryocat_warp2_particles_matching.star": {
        "version": None,
        "comments": [],
        "blocks": [
            ("general", False, 1, 1, 4),
            ("optics", True, 5, 11, 23),
            ("particles", True, 1218, 15, 50),
        ],
        "values": [
            ("general", "rlnTomoSubTomosAre2DStacks", 0, 1),
            ("optics", "rlnOpticsGroupName", 4, "opticsGroup5"),
            ("optics", "rlnAmplitudeContrast", 4, 0.07),
            ("particles", "rlnTomoName", 0, "TS_17.tomostar"),
            ("particles", "rlnTomoParticleId", 0, 1),
            ("particles", "rlnCoordinateX", 0, 354.242),
            ("particles", "rlnTomoVisibleFrames", 0, "[" + ",".join(["1"] * 41) + "]"),
            ("particles", "rlnTomoName", 1217, "TS_23.tomostar"),
            ("particles", "rlnTomoParticleId", 1217, 243),
            ("particles", "rlnCoordinateY", 1217, 1066.511),
        ],
    },
    "cryodrgn_FinalRefinement_PfCRT_pyem.star": {
        "version": None,
        "comments": ["RELION; version 3.0.6"],
        "blocks": [("images", True, 5, 22, 28)],
        "values": [
            ("images", "rlnAnglePsi", 0, 98.22569),
            ("images", "rlnAngleRot", 0, 16.09353),
            ("images", "rlnClassNumber", 0, 1),
            ("images", "rlnDefocusU", 0, 15686.0),
            ("images", "rlnAngleRot", 4, -115.40303),
            ("images", "rlnVoltage", 4, 300.0),
        ],
    },
    "cryodrgn_empiar_10076_7.star": {
        "version": None,
        "comments": [],
        "blocks": [("", True, 7, 10, 14)],
        "values": [
            ("", "rlnImageName", 0, "1@empiar_10076_7.mrc"),
            # Micrograph "names" here are the numbers 1..7: typed as integers, as infer_column says.
            ("", "rlnMicrographName", 0, 1),
            ("", "rlnDefocusU", 0, 15301.1),
            ("", "rlnDefocusV", 0, 14916.4),
            ("", "rlnMagnification", 0, 38168),
            ("", "rlnDefocusU", 6, 15177.4),
            ("", "rlnImageName", 6, "7@empiar_10076_7.mrc"),
        ],
    },
    "cryodrgn_relion31.star": {
        "version": "30001",
        "comments": [],
        "blocks": [("optics", True, 1, 9, 16), ("particles", True, 5, 26, 50)],
        "values": [
            ("optics", "rlnOpticsGroup", 0, 1),
            ("optics", "rlnSphericalAberration", 0, 0.01),
            ("optics", "rlnImageSize", 0, 256),
            ("particles", "rlnCoordinateX", 0, 3277.0),
            ("particles", "rlnGroupNumber", 0, 1),
            ("particles", "rlnOriginYAngst", 0, -0.64686),
            ("particles", "rlnCoordinateX", 4, 2933.0),
            ("particles", "rlnOriginYAngst", 4, 0.385262),
        ],
    },
    "cryodrgn_relion31_6opticsgroups.star": {
        "version": None,
        "comments": ["Created 2024-05-20 17:39:07.660886"],
        "blocks": [("optics", True, 6, 18, 24), ("particles", True, 139, 23, 58)],
        "values": [
            ("optics", "rlnOpticsGroupName", 0, "opticsGroup5"),
            ("optics", "rlnMagMat11", 0, 1.008858),
            ("optics", "rlnMicrographPixelSize", 5, 1.035),
            ("particles", "rlnMicrographName", 0, "MotionCorr/job002/Micrographs/0003.mrc"),
            ("particles", "rlnCoordinateX", 0, 2417.658855),
            ("particles", "rlnDefocusU", 0, 10352.805929),
            ("particles", "rlnGroupNumber", 138, 2695),
            ("particles", "rlnDefocusU", 138, 11089.867209),
        ],
    },
    "cryodrgn_relion5.star": {
        "version": "50001",
        "comments": [],
        "blocks": [("optics", True, 1, 18, 23), ("particles", True, 17, 26, 54)],
        "values": [
            ("optics", "rlnOpticsGroupName", 0, "opticsGroup1"),
            ("optics", "rlnVoltage", 0, 100.0),
            ("optics", "rlnMagMat10", 0, -8.23335e-04),
            ("optics", "rlnMagMat11", 0, 1.000381),
            ("particles", "rlnCoordinateX", 0, 1736.0),
            ("particles", "rlnAutopickFigureOfMerit", 0, 16.459581),
            ("particles", "rlnImageName", 0, "1@toy_images_a.mrcs"),
            ("particles", "rlnAutopickFigureOfMerit", 16, 34.850266),
            ("particles", "rlnNrOfSignificantSamples", 16, 2),
        ],
    },
    "cryodrgn_sta_testing_bin8.star": {
        "version": None,
        "comments": [],
        "blocks": [("", True, 219, 20, 25)],
        "values": [
            ("", "rlnMagnification", 0, 10000),
            ("", "rlnDetectorPixelSize", 0, 1.96),
            ("", "rlnDefocusU", 0, 20061.7),
            ("", "rlnImageName", 0, "000001@ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"),
            ("", "rlnGroupName", 0, "ay19102021_L3_position6_ribo_it09_bin8_0000000"),
            ("", "rlnGroupName", 218, "ay19102021_L3_position6_ribo_it09_bin8_0000005"),
        ],
    },
    "dynamo2m_relion3.1_subtomo.star": {
        "version": "30001",
        "comments": [],
        "blocks": [("optics", True, 1, 7, 14), ("particles", True, 57, 22, 44)],
        "values": [
            ("optics", "rlnImagePixelSize", 0, 5.0),
            ("optics", "rlnImageDimensionality", 0, 3),
            ("particles", "rlnCoordinateX", 0, 314.929),
            ("particles", "rlnAngleRot", 0, -16.91486),
            ("particles", "rlnNrOfSignificantSamples", 0, 190),
            ("particles", "rlnCoordinateZ", 56, 368.51),
            ("particles", "rlnAngleRot", 56, 7.384669),
            ("particles", "rlnNrOfSignificantSamples", 56, 543),
        ],
    },
    "emtable_refine3d_run_it016_optimiser.star": {
        "version": "30001",
        "comments": [
            "RELION optimiser; version 4.0-alpha-commit-96560b",
            "--o Refine3D/job029/run --auto_refine --split_random_halves --i Polish/job028/shiny.star --ref "
            "Refine3D/job025/run_half1_class001_unfil.mrc --ini_high 8 --dont_combine_weights_via_disc "
            "--scratch_dir /ssd/scheres --pool 3 --pad 2 --skip_gridding --ctf --particle_diameter 200 "
            "--flatten_solvent --zero_mask --solvent_mask MaskCreate/job020/mask.mrc --solvent_correct_fsc "
            "--oversampling 1 --healpix_order 2 --auto_local_healpix_order 4 --offset_range 5 "
            "--offset_step 2 --sym D2 --low_resol_join_halves 40 --norm --scale --j 6 --gpu 4:5:6:7 "
            "--pipeline_control Refine3D/job029/",
        ],
        "blocks": [("optimiser_general", False, 1, 91, 8)],
        "values": [
            ("optimiser_general", "rlnOutputRootName", 0, "Refine3D/job029/run"),
            ("optimiser_general", "rlnCurrentIteration", 0, 16),
            ("optimiser_general", "rlnRandomSeed", 0, 1622621066),
            ("optimiser_general", "rlnJoinHalvesUntilThisResolution", 0, 40.0),
            ("optimiser_general", "rlnSolventMask2Name", 0, "None"),
            ("optimiser_general", "rlnSgdStepsizeScheme", 0, ""),  # written ""
            ("optimiser_general", "rlnMaxNumberOfPooledParticles", 0, 18),
        ],
    },
    "relion5_tomo_220728_TS_01.star": {
        "version": "30001",
        "comments": [],
        "blocks": [("220728_TS_01", True, 41, 29, 36)],
        "values": [
            ("220728_TS_01", "rlnMicrographMovieName", 0, "frames/TS_01_000_0.0.mrc"),
            ("220728_TS_01", "rlnTomoTiltMovieIndex", 0, 1),
            ("220728_TS_01", "rlnTomoNominalStageTiltAngle", 0, 0.001),
            ("220728_TS_01", "rlnTomoProjZ", 0, "[-0.156779229641,0,0.987633645535,-1167.89200902]"),
            ("220728_TS_01", "rlnTomoProjW", 40, "[0,0,0,1]"),
            ("220728_TS_01", "rlnTomoTiltMovieIndex", 40, 41),
        ],
    },
    "relion5_tomo_tilt_series_global.star": {
        "version": "30001",
        "comments": [],
        "blocks": [("global", True, 5, 14, 21)],
        "values": [
            ("global", "rlnTomoName", 0, "220728_TS_01"),
            ("global", "rlnTomoTiltSeriesStarFile", 0, "tilt_series_metadata/tilt_series/220728_TS_01.star"),
            ("global", "rlnTomoSizeZ", 0, 3000),
            ("global", "rlnTomoName", 4, "220728_TS_54"),
        ],
    },
    "starfile_postprocess.star": {
        "version": None,
        "comments": [
            "RELION postprocess; version 3.0.8",
            "--i average_symmetrized_ref_001_ite_0008.mrc --i2 average_symmetrized_ref_002_ite_0008.mrc "
            "--o combined --mask mask.mrc --angpix 7.5",
        ],
        "blocks": [("general", False, 1, 6, 6), ("fsc", True, 49, 7, 24), ("guinier", True, 49, 3, 81)],
        "values": [
            ("general", "rlnFinalResolution", 0, 16.363636),
            ("general", "rlnMaskName", 0, "mask.mrc"),
            ("general", "rlnRandomiseFrom", 0, 32.727273),
            ("fsc", "rlnSpectralIndex", 0, 0),
            ("fsc", "rlnAngstromResolution", 0, 999.0),
            ("fsc", "rlnSpectralIndex", 48, 48),
            ("fsc", "rlnFourierShellCorrelationCorrected", 48, 0.282401),
            ("guinier", "rlnLogAmplitudesOriginal", 0, -4.73796),
            ("guinier", "rlnLogAmplitudesWeighted", 48, -10.51129),
        ],
    },
}


def corpus(shared_data: Path) -> Path:
    return shared_data / "formats" / "relion_star"


def assert_same(left: RawDocument, right: RawDocument, rtol: float = 1e-6) -> None:
    """Same blocks, labels, column order, kinds and values (floats within rtol), version and fields."""
    assert left.version == right.version
    assert left.fields == right.fields
    assert list(left.blocks) == list(right.blocks)
    for name, block in left.blocks.items():
        other = right.blocks[name]
        assert block.is_loop == other.is_loop, name
        assert list(block.columns) == list(other.columns), name
        for label, values in block.columns.items():
            again = other.columns[label]
            if len(values) == 0:  # an empty column has no values to type
                assert len(again) == 0, (name, label)
                continue
            assert values.dtype.kind == again.dtype.kind, (name, label, values.dtype, again.dtype)
            if values.dtype.kind == "f":
                np.testing.assert_allclose(
                    again.astype(float), values.astype(float), rtol=rtol, atol=0, equal_nan=True
                )
                numbers = ~np.isnan(values)  # -0.0 stays negative; a NaN's sign is not kept
                assert (np.signbit(again[numbers]) == np.signbit(values[numbers])).all(), (name, label)
            else:
                assert values.tolist() == again.tolist(), (name, label)


def test_every_corpus_file_has_a_case(shared_data: Path) -> None:
    assert sorted(path.name for path in corpus(shared_data).glob("*.star")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_file(shared_data: Path, name: str) -> None:
    case = CASES[name]
    path = corpus(shared_data) / name
    document = star.read(path)
    assert document.format_iri == star.FORMAT_IRI
    assert document.source == path
    assert document.version == case["version"]
    assert document.fields == {f"comment_{i}": text for i, text in enumerate(case["comments"], start=1)}
    assert [
        (block.name, block.is_loop, block.n_rows, len(block.columns), block.line_of(0)) for block in document
    ] == case["blocks"]
    assert list(document.blocks) == [block[0] for block in case["blocks"]]
    for block_name, label, row, expected in case["values"]:
        value = document.block(block_name).columns[label][row]
        if isinstance(expected, float):
            assert isinstance(value, np.floating), (label, value)
            assert value == pytest.approx(expected, rel=1e-12), label
        elif isinstance(expected, int):
            assert isinstance(value, np.integer), (label, value)
            assert value == expected, label
        else:
            assert isinstance(value, np.str_), (label, value)
            assert value == expected, label


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_file_round_trips(shared_data: Path, name: str, tmp_path: Path) -> None:
    document = star.read(corpus(shared_data) / name)
    text = star.to_string(document)
    assert_same(document, star.parse(text))
    star.write(document, tmp_path / name)
    assert (tmp_path / name).read_text() == text
    assert_same(document, star.read(tmp_path / name))


@pytest.mark.parametrize("native", [True, False], ids=["native", "pandas"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_and_exact_readers_agree(shared_data: Path, name: str, native: bool) -> None:
    data = (corpus(shared_data) / name).read_bytes()
    with reader_path(fast=True, native=native):
        fast = star.parse(data)
    with reader_path(fast=False):
        exact = star.parse(data)
    assert_same(exact, fast, rtol=0)
    for block in exact:
        exact_lines, fast_lines = block.lines, fast.block(block.name).lines
        assert exact_lines is not None and fast_lines is not None
        assert exact_lines.tolist() == fast_lines.tolist()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # Numbers in the first half, a word in the second: the column is words, with the file's spelling.
        ("007 1\n8 2\n9 3\nabc 4\n", ["007", "8", "9", "abc"]),
        # Integers then a float: one float column.
        ("1 1\n2 2\n3.5 3\n4 4\n", [1.0, 2.0, 3.5, 4.0]),
        # pandas would read True/False as booleans: the exact path keeps the words.
        ("True 1\nFalse 2\nTrue 3\nFalse 4\n", ["True", "False", "True", "False"]),
        # Windows line ends; a lone carriage return is a blank inside a row.
        ("1 1\r\n2 2\r\n3 3\r\n4 4\r\n", [1, 2, 3, 4]),
        ("1 1\n2\r2\n3 3\n4 4\n", [1, 2, 3, 4]),
        # Blank lines inside the loop: rows keep their own line numbers.
        ("1 1\n\n2 2\n3 3\n\n4 4\n", [1, 2, 3, 4]),
    ],
)
@pytest.mark.parametrize("native", [True, False], ids=["native", "pandas"])
def test_fast_reader_edge_cases(rows: str, expected: list[Any], native: bool) -> None:
    text = "data_t\nloop_\n_rlnA #1\n_rlnB #2\n" + rows
    with reader_path(fast=True, native=native):
        fast = star.parse(text).block("t")
    exact = star.parse(text).block("t")
    assert fast.columns["rlnA"].tolist() == exact.columns["rlnA"].tolist() == expected
    assert fast.columns["rlnA"].dtype == exact.columns["rlnA"].dtype
    assert fast.lines is not None and exact.lines is not None
    assert fast.lines.tolist() == exact.lines.tolist()
    assert exact.lines.tolist() == [5 + i for i, row in enumerate(rows.split("\n")) if row]


def test_relion_layout(shared_data: Path) -> None:
    text = star.to_string(star.read(corpus(shared_data) / "cryodrgn_relion31.star"))
    lines = text.split("\n")
    assert lines[:8] == [
        "",
        "# version 30001",
        "",
        "data_optics",
        "",
        "loop_",
        "_rlnOpticsGroup #1",
        "_rlnOpticsGroupName #2",
    ]
    assert lines.count("# version 30001") == 2
    assert "_rlnGroupNumber #26" in lines
    # Floats in their shortest exact form, integral ones with ".0"; ints as ints; columns right-aligned.
    optics = lines[lines.index("_rlnImageDimensionality #9") + 1]
    assert optics.split() == ["1", "opticsGroup1", "0.1", "0.01", "300.0", "2.806", "1.403", "256", "2"]


def test_key_value_layout(shared_data: Path) -> None:
    text = star.to_string(star.read(corpus(shared_data) / "emtable_refine3d_run_it016_optimiser.star"))
    assert text.startswith("# RELION optimiser; version 4.0-alpha-commit-96560b\n# --o Refine3D/job029/run ")
    assert "\n# version 30001\n\ndata_optimiser_general\n\n_rlnOutputRootName " in text
    assert re.search(r'\n_rlnSgdStepsizeScheme +""\n', text)
    assert re.search(r"\n_rlnRandomSeed +1622621066\n", text)


# --- syntax details ----------------------------------------------------------------------------------------


def test_quoted_values_comments_and_blank_lines() -> None:
    text = (
        "# version 30001\n"
        "data_a\n"
        "loop_\n"
        "_rlnA #1\n"
        "_rlnB\n"
        "'two words' 1  # a trailing comment\n"
        "\n"
        '"it\'s" 2\n'
        "# a comment inside the loop\n"
        "'don't' 3\n"
        '"" 4\n'
    )
    block = star.parse(text).block("a")
    assert block.columns["rlnA"].tolist() == ["two words", "it's", "don't", ""]
    assert block.columns["rlnB"].tolist() == [1, 2, 3, 4]
    assert block.lines is not None
    assert block.lines.tolist() == [6, 8, 10, 11]
    assert_same(star.parse(text), star.parse(star.to_string(star.parse(text))))


def test_values_that_need_quotes_are_quoted() -> None:
    values = np.array(["", "a b", "_label", "#hash", "'quote", "data_x", "loop_", ";semi", "plain"])
    document = RawDocument(star.FORMAT_IRI, {"t": RawBlock("t", {"rlnX": values})})
    text = star.to_string(document)
    rows = text.split("loop_\n_rlnX #1\n")[1].split("\n")[:-1]
    assert [row.strip() for row in rows] == [
        '""',
        '"a b"',
        '"_label"',
        '"#hash"',
        '"\'quote"',
        '"data_x"',
        '"loop_"',
        '";semi"',
        "plain",
    ]
    assert star.parse(text).block("t").columns["rlnX"].tolist() == values.tolist()


def test_empty_loops_and_empty_names() -> None:
    text = "data_\nloop_\n_rlnA #1\n_rlnB #2\ndata_nolabels\nloop_\ndata_pairs\n_rlnX 1\ndata_nothing\n"
    document = star.parse(text)
    assert list(document.blocks) == ["", "nolabels", "pairs", "nothing"]
    empty = document.block("")
    assert empty.is_loop and empty.n_rows == 0 and list(empty.columns) == ["rlnA", "rlnB"]
    assert document.block("nolabels").is_loop and not document.block("nolabels").columns
    assert not document.block("pairs").is_loop and document.block("pairs").columns["rlnX"].tolist() == [1]
    assert not document.block("nothing").is_loop and not document.block("nothing").columns
    assert_same(document, star.parse(star.to_string(document)))
    assert star.parse("").blocks == {}


@pytest.mark.parametrize(
    ("values", "written"),
    [
        (np.array([1.0, 2.0, -0.0]), ["1.0", "2.0", "-0.0"]),
        (
            np.array([0.1, 1e-7, 123456789.0, 1e16, 2.5e-5]),
            ["0.1", "1e-07", "123456789.0", "1e+16", "2.5e-05"],
        ),
        (np.array([math.nan, math.inf, -math.inf]), ["nan", "inf", "-inf"]),
        (np.array([1, -2, 2**62]), ["1", "-2", str(2**62)]),
        (np.array([True, False]), ["1", "0"]),
    ],
)
def test_number_formatting(values: np.ndarray[Any, Any], written: list[str]) -> None:
    document = RawDocument(star.FORMAT_IRI, {"t": RawBlock("t", {"x": values})})
    text = star.to_string(document)
    assert [row.strip() for row in text.split("_x #1\n")[1].split("\n")[:-1]] == written
    again = star.parse(text).block("t").columns["x"]
    assert again.dtype == (np.float64 if values.dtype.kind == "f" else np.int64)
    np.testing.assert_array_equal(again, values.astype(again.dtype))


def test_version_is_written_only_when_present() -> None:
    document = RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"x": np.array([1])})})
    assert "version" not in star.to_string(document)
    document.version = "50001"
    assert star.to_string(document).startswith("\n# version 50001\n\ndata_a\n")


# --- errors ------------------------------------------------------------------------------------------------

HEADER = "data_particles\nloop_\n_rlnA #1\n_rlnB #2\n_rlnC #3\n"


@pytest.mark.parametrize("fast", [False, True])
def test_wrong_column_count_names_the_line(fast: bool) -> None:
    text = HEADER + "1 2 3\n4 5 6 7\n8 9 10\n"
    with reader_path(fast), pytest.raises(ParseError) as error:
        star.parse(text, source="particles.star")
    assert str(error.value) == (
        "particles.star: line 7: expected 3 values (one per label of the loop of block data_particles), "
        "found 4"
    )


@pytest.mark.parametrize("fast", [False, True])
def test_too_few_values_in_a_middle_row(fast: bool) -> None:
    with reader_path(fast), pytest.raises(ParseError, match=r"x.star: line 7: expected 3 values .* found 2$"):
        star.parse(HEADER + "1 2 3\n4 5\n8 9 10\n", source="x.star")


@pytest.mark.parametrize("fast", [False, True])
def test_truncated_loop(fast: bool) -> None:
    with reader_path(fast), pytest.raises(ParseError) as error:
        star.parse(HEADER + "1 2 3\n4 5 6\n7 8", source="cut.star")
    assert str(error.value) == (
        "cut.star: line 8: expected 3 values (one per label of the loop of block data_particles), found 2; "
        "the file ends in this row: it looks truncated"
    )


def test_duplicate_label_in_a_loop() -> None:
    with pytest.raises(ParseError) as error:
        star.parse("data_a\nloop_\n_rlnA #1\n_rlnB #2\n_rlnA #3\n1 2 3\n", source="dup.star")
    assert str(error.value) == "dup.star: line 5: label _rlnA appears twice in the loop of block data_a"


def test_duplicate_label_in_pairs() -> None:
    with pytest.raises(ParseError, match=r"^dup.star: line 3: label _rlnA appears twice in block data_a$"):
        star.parse("data_a\n_rlnA 1\n_rlnA 2\n", source="dup.star")


@pytest.mark.parametrize("fast", [False, True])
def test_unterminated_quote(fast: bool) -> None:
    with reader_path(fast), pytest.raises(ParseError) as error:
        star.parse(HEADER + "1 2 3\n4 'five 6\n", source="q.star")
    assert str(error.value) == (
        "q.star: line 7: unterminated quote: ' opens a value at column 3 and no closing quote followed by a "
        "blank ends it"
    )


def test_unterminated_quote_in_a_pair() -> None:
    with pytest.raises(ParseError, match=r'^q.star: line 2: unterminated quote: " opens a value at column 7'):
        star.parse('data_a\n_rlnA "abc\n', source="q.star")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_a\ndata_a\n", "line 2: a second block named data_a; block names must be unique"),
        ("1 2 3\n", "line 1: value '1' outside a loop_ (before the first data_ block)"),
        ("data_a\n_rlnA 1\n2\n", "line 3: value '2' outside a loop_ (in block data_a)"),
        ("data_a\n_rlnA\n", "line 2: _rlnA has no value; a key-value pair is '_label value'"),
        ("data_a\n_rlnA 1 2\n", "line 2: _rlnA has 2 values; a key-value pair is '_label value'"),
        ("data_a\n_rlnA 1\nloop_\n", "line 3: block data_a already holds a table"),
        ("data_a\nloop_\n_rlnA\n1\nloop_\n", "line 5: block data_a already holds a table"),
        ("data_a\nloop_\n_rlnA\n1\n_rlnB\n", "line 5: _rlnB after the values of the loop of block data_a"),
        ("data_a\nloop_\n_rlnA 1\n", "line 3: loop label _rlnA is followed by '1' on its line"),
        ("data_a\nloop_\n1 2\n", "line 3: loop_ of block data_a has values but no _labels"),
        ("data_a\n;text\n;\n", "line 2: multi-line text fields (';' lines) are not supported"),
        ("_rlnA 1\n", "line 1: _rlnA before the first data_ block"),
        ("loop_\n", "line 1: loop_ before the first data_ block"),
        ("data_a b\n", "line 1: unexpected 'b' after the block name 'data_a'"),
        (b"data_a\n_rlnA \xff\n", "line 2: not UTF-8 text"),
    ],
)
def test_syntax_errors(text: str | bytes, message: str) -> None:
    with pytest.raises(ParseError) as error:
        star.parse(text, source="bad.star")
    assert str(error.value).startswith(f"bad.star: {message}")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"x": np.array(["line\nbreak"])})}),
            "block data_a, row 1, column _x: the value 'line\\nbreak' holds a line break",
        ),
        (
            RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"x": np.array(["a' b\" c"])})}),
            "block data_a, row 1, column _x: the value 'a\\' b\" c' cannot be quoted",
        ),
        (
            RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"x": np.array([1, 2])}, is_loop=False)}),
            "key-value block data_a has 2 rows; it must have exactly one",
        ),
        (
            RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"two words": np.array([1])})}),
            "label _two words of block data_a holds a blank",
        ),
        (
            RawDocument(star.FORMAT_IRI, {"a": RawBlock("a", {"x": np.array([1 + 2j])})}),
            "column _x of block data_a has values of type complex128",
        ),
        (
            RawDocument(star.FORMAT_IRI, {}, fields={"title": "x"}),
            "STAR files have no file-level field 'title'",
        ),
    ],
)
def test_unwritable_documents(document: RawDocument, message: str) -> None:
    with pytest.raises(ConversionError) as error:
        star.to_string(document)
    assert str(error.value).startswith(message)


# --- property: random tables round-trip ---------------------------------------------------------------------

WORD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=12,
)
LABEL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20
)


@st.composite
def tables(draw: st.DrawFn) -> RawDocument:
    n_rows = draw(st.integers(0, 30))
    labels = draw(st.lists(LABEL, min_size=1, max_size=6, unique=True))
    columns: dict[str, Column] = {}
    for label in labels:
        kind = draw(st.sampled_from(["int", "float", "str"]))
        if kind == "int":
            values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n_rows, max_size=n_rows))
            columns[label] = np.array(values, dtype=np.int64)
        elif kind == "float":
            floats = draw(st.lists(st.floats(width=64), min_size=n_rows, max_size=n_rows))
            columns[label] = np.array(floats, dtype=np.float64)
        else:
            words = draw(st.lists(WORD, min_size=n_rows, max_size=n_rows))
            # Words that all read as numbers make a number column (infer_column's rule): keep this one words.
            if infer_column(words).dtype.kind != "U":
                words = ["x" + word for word in words]
            columns[label] = np.array(words, dtype=str)
    return RawDocument(star.FORMAT_IRI, {"table": RawBlock("table", columns)}, version="30001")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=tables())
def test_random_tables_round_trip(document: RawDocument) -> None:
    text = star.to_string(document)
    assert_same(document, star.parse(text), rtol=0)
    with reader_path(fast=True):
        assert_same(document, star.parse(text), rtol=0)
    with reader_path(fast=True, native=False):
        assert_same(document, star.parse(text), rtol=0)
    # The same text with or without the native kernels.
    with python_writer():
        assert star.to_string(document) == text


SPACED = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\n\r\x00"),
    max_size=10,
)


@settings(max_examples=150, deadline=None)
@given(words=st.lists(SPACED, min_size=1, max_size=10))
def test_words_with_blanks_and_quotes_round_trip(words: list[str]) -> None:
    if infer_column(words).dtype.kind != "U":
        words = ["x" + word for word in words]
    document = RawDocument(star.FORMAT_IRI, {"w": RawBlock("w", {"rlnWord": np.array(words, dtype=str)})})
    if any(re.search("'[ \t\v\f]", word) and re.search('"[ \t\v\f]', word) for word in words):
        with pytest.raises(ConversionError, match="cannot be quoted in STAR"):
            star.to_string(document)
        return
    assert_same(document, star.parse(star.to_string(document)), rtol=0)


def test_both_writers_write_floats_as_python_repr() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            10.0 ** rng.uniform(-12, 20, 3000) * rng.choice([-1.0, 1.0], 3000),
            [1e-4, 9.999999999999999e-05, 1e8, 99999999.99999999, 0.0, -0.0, 3.0, -7.0, 1e15, 1e16],
            [math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308],
        ]
    )
    document = RawDocument(star.FORMAT_IRI, {"t": RawBlock("t", {"x": values})})
    expected = [repr(float(value)) for value in values]
    with python_writer():
        fallback = star.to_string(document)
    assert [row.strip() for row in fallback.split("_x #1\n")[1].split("\n")[:-1]] == expected
    assert star.to_string(document) == fallback
