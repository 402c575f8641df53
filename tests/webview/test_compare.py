"""The /compare page."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from scipion_kg.webview.app import create_app
from scipion_kg.webview.context import ViewerConfig
from scipion_kg.webview.links import entity_token

from scipion_kg.project import Project
from scipion_kg.recorder import Recorder

from ..history_builders import iri_of, motion, movies_file, processing_branch


@pytest.fixture
def maps(project: Project) -> tuple[str, str]:
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        micrographs = motion(recorder, movies_file(project, "movies.star", "m\n"), patches=[5, 5])
        a = processing_branch(recorder, micrographs, max_resolution=5.0)
        b = processing_branch(recorder, micrographs, max_resolution=4.0)
        tokens = entity_token(iri_of(project, a)), entity_token(iri_of(project, b))
    assert tokens[0] is not None and tokens[1] is not None
    return tokens[0], tokens[1]


@pytest.fixture
def client(project: Project, maps: tuple[str, str]) -> FlaskClient:
    client: FlaskClient = create_app(ViewerConfig(project_dir=project.root)).test_client()
    return client


def test_the_first_difference_is_highlighted(client: FlaskClient, maps: tuple[str, str]) -> None:
    response = client.get("/compare", query_string={"a": maps[0], "b": maps[1]})
    assert response.status_code == 200
    page = response.data.decode()
    assert "The histories first differ at CTF estimation: max_resolution 5 Å vs 4 Å" in page
    first_row = page[page.index("first-difference") :]
    first_row = first_row[: first_row.index("</tr>")]
    assert "parameter max_resolution" in first_row and "differs" in first_row
    assert "5 Å" in first_row and "4 Å" in first_row


def test_same_map_twice_has_no_difference(client: FlaskClient, maps: tuple[str, str]) -> None:
    page = client.get("/compare", query_string={"a": maps[0], "b": maps[0]}).data.decode()
    assert "no difference" in page and 'class="differs' not in page


@pytest.mark.parametrize("query", [{}, {"a": "sha256-abc"}, {"b": "x"}])
def test_missing_parameters_show_the_form(client: FlaskClient, query: dict[str, str]) -> None:
    response = client.get("/compare", query_string=query)
    assert response.status_code == 200
    page = response.data.decode()
    assert '<form class="compare-form"' in page and "<table" not in page


@pytest.mark.parametrize("b", ["sha256-" + "f" * 64, "<script>alert(1)</script>", "../../etc/passwd"])
def test_unknown_or_malformed_entities_are_404_and_escaped(
    client: FlaskClient, maps: tuple[str, str], b: str
) -> None:
    response = client.get("/compare", query_string={"a": maps[0], "b": b})
    assert response.status_code == 404
    assert b"<script>alert(1)</script>" not in response.data
