"""Format detection against real files written by real programs (the shared corpus)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from scipion_kg.errors import FormatError
from scipion_kg.formats import detect_format, require_format
from scipion_kg.vocabulary import vocabulary

# Every real file of the corpus and the format its README says wrote it.
EXPECTED = {
    "formats/aretomo_aln/alnfile_test_data_no_local.aln": "Format_AreTomoAlignment",
    "formats/aretomo_aln/alnfile_global_no_local.xf": "Format_IMODTransform",
    "formats/cryosparc_cs/cryodrgn_cryosparc_J2_particles_exported.cs": "Format_CryoSPARCCS",
    "formats/cryosparc_cs/cryodrgn_cryosparc_P12_J24_001_particles.cs": "Format_CryoSPARCCS",
    "formats/cryosparc_cs/cryodrgn_empiar_10076_7.cs": "Format_CryoSPARCCS",
    "formats/cryosparc_cs/cryosparc_tools_4k_dataset_empty.cs": "Format_CryoSPARCCS",
    "formats/ctffind/cryocat_TS_017_ctffind4.txt": "Format_CTFFINDOutput",
    "formats/dynamo_tbl/cryocat_b4_dynamo.tbl": "Format_DynamoTable",
    "formats/dynamo_tbl/dynamo2m_example.tbl": "Format_DynamoTable",
    "formats/dynamo_tbl/dynamotable_t_double.tbl": "Format_DynamoTable",
    "formats/dynamo_tbl/dynamo2m_example.doc": "Format_DynamoTableMap",
    "formats/emx/xmipp_EMXread.emx": "Format_EMX",
    "formats/emx/xmipp_EMXwrite.emx": "Format_EMX",
    "formats/imod/cryocat_TS_017_tilt.com": "Format_IMODCommandFile",
    "formats/imod/etomofiles_TS_001.edf": "Format_IMODEtomoDirective",
    "formats/imod/etomofiles_TS_001.rawtlt": "Format_IMODTiltAngles",
    "formats/imod/etomofiles_TS_001.tlt": "Format_IMODTiltAngles",
    "formats/imod/etomofiles_TS_001.xf": "Format_IMODTransform",
    "formats/imod/yaiw_xf_file.xf": "Format_IMODTransform",
    "formats/imod/etomofiles_TS_001.xtilt": "Format_IMODXTilt",
    "formats/imod/yaiw_align.log": "Format_IMODAlignLog",
    "formats/mrc/mrcfile_EMD-3001.map": "Format_MRC",
    "formats/mrc/mrcfile_EMD-3197.map": "Format_MRC",
    "formats/mrc/xmipp_smallStack.mrcs": "Format_MRC",
    "formats/serialem_mdoc/mdocfile_frame_set_single.mdoc": "Format_SerialEMMdoc",
    "formats/serialem_mdoc/mdocfile_tilt_series.mdoc": "Format_SerialEMMdoc",
    "formats/spider_doc/spider_ang_doc.dat": "Format_SPIDERDocument",
    "formats/spider_doc/spider_apsh_ali_doc.dat": "Format_SPIDERDocument",
    "formats/spider_doc/spider_ctffind_def.dat": "Format_SPIDERDocument",
    "formats/xmipp_xmd/xmipp_experimental_images.xmd": "Format_XmippMetadata",
    "formats/xmipp_xmd/xmipp_pythoninterface_test.xmd": "Format_XmippMetadata",
    "formats/xmipp_xmd/xmipp_ref_c1_exp_sampling.xmd": "Format_XmippMetadata",
    "emdb/xml/emd-0001_spa_v3.0.2.0.xml": "Format_EMDBHeaderXML",
    "emdb/xml/emd-20531_tomo_v3.0.9.0.xml": "Format_EMDBHeaderXML",
    "emdb/mmcif/emharvest_EPU_SPA_dep.cif": "Format_mmCIF",
    # Atomic models as the PDB distributes them: gzip-compressed mmCIF.
    "models/1BD2.cif.gz": "Format_mmCIF",
    "models/3KPR.cif.gz": "Format_mmCIF",
    "models/5PTI.cif.gz": "Format_mmCIF",
}


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_real_file_is_detected_as_the_format_that_wrote_it(shared_data: Path, relative: str) -> None:
    declaration = detect_format(shared_data / relative, vocabulary())
    assert declaration is not None, relative
    assert declaration.iri.rsplit("#", 1)[1] == EXPECTED[relative]


def test_every_relion_star_file_of_the_corpus_is_relion_star(shared_data: Path) -> None:
    files = sorted((shared_data / "formats" / "relion_star").glob("*.star"))
    assert len(files) >= 15
    for path in files:
        declaration = detect_format(path, vocabulary())
        assert declaration is not None and declaration.iri.endswith("#Format_RELIONStar"), path.name


def test_content_outranks_a_misleading_extension(tmp_path: Path, shared_data: Path) -> None:
    renamed = tmp_path / "map.dat"
    renamed.write_bytes((shared_data / "formats" / "mrc" / "mrcfile_EMD-3001.map").read_bytes())
    declaration = detect_format(renamed, vocabulary())
    assert declaration is not None and declaration.iri.endswith("#Format_MRC")


def test_text_patterns_are_not_searched_in_binary_content(tmp_path: Path) -> None:
    # Random-looking binary bytes that contain "\n$a" must not be taken for an IMOD command file.
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01\x02\n$abc\x00\xff" * 10)
    assert detect_format(path, vocabulary()) is None


def test_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.cif.gz"
    path.write_bytes(gzip.compress(b"data_x\n_cell.length_a 10\n" * 100)[:30])
    with pytest.raises(FormatError, match=r"model\.cif\.gz.*gzip"):
        detect_format(path, vocabulary())


def test_unrecognised_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.xyz"
    path.write_bytes(b"\x00\x00\x00")
    with pytest.raises(FormatError, match=r"notes\.xyz.*not recognised"):
        require_format(path, vocabulary())
