"""Downloads: an entity's file (inside the project only) and lineage exports in four formats."""

from __future__ import annotations

import json

import pyoxigraph as ox
import pytest

from .projects import Recorded, client, record_viewer_project, token


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_viewer_project(tmp_path_factory.mktemp("downloads"))


@pytest.mark.parametrize(
    ("name", "mimetype"), [("map", "application/octet-stream"), ("fsc", "application/octet-stream")]
)
def test_file_download_is_the_recorded_file(recorded: Recorded, name: str, mimetype: str) -> None:
    response = client(recorded).get(f"/file/{token(recorded.entities[name])}")
    assert response.status_code == 200
    assert response.data == recorded.files[name].read_bytes()
    assert response.mimetype == mimetype
    assert response.headers["Content-Disposition"] == f"attachment; filename={recorded.files[name].name}"


def test_changed_file_is_not_served(recorded: Recorded) -> None:
    path = recorded.files["movies"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"# edited after recording\n")
        assert client(recorded).get(f"/file/{token(recorded.entities['movies'])}").status_code == 404
    finally:
        path.write_bytes(original)
    assert client(recorded).get(f"/file/{token(recorded.entities['movies'])}").status_code == 200


def _parse(fmt: str, text: str) -> set[str]:
    """The IRIs (or PROV qualified names) the export mentions."""
    if fmt == "ttl":
        return {str(t.subject.value) for t in ox.parse(text.encode(), format=ox.RdfFormat.TURTLE)}
    if fmt == "jsonld":
        return {str(t.subject.value) for t in ox.parse(text.encode(), format=ox.RdfFormat.JSON_LD)}
    if fmt == "prov-json":
        document = json.loads(text)
        return {f"{kind}:{name}" for kind in ("entity", "activity") for name in document.get(kind, {})}
    assert text.startswith("document")
    return {line.strip() for line in text.splitlines()}


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [
        ("prov-json", "application/json", "json"),
        ("provn", "text/provenance-notation; charset=utf-8", "provn"),
        ("ttl", "text/turtle; charset=utf-8", "ttl"),
        ("jsonld", "application/ld+json", "jsonld"),
    ],
)
def test_lineage_download(recorded: Recorded, fmt: str, content_type: str, extension: str) -> None:
    particles = token(recorded.entities["particles"])
    response = client(recorded).get(f"/entity/{particles}/lineage.{fmt}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert (
        response.headers["Content-Disposition"] == f'attachment; filename="{particles}-upstream.{extension}"'
    )
    text = response.get_data(as_text=True)
    assert _parse(fmt, text)
    # the particles' upstream lineage holds the five chain runs
    for name in ("import", "motion", "ctf", "pick", "extract"):
        assert token(recorded.runs[name]) in text, name


# Regression: lineage-describe.rq once bound ?s from an out-of-scope ?node inside a UNION branch, so the
# Turtle and JSON-LD exports held every triple of the store.
@pytest.mark.parametrize("fmt", ["prov-json", "provn", "ttl", "jsonld"])
def test_lineage_download_holds_only_the_lineage(recorded: Recorded, fmt: str) -> None:
    """The refinement made from the particles is downstream of them, not in their upstream lineage."""
    text = (
        client(recorded)
        .get(f"/entity/{token(recorded.entities['particles'])}/lineage.{fmt}")
        .get_data(as_text=True)
    )
    assert token(recorded.runs["extract"]) in text
    # (find, not "not in": pytest's explanation of a failed "not in" on a large text takes minutes)
    assert text.find(token(recorded.runs["refine"])) == -1


def test_downstream_lineage_download(recorded: Recorded) -> None:
    movies = token(recorded.entities["movies"])
    response = client(recorded).get(f"/entity/{movies}/lineage.ttl?direction=downstream")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="{movies}-downstream.ttl"'
    text = response.get_data(as_text=True)
    for name in ("motion", "ctf", "pick", "extract", "refine", "failed"):
        assert token(recorded.runs[name]) in text, name


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/entity/{t}/lineage.xml", 404),
        ("/entity/{t}/lineage.ttl?direction=sideways", 400),
        ("/entity/sha256-" + "0" * 64 + "/lineage.ttl", 404),
        ("/file/sha256-" + "0" * 64, 404),
    ],
)
def test_download_errors(recorded: Recorded, url: str, code: int) -> None:
    response = client(recorded).get(url.format(t=token(recorded.entities["map"])))
    assert response.status_code == code
