"""Bad bundles: a clear error naming the file and the term, and the store left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from scipion_kg.errors import BundleError, UnknownTermError
from scipion_kg.ingest import find_bundles, ingest_bundles
from scipion_kg.project import Project
from scipion_kg.store import Store
from scipion_kg.vocabulary import vocabulary

from .conftest import Chain

PREFIXES = """@prefix prov: <http://www.w3.org/ns/prov#> .
@prefix skg: <https://w3id.org/scipion-kg/ontology#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""
GOOD_RUN = (
    PREFIXES
    + """
<https://w3id.org/scipion-kg/id/run/aa> a prov:Activity, skg:Masking ; skg:runStatus skg:Succeeded ;
  prov:startedAtTime "2026-01-01T00:00:00+00:00"^^xsd:dateTime .
"""
)

BAD_BUNDLES = {
    "syntax": (BundleError, "not a valid Turtle bundle", PREFIXES + "<a> <b> .\n"),
    "unknown property": (
        UnknownTermError,
        "skg:resolutionn",
        GOOD_RUN + "<https://w3id.org/scipion-kg/id/run/aa> skg:resolutionn 3.2 .\n",
    ),
    "unknown class": (
        UnknownTermError,
        "skg:Refinment3D",
        GOOD_RUN.replace("skg:Masking", "skg:Refinment3D"),
    ),
    "no run": (BundleError, "exactly one run", PREFIXES + "<urn:x> a prov:Entity .\n"),
    "two runs": (BundleError, "exactly one run", GOOD_RUN + GOOD_RUN.replace("/aa>", "/bb>")),
    "no status": (BundleError, "skg:runStatus", GOOD_RUN.replace("skg:runStatus skg:Succeeded ;", "")),
    "blank node": (
        BundleError,
        "blank node",
        GOOD_RUN + "<https://w3id.org/scipion-kg/id/run/aa> prov:used [] .\n",
    ),
    "failed with output": (
        BundleError,
        "registers no output",
        GOOD_RUN.replace("skg:Succeeded", "skg:Failed")
        + "<urn:out> prov:wasGeneratedBy <https://w3id.org/scipion-kg/id/run/aa> .\n",
    ),
    "wrong hash": (
        BundleError,
        "not its own",
        GOOD_RUN
        + "<https://w3id.org/scipion-kg/id/entity/sha256-"
        + "a" * 64
        + '> skg:sha256 "'
        + "b" * 64
        + '" .\n',
    ),
    "unknown format": (
        UnknownTermError,
        "skg:Format_Nope",
        GOOD_RUN + "<urn:x> skg:hasFormat skg:Format_Nope .\n",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_by_name_and_nothing_is_ingested(
    case: str, chain: Chain, project: Project, store: Store
) -> None:
    error, message, text = BAD_BUNDLES[case]
    bad = project.runs_dir / "zz-bad" / "provenance.ttl"
    bad.parent.mkdir()
    bad.write_text(text)
    # The good bundles of the chain are fresh for a new store, so a partial ingest would show.
    store.update("CLEAR ALL")
    before = sorted(str(q) for q in store.quads())
    with pytest.raises(error, match=message) as raised:
        ingest_bundles(store, project, find_bundles(project), vocabulary())
    assert str(bad) in str(raised.value)
    assert sorted(str(q) for q in store.quads()) == before


def test_a_missing_bundle_file_is_named(project: Project, store: Store, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"nowhere\.ttl"):
        ingest_bundles(store, project, [tmp_path / "nowhere.ttl"], vocabulary())


def test_a_temporary_bundle_left_by_a_crash_is_never_ingested(project: Project, store: Store) -> None:
    leftover = project.runs_dir / "Masking-x" / ".provenance.ttl.abc.tmp"
    leftover.parent.mkdir()
    leftover.write_text(GOOD_RUN)
    assert find_bundles(project) == []
