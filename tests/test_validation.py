"""pySHACL on bundles: the recorder's bundles conform to the run-bundle shapes; broken ones do not."""

from __future__ import annotations

from pathlib import Path

import pytest
import rdflib

from scipion_kg.errors import BundleError
from scipion_kg.ingest import find_bundles, ingest_bundles
from scipion_kg.namespaces import PROV, SKG
from scipion_kg.project import Project
from scipion_kg.store import Store
from scipion_kg.validation import validate_bundle_shacl, validate_graph
from scipion_kg.vocabulary import vocabulary

from .conftest import Chain


def test_every_recorded_bundle_conforms(chain: Chain, project: Project) -> None:
    for path in find_bundles(project):
        report = validate_bundle_shacl(path)
        assert report.conforms, report.text


def _broken_copy(path: Path, tmp_path: Path, edit: str) -> rdflib.Graph:
    graph = rdflib.Graph().parse(path, format="turtle")
    run = next(graph.subjects(rdflib.URIRef(SKG + "runStatus"), None))
    if edit == "no start time":
        graph.remove((run, rdflib.URIRef(PROV + "startedAtTime"), None))
    elif edit == "bad signature":
        graph.set((run, rdflib.URIRef(SKG + "inputSignature"), rdflib.Literal("not-a-hash")))
    elif edit == "two statuses":
        graph.add((run, rdflib.URIRef(SKG + "runStatus"), rdflib.URIRef(SKG + "Failed")))
    elif edit == "error on success":
        graph.add((run, rdflib.URIRef(SKG + "errorMessage"), rdflib.Literal("boom")))
    elif edit == "negative size":
        entity = next(graph.subjects(rdflib.URIRef(SKG + "byteSize"), None))
        graph.set((entity, rdflib.URIRef(SKG + "byteSize"), rdflib.Literal(-1, datatype=rdflib.XSD.long)))
    return graph


@pytest.mark.parametrize(
    "edit", ["no start time", "bad signature", "two statuses", "error on success", "negative size"]
)
def test_a_broken_bundle_does_not_conform(chain: Chain, project: Project, tmp_path: Path, edit: str) -> None:
    bundle = next(p for p in find_bundles(project) if "CTFEstimation" in str(p))
    assert not validate_graph(_broken_copy(bundle, tmp_path, edit), "run-bundle").conforms


def test_ingest_with_shacl_refuses_a_nonconforming_bundle(
    chain: Chain, project: Project, store: Store
) -> None:
    bundle = next(p for p in find_bundles(project) if "CTFEstimation" in str(p))
    graph = _broken_copy(bundle, project.root, "bad signature")
    bad = project.runs_dir / "zz" / "provenance.ttl"
    bad.parent.mkdir()
    graph.serialize(bad, format="turtle")
    store.update("CLEAR ALL")
    with pytest.raises(BundleError, match=r"inputSignature|pattern"):
        ingest_bundles(store, project, find_bundles(project), vocabulary(), shacl=True)
    assert store.graph_names() == set()
