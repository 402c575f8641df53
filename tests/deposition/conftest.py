"""Session fixtures of the deposition tests: the EMDB XSD (slow to load, so once per session) and the
PDBx/mmCIF dictionary, both from the shared corpus of real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..conftest import SHARED_DATA

EMDB_DATA = SHARED_DATA / "emdb"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"the shared corpus of real EM files is not beside this checkout ({path} is missing)")
    return path


@pytest.fixture(scope="session")
def emdb_xsd() -> Path:
    """EMDB header XML schema v3.0.11.3 (emdb-empiar/emdb-schemas)."""
    return _require(EMDB_DATA / "xsd" / "emdb.xsd")


@pytest.fixture(scope="session")
def emdb_schema(emdb_xsd: Path) -> Any:
    """The EMDB XSD loaded by xmlschema (an ``xmlschema.XMLSchema``), once per session."""
    import xmlschema

    return xmlschema.XMLSchema(str(emdb_xsd))


@pytest.fixture(scope="session")
def pdbx_dictionary() -> Path:
    """The PDBx/mmCIF dictionary v5.362, gzipped (gemmi reads it as is)."""
    return _require(EMDB_DATA / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz")


@pytest.fixture(scope="session")
def emdb_headers() -> Path:
    """The folder of the five real EMDB v3 header XML files."""
    folder = EMDB_DATA / "xml"
    if not folder.is_dir():
        pytest.skip(f"the shared corpus of real EM files is not beside this checkout ({folder} is missing)")
    return folder
