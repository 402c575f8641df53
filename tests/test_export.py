"""Lineage exports: PROV-JSON read back by the prov package, PROV-N, Turtle and JSON-LD parsed back."""

from __future__ import annotations

import json

import rdflib
from prov.model import ProvDocument
from rdflib.compare import isomorphic

from scipion_kg.export import export_lineage, to_prov_document
from scipion_kg.lineage import lineage
from scipion_kg.namespaces import PROV, SKG
from scipion_kg.store import Store

from .conftest import Chain


def test_prov_json_round_trips_through_the_prov_package(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["particles"])
    text = export_lineage(store, result, "prov-json")
    document = ProvDocument.deserialize(content=text, format="json")
    assert document == to_prov_document(result)
    records = json.loads(text)
    assert len(records["activity"]) == 5
    assert len(records["entity"]) == 5
    assert len(records["used"]) == 1 + 1 + 1 + 3  # motion, ctf, pick, extract (3 inputs); import none
    ctf = next(a for a in records["activity"].values() if a["prov:type"]["$"] == "skg:CTFEstimation")
    assert ctf["param:max_resolution"] == {"$": "5.0", "type": "xsd:double"}
    assert ctf["param:max_resolution.unit"] == {"$": "unit:ANGSTROM", "type": "xsd:QName"}


def test_prov_n_names_every_run_and_entity(chain: Chain, store: Store) -> None:
    text = export_lineage(store, lineage(store, chain.entities["particles"]), "prov-n")
    assert text.startswith("document")
    for run in chain.runs.values():
        assert f"run:{run.rsplit('/', 1)[-1]}" in text
    assert text.count("wasGeneratedBy(") == 5


def test_turtle_and_json_ld_hold_the_same_lineage_graph(chain: Chain, store: Store) -> None:
    result = lineage(store, chain.entities["particles"])
    turtle = rdflib.Graph().parse(data=export_lineage(store, result, "turtle"), format="turtle")
    json_ld = rdflib.Graph().parse(data=export_lineage(store, result, "json-ld"), format="json-ld")
    assert isomorphic(turtle, json_ld)
    generated = {str(s) for s, _, o in turtle.triples((None, rdflib.URIRef(PROV + "wasGeneratedBy"), None))}
    assert generated == set(chain.entities.values())
    parameters = set(turtle.objects(None, rdflib.URIRef(SKG + "parameterName")))
    assert {"max_resolution", "box_size", "diameter", "patches"} <= {str(p) for p in parameters}


def test_text_lists_runs_in_time_order(chain: Chain, store: Store) -> None:
    text = export_lineage(store, lineage(store, chain.entities["particles"]), "text")
    order = [
        text.index(f"skg:{step}")
        for step in ("Import", "MotionCorrection", "CTFEstimation", "ParticlePicking", "ParticleExtraction")
    ]
    assert order == sorted(order)
    assert "parameter max_resolution = 5.0 unit:ANGSTROM" in text
