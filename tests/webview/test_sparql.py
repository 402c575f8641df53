"""The /sparql endpoint (SPARQL 1.1 Protocol, read-only, limited) and its HTML page."""

from __future__ import annotations

import json
from urllib.parse import quote

import pyoxigraph as ox
import pytest
from flask import Flask
from flask.testing import FlaskClient
from scipion_kg.webview.app import create_app
from scipion_kg.webview.context import ViewerConfig

from scipion_kg.project import Project

from ..conftest import Chain, record_chain

RESULTS = "application/sparql-results+json"
SKG = "PREFIX skg: <https://w3id.org/scipion-kg/ontology#>\n"
PROV = "PREFIX prov: <http://www.w3.org/ns/prov#>\n"
RUNS = (
    SKG
    + PROV
    + (
        "SELECT ?run ?started WHERE { ?run skg:runStatus skg:Succeeded ; prov:startedAtTime ?started }\n"
        "ORDER BY ?started"
    )
)


@pytest.fixture
def recorded(project: Project) -> Chain:
    with project.open_store(write=True) as store:
        return record_chain(project, store)


@pytest.fixture
def app(project: Project, recorded: Chain) -> Flask:
    config = ViewerConfig(project_dir=project.root, sparql_timeout_seconds=0.5, sparql_result_limit=3)
    app: Flask = create_app(config)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client: FlaskClient = app.test_client()
    return client


def _bindings(body: bytes) -> list[dict[str, dict[str, str]]]:
    document = json.loads(body)
    bindings: list[dict[str, dict[str, str]]] = document["results"]["bindings"]
    return bindings


@pytest.mark.parametrize("how", ["get", "post-form", "post-body"])
def test_the_three_protocol_operations_answer_json(client: FlaskClient, recorded: Chain, how: str) -> None:
    headers = {"Accept": RESULTS}
    if how == "get":
        response = client.get("/sparql?query=" + quote(RUNS), headers=headers)
    elif how == "post-form":
        response = client.post("/sparql", data={"query": RUNS}, headers=headers)
    else:
        response = client.post(
            "/sparql", data=RUNS.encode(), headers={**headers, "Content-Type": "application/sparql-query"}
        )
    assert response.status_code == 200
    assert response.mimetype == RESULTS
    runs = [b["run"]["value"] for b in _bindings(response.data)]
    assert runs == [recorded.runs[name] for name in ("import", "motion", "ctf")]  # limit 3 of 5
    assert response.headers["X-Result-Truncated"] == "true"
    assert response.headers["X-Result-Limit"] == "3"


def test_untruncated_results_say_so(client: FlaskClient) -> None:
    query = SKG + "SELECT ?r WHERE { ?r a skg:CTFEstimation }"
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": RESULTS})
    assert len(_bindings(response.data)) == 1
    assert response.headers["X-Result-Truncated"] == "false"


@pytest.mark.parametrize(
    ("accept", "mimetype", "rdf_format"),
    [
        ("text/turtle", "text/turtle", ox.RdfFormat.TURTLE),
        ("application/n-triples", "application/n-triples", ox.RdfFormat.N_TRIPLES),
        ("*/*", "text/turtle", ox.RdfFormat.TURTLE),
    ],
)
def test_construct_is_negotiated(
    client: FlaskClient, recorded: Chain, accept: str, mimetype: str, rdf_format: ox.RdfFormat
) -> None:
    query = (
        SKG
        + PROV
        + "CONSTRUCT { ?r skg:made ?e } WHERE { ?e prov:wasGeneratedBy ?r . ?r a skg:CTFEstimation }"
    )
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == mimetype
    triples = list(ox.parse(response.data, format=rdf_format))
    assert [t.object.value for t in triples] == [recorded.entities["ctf"]]


def test_ask_answers_a_boolean(client: FlaskClient) -> None:
    response = client.get(
        "/sparql", query_string={"query": SKG + "ASK { ?r a skg:Refinement3D }"}, headers={"Accept": "*/*"}
    )
    assert response.mimetype == RESULTS
    assert json.loads(response.data) == {"head": {}, "boolean": False}


@pytest.mark.parametrize(
    "request_kind",
    ["update-form", "update-body", "update-get", "insert-as-query", "load-as-query", "service-in-select"],
)
def test_writes_and_remote_calls_are_refused(
    client: FlaskClient, project: Project, request_kind: str
) -> None:
    insert = "INSERT DATA { <urn:a> <urn:b> <urn:c> }"
    headers = {"Accept": RESULTS}
    if request_kind == "update-form":
        response = client.post("/sparql", data={"update": insert}, headers=headers)
    elif request_kind == "update-body":
        response = client.post(
            "/sparql", data=insert.encode(), headers={**headers, "Content-Type": "application/sparql-update"}
        )
    elif request_kind == "update-get":
        response = client.get("/sparql", query_string={"update": insert}, headers=headers)
    elif request_kind == "insert-as-query":
        response = client.post("/sparql", data={"query": insert}, headers=headers)
    elif request_kind == "load-as-query":
        response = client.post("/sparql", data={"query": "LOAD <http://example.org/x.ttl>"}, headers=headers)
    else:
        query = "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }"
        response = client.get("/sparql", query_string={"query": query}, headers=headers)
    assert response.status_code == 403
    assert (
        b"SERVICE" in response.data if request_kind == "service-in-select" else b"read-only" in response.data
    )
    with project.open_store() as store:
        assert not store.ask("ASK { <urn:a> ?p ?o }")


def test_a_literal_naming_service_is_allowed(client: FlaskClient) -> None:
    query = 'SELECT ?s WHERE { ?s ?p "SERVICE <http://example.org/sparql> INSERT DATA" }'
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": RESULTS})
    assert response.status_code == 200 and _bindings(response.data) == []


def test_syntax_error_is_400_with_the_parser_message(client: FlaskClient) -> None:
    response = client.get(
        "/sparql", query_string={"query": "SELECT * WHERE { ?s ?p }"}, headers={"Accept": RESULTS}
    )
    assert response.status_code == 400
    assert b"syntax error" in response.data and b"col:" in response.data


def test_a_slow_query_is_stopped_with_503(client: FlaskClient) -> None:
    query = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": RESULTS})
    assert response.status_code == 503
    assert b"query stopped after 0.5 s" in response.data


def test_missing_query_for_a_protocol_client_is_400(client: FlaskClient) -> None:
    assert client.get("/sparql", headers={"Accept": RESULTS}).status_code == 400


def test_unservable_media_type_is_406(client: FlaskClient) -> None:
    response = client.get("/sparql", query_string={"query": "ASK {}"}, headers={"Accept": "image/png"})
    assert response.status_code == 406


@pytest.mark.parametrize("accept", [None, "text/html,application/xhtml+xml,*/*;q=0.8"])
def test_the_page_lists_the_examples(client: FlaskClient, accept: str | None) -> None:
    response = client.get("/sparql", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.data.decode()
    for title in (
        "Runs in time order",
        "How was this map produced?",
        "All maps with their resolution",
        "Runs by user",
    ):
        assert title in page
    assert '<textarea id="sparql-query" name="query"' in page
    assert "<script>" not in page  # the page's script is a static file (CSP)


def test_the_page_renders_results_escaped(client: FlaskClient) -> None:
    query = 'SELECT ?x WHERE { VALUES ?x { "<script>alert(1)</script>" } }'
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": "text/html"})
    page = response.data.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<th>?x</th>" in page


def test_the_page_shows_truncation_and_errors(client: FlaskClient) -> None:
    html = {"Accept": "text/html"}
    page = client.get("/sparql", query_string={"query": RUNS}, headers=html).data.decode()
    assert "Truncated: only the first 3 results are shown." in page
    refused = client.get("/sparql", query_string={"query": "CLEAR ALL"}, headers=html)
    assert refused.status_code == 403 and "read-only" in refused.data.decode()
