"""The SPARQL guard: which queries may run (decided by parsing), and the runner's time and size limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest

from scipion_kg.project import Project
from scipion_kg.sparql_guard import (
    N_TRIPLES,
    TURTLE,
    QueryRefusedError,
    QueryRunner,
    QuerySource,
    QuerySyntaxError,
    QueryTimeoutError,
    check_query,
    example_queries,
    refuse_update,
)

from .conftest import Chain, record_chain

PREFIXES = "PREFIX prov: <http://www.w3.org/ns/prov#>\nPREFIX skg: <https://w3id.org/scipion-kg/ontology#>\n"


@pytest.fixture
def recorded(project: Project) -> Chain:
    """The five-run chain, with the store closed again so workers can open it read-only."""
    with project.open_store(write=True) as store:
        return record_chain(project, store)


@pytest.fixture
def source(project: Project, recorded: Chain) -> QuerySource:
    return QuerySource(store_path=str(project.store_path))


@pytest.fixture(scope="module")
def runner() -> Iterator[QueryRunner]:
    runner = QueryRunner(keep=1)
    yield runner
    runner.close()


@pytest.mark.parametrize(
    ("text", "operation"),
    [
        ("INSERT DATA { <urn:a> <urn:b> <urn:c> }", "INSERT DATA"),
        ("DELETE WHERE { ?s ?p ?o }", "DELETE WHERE"),
        (
            "PREFIX x: <urn:x#>\nDELETE { ?s x:p ?o } INSERT { ?s x:q ?o } WHERE { ?s x:p ?o }",
            "DELETE/INSERT",
        ),
        ("LOAD <http://example.org/data.ttl>", "LOAD"),
        ("LOAD <file:///etc/passwd> INTO GRAPH <urn:g>", "LOAD"),
        ("CLEAR ALL", "CLEAR"),
        ("DROP GRAPH <urn:g>", "DROP"),
        ("# a comment first\nCLEAR DEFAULT", "CLEAR"),
    ],
)
def test_updates_are_refused_and_named(text: str, operation: str) -> None:
    with pytest.raises(QueryRefusedError, match="read-only") as raised:
        check_query(text)
    assert operation in str(raised.value)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
        "SELECT * WHERE { ?x ?y ?z . OPTIONAL { SERVICE SILENT <http://example.org/sparql> { ?x ?p ?o } } }",
        "ASK { { SELECT ?s WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } } } }",
        "CONSTRUCT { ?s ?p ?o } WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
    ],
)
def test_service_calls_are_refused_wherever_they_hide(text: str) -> None:
    with pytest.raises(QueryRefusedError, match="SERVICE"):
        check_query(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('SELECT ?s WHERE { ?s ?p "SERVICE <http://example.org/sparql> { ?s ?p ?o }" }', "SELECT"),
        ("SELECT ?s WHERE { ?s ?p 'INSERT DATA { <urn:a> <urn:b> <urn:c> }' }", "SELECT"),
        ('ASK { ?s ?p """LOAD <http://example.org/x>\nDROP ALL""" }', "ASK"),
        (
            "# SERVICE <http://example.org/sparql> and INSERT DATA in a comment\nSELECT * WHERE { ?s ?p ?o }",
            "SELECT",
        ),
        ("SELECT ?service WHERE { ?service <urn:drop> ?insert } # DELETE WHERE { ?s ?p ?o }", "SELECT"),
        ("PREFIX service: <urn:service#>\nSELECT * WHERE { ?s service:load ?o }", "SELECT"),
        ("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", "CONSTRUCT"),
        ("DESCRIBE <https://w3id.org/scipion-kg/ontology#Map>", "DESCRIBE"),
    ],
)
def test_keywords_in_literals_comments_and_names_are_allowed(text: str, kind: str) -> None:
    assert check_query(text).kind == kind


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("SELECT * WHERE { ?s ?p }", "col:"),
        ("SELEC * WHERE { ?s ?p ?o }", "col:1"),
        ("SELECT * WHERE { ?s ?p ?o } ; INSERT DATA { <urn:a> <urn:b> <urn:c> }", "col:"),
    ],
)
def test_syntax_errors_carry_the_parser_position(text: str, position: str) -> None:
    with pytest.raises(QuerySyntaxError, match="syntax error") as raised:
        check_query(text)
    assert position in str(raised.value)


def test_empty_query_is_a_syntax_error() -> None:
    with pytest.raises(QuerySyntaxError, match="empty"):
        check_query("  \n")


def test_refuse_update_without_text_still_explains() -> None:
    assert "read-only" in str(refuse_update())


def test_select_results_follow_the_w3c_json_format(runner: QueryRunner, source: QuerySource) -> None:
    query = check_query(
        PREFIXES
        + "SELECT ?run ?name ?value ?unit WHERE { ?run skg:hasParameter ?p . ?p skg:parameterName ?name ."
        " OPTIONAL { ?p skg:parameterValue ?value } OPTIONAL { ?p skg:parameterUnit ?unit } } ORDER BY ?name"
    )
    result = runner.run(source, query, timeout=10, limit=100)
    document = json.loads(result.body)
    assert document["head"]["vars"] == ["run", "name", "value", "unit"]
    bindings = {b["name"]["value"]: b for b in document["results"]["bindings"]}
    # conftest's chain: import(source), motion(patches, dose_per_frame), ctf(max_resolution, threads),
    # pick(diameter), extract(box_size)
    assert sorted(bindings) == sorted(
        ["source", "patches", "dose_per_frame", "max_resolution", "threads", "diameter", "box_size"]
    )
    max_resolution = bindings["max_resolution"]["value"]
    assert max_resolution["type"] == "literal" and float(max_resolution["value"]) == 5.0
    assert max_resolution["datatype"] == "http://www.w3.org/2001/XMLSchema#double"
    assert bindings["box_size"]["value"]["datatype"] == "http://www.w3.org/2001/XMLSchema#integer"
    assert bindings["max_resolution"]["unit"] == {
        "type": "uri",
        "value": "http://qudt.org/vocab/unit/ANGSTROM",
    }
    assert bindings["source"]["value"] == {
        "type": "literal",
        "value": "movies.star",
    }  # xsd:string: no datatype
    assert "unit" not in bindings["patches"]  # unbound variables are absent from a binding
    assert bindings["patches"]["run"]["type"] == "uri"
    assert result.count == 7 and not result.truncated


def test_ask_and_construct(runner: QueryRunner, source: QuerySource, recorded: Chain) -> None:
    ask = runner.run(source, check_query(PREFIXES + "ASK { ?r a skg:CTFEstimation }"), timeout=10, limit=10)
    assert json.loads(ask.body) == {"head": {}, "boolean": True}
    construct = check_query(
        PREFIXES + "CONSTRUCT { ?r prov:used ?e } WHERE { ?r a skg:ParticleExtraction ; prov:used ?e }"
    )
    for graph_format in (TURTLE, N_TRIPLES):
        result = runner.run(source, construct, timeout=10, limit=10, graph_format=graph_format)
        format = ox.RdfFormat.TURTLE if graph_format == TURTLE else ox.RdfFormat.N_TRIPLES
        objects = {quad.object.value for quad in ox.parse(result.body, format=format)}
        expected = {recorded.entities[name] for name in ("micrographs", "coords", "ctf")}
        assert objects == expected and result.count == 3


@pytest.mark.parametrize(("limit", "kept", "truncated"), [(2, 2, True), (5, 5, False), (6, 5, False)])
def test_results_are_cut_at_the_limit(
    runner: QueryRunner, source: QuerySource, limit: int, kept: int, truncated: bool
) -> None:
    query = check_query(PREFIXES + "SELECT ?run WHERE { ?run skg:runStatus skg:Succeeded }")
    result = runner.run(source, query, timeout=10, limit=limit)
    assert result.count == kept == len(json.loads(result.body)["results"]["bindings"])
    assert result.truncated is truncated


def test_a_slow_query_is_stopped_and_the_runner_recovers(runner: QueryRunner, source: QuerySource) -> None:
    # The store holds the ontology (thousands of triples): a three-way cross join never finishes in time.
    slow = check_query("SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }")
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"query stopped after 0\.5 s"):
        runner.run(source, slow, timeout=0.5, limit=10)
    assert time.monotonic() - started < 3.0
    quick = runner.run(source, check_query("ASK { ?s ?p ?o }"), timeout=10, limit=10)
    assert json.loads(quick.body)["boolean"] is True


def test_store_errors_name_the_store(runner: QueryRunner, tmp_path: Path) -> None:
    missing = QuerySource(store_path=str(tmp_path / "no-store"))
    with pytest.raises(Exception, match="no-store"):
        runner.run(missing, check_query("ASK { ?s ?p ?o }"), timeout=10, limit=10)


def test_every_example_query_parses_and_runs(runner: QueryRunner, source: QuerySource) -> None:
    examples = example_queries()
    assert len(examples) >= 6
    for example in examples:
        assert example.title and not example.title.startswith("PREFIX")
        result = runner.run(source, check_query(example.text), timeout=10, limit=1000)
        assert result.content_type == "application/sparql-results+json"


def test_runs_in_time_order_example_lists_the_chain_in_order(
    runner: QueryRunner, source: QuerySource, recorded: Chain
) -> None:
    example = next(e for e in example_queries() if e.name == "runs-in-time-order")
    bindings = json.loads(runner.run(source, check_query(example.text), timeout=10, limit=100).body)
    runs = [b["run"]["value"] for b in bindings["results"]["bindings"]]
    assert runs == [recorded.runs[name] for name in ("import", "motion", "ctf", "pick", "extract")]
