"""The /methods/<token> page."""

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
def recorded_map(project: Project) -> str:
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        micrographs = motion(recorder, movies_file(project, "movies.star", "m\n"), patches=[5, 5])
        return iri_of(project, processing_branch(recorder, micrographs, max_resolution=4.0))


@pytest.fixture
def client(project: Project, recorded_map: str) -> FlaskClient:
    client: FlaskClient = create_app(ViewerConfig(project_dir=project.root)).test_client()
    return client


def test_the_page_shows_the_paragraph_and_the_dois(client: FlaskClient, recorded_map: str) -> None:
    token = entity_token(recorded_map)
    assert token is not None
    response = client.get(f"/methods/{token}")
    assert response.status_code == 200
    page = response.data.decode()
    assert "Movies were motion-corrected with RELION 3.1.3 (Scheres, 2012), using 5 × 5 patches" in page
    assert "between 30 Å and 4 Å resolution" in page
    assert 'href="https://doi.org/10.1016/j.jsb.2012.09.006"' in page  # RELION
    assert 'href="https://doi.org/10.1016/j.jsb.2015.08.008"' in page  # CTFFIND


@pytest.mark.parametrize(
    "token",
    ["sha256-" + "0" * 64, "not..a<token>", "sha256-%3Cscript%3E"],
)
def test_unknown_or_malformed_tokens_are_404(client: FlaskClient, token: str) -> None:
    response = client.get(f"/methods/{token}")
    assert response.status_code == 404
    assert b"<script>" not in response.data
