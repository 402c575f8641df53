"""Every real file of the corpus through the conventions: read to the canonical table (or rejected for
a stated, correct reason) and, where a writer exists, written back to itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters.engine import read_document, read_table, render_document, syntax_module
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.converters.mapping import from_canonical, to_canonical

from scipion_kg.errors import ScipionKGError

# file -> (convention, table kind, rows) as the file's README describes it.
READABLE = {
    "relion_star/cryocat_relion5_TS_01_tilt.star": ("RELION5TiltSeries", "tilt_series", 40),
    "relion_star/cryocat_relion_3.0_warp.star": ("RELION30", "particles", 3),
    "relion_star/cryocat_relion_4.0_subtomo.star": ("RELION31", "particles", 1746),
    "relion_star/cryodrgn_FinalRefinement_PfCRT_pyem.star": ("RELION30", "particles", 5),
    "relion_star/cryodrgn_empiar_10076_7.star": ("RELION30", "particles", 7),
    "relion_star/cryodrgn_relion31.star": ("RELION31", "particles", 5),
    "relion_star/cryodrgn_relion31_6opticsgroups.star": ("RELION31", "particles", 139),
    "relion_star/cryodrgn_relion5.star": ("RELION31", "particles", 17),
    "relion_star/cryodrgn_sta_testing_bin8.star": ("RELION30", "particles", 219),
    "relion_star/dynamo2m_relion3.1_subtomo.star": ("RELION31", "particles", 57),
    "relion_star/relion5_tomo_220728_TS_01.star": ("RELION5TiltSeries", "tilt_series", 41),
    "xmipp_xmd/xmipp_pythoninterface_test.xmd": ("Xmipp3", "particles", 3),
    "xmipp_xmd/xmipp_ref_c1_exp_sampling.xmd": ("Xmipp3", "particles", 22),
    "cryosparc_cs/cryodrgn_cryosparc_J2_particles_exported.cs": ("CryoSPARC", "particles", 22),
    "cryosparc_cs/cryodrgn_cryosparc_P12_J24_001_particles.cs": ("CryoSPARC", "particles", 2019),
    "cryosparc_cs/cryodrgn_empiar_10076_7.cs": ("CryoSPARC", "particles", 7),
    "cryosparc_cs/cryosparc_tools_4k_dataset_empty.cs": ("CryoSPARC", "particles", 0),
    "dynamo_tbl/cryocat_b4_dynamo.tbl": ("Dynamo", "particles", 1343),
    "dynamo_tbl/dynamo2m_example.tbl": ("Dynamo", "particles", 4934),
    "dynamo_tbl/dynamotable_t_double.tbl": ("Dynamo", "particles", 300),
    "spider_doc/spider_ang_doc.dat": ("SPIDERAngles", "particles", 10),
    "spider_doc/spider_apsh_ali_doc.dat": ("SPIDERAlignment", "particles", 5),
    "spider_doc/spider_ctffind_def.dat": ("SPIDERDefocus", "micrographs", 3),
    "ctffind/cryocat_TS_017_ctffind4.txt": ("CTFFIND4", "micrographs", 60),
    "aretomo_aln/alnfile_test_data_no_local.aln": ("AreTomo", "tilt_series", 61),
    "aretomo_aln/alnfile_global_no_local.xf": ("IMODTransform", "tilt_series", 61),
    "imod/etomofiles_TS_001.xf": ("IMODTransform", "tilt_series", 40),
    "imod/yaiw_xf_file.xf": ("IMODTransform", "tilt_series", 41),
    "imod/etomofiles_TS_001.tlt": ("IMODTiltAngles", "tilt_series", 40),
    "imod/etomofiles_TS_001.rawtlt": ("IMODTiltAngles", "tilt_series", 40),
    "serialem_mdoc/mdocfile_tilt_series.mdoc": ("SerialEMTiltSeries", "tilt_series", 41),
}

# Files that are not tables of particles, micrographs or views, or that are broken: the reason.
REJECTED = {
    "relion_star/cryocat_relion5_tutorial_tomograms.star": "no declared convention",  # a set of tomograms
    "relion_star/relion5_tomo_tilt_series_global.star": "no declared convention",  # a set of tilt series
    "relion_star/emtable_refine3d_run_it016_optimiser.star": "no declared convention",  # optimiser state
    "relion_star/starfile_postprocess.star": "no declared convention",  # FSC curves and key-values
    # Xmipp's EMX parser test files fill the matrix with 11, 12, 13... (and EMXread omits t22, t23).
    "emx/xmipp_EMXwrite.emx": "do not form a rotation matrix",
    "emx/xmipp_EMXread.emx": "rotation column.* but not transformationMatrix.t22",
}

# Warp 2 wrote these angles in degrees twice (rot 6445.774 = 112.5 x 57.2958): the shapes stop it.
BAD_VALUES = {"relion_star/cryocat_warp2_particles_matching.star": "angle"}


@pytest.mark.parametrize("relative", sorted(READABLE))
def test_corpus_file_reads_to_its_canonical_table(shared_data: Path, relative: str) -> None:
    name, kind, rows = READABLE[relative]
    table, convention = read_table(shared_data / "formats" / relative)
    assert convention.iri.endswith(f"#Convention_{name}")
    assert (table.kind, table.n_rows) == (kind, rows)


@pytest.mark.parametrize("relative", sorted(REJECTED))
def test_corpus_file_that_is_no_table_is_rejected_with_the_reason(shared_data: Path, relative: str) -> None:
    with pytest.raises(ScipionKGError, match=REJECTED[relative]) as caught:
        read_table(shared_data / "formats" / relative)
    assert Path(relative).name in str(caught.value)


def test_warp2_doubly_converted_angles_violate_the_shapes(shared_data: Path) -> None:
    from scipion_kg.table_validation import validate_table

    table, _ = read_table(shared_data / "formats" / "relion_star" / "cryocat_warp2_particles_matching.star")
    report = validate_table(table)
    assert not report.conforms
    assert report.results[0].value is not None and abs(float(report.results[0].value)) > 360


WRITABLE = [
    relative
    for relative, (name, _, _) in READABLE.items()
    if name not in {"CTFFIND4", "SerialEMTiltSeries", "SPIDERDefocus", "SPIDERAlignment", "SPIDERAngles"}
]


@pytest.mark.parametrize("relative", sorted(WRITABLE))
def test_corpus_file_round_trips_through_its_own_convention(
    shared_data: Path, relative: str, tmp_path: Path
) -> None:
    path = shared_data / "formats" / relative
    table, convention = read_table(path)
    document, loss = from_canonical(table, convention)
    assert loss.lossless, loss
    copy = tmp_path / path.name
    copy.write_bytes(render_document(document))
    parsed = syntax_module(convention.format_iri).read(copy)
    parsed.format_iri, parsed.source = convention.format_iri, copy
    again = to_canonical(parsed, convention)
    assert set(again.columns) == set(table.columns)
    angles = ("angle_rot", "angle_tilt", "angle_psi")
    for column, values in table.columns.items():
        if column in angles:
            continue
        if values.dtype.kind in "iuf":
            assert np.allclose(again.columns[column], values, rtol=1e-6, atol=1e-6, equal_nan=True), column
        else:
            assert list(again.columns[column]) == list(values), column
    if set(angles) <= set(table.columns):
        # Compared as rotations: at tilt 0 only rot + psi is defined. float32 files (.cs) hold ~7 digits.
        pose = [np.column_stack([t.columns[c] for c in angles]) for t in (table, again)]
        assert np.allclose(pivot_matrices(pose[0]), pivot_matrices(pose[1]), atol=1e-5)
    # Every block and label of the file survives (the convention's extras included).
    original = read_document(path)
    assert list(parsed.blocks) == list(original.blocks)
    for name, block in original.blocks.items():
        assert list(parsed.blocks[name].columns) == list(block.columns), name


@pytest.mark.parametrize(
    ("module", "name"),
    [("star", "missing.star"), ("cryosparc_cs", "missing.cs"), ("dynamo_tbl", "missing.tbl"),
     ("imod", "missing.xf"), ("aretomo_aln", "missing.aln"), ("emx", "missing.emx")],
)  # fmt: skip
def test_an_unreadable_file_is_a_parse_error_naming_it(module: str, name: str, tmp_path: Path) -> None:
    import importlib

    from scipion_kg.errors import ParseError

    reader = importlib.import_module(f"scipion_kg.converters.{module}")
    with pytest.raises(ParseError, match=rf"{name}: cannot read the file"):
        reader.read(tmp_path / name)
