"""Security: no path outside the project, every user-supplied string escaped, 404 pages for unknown
names, read-only pages refuse POST."""

from __future__ import annotations

import pytest

from .projects import ESCAPED, HOSTILE, Recorded, client, record_viewer_project, token


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_viewer_project(tmp_path_factory.mktemp("security"))


@pytest.mark.parametrize(
    "url",
    [
        "/file/..%2f..%2fetc%2fpasswd",
        "/file/..",
        "/file/%2e%2e%2f.scipion-kg%2fproject.json",
        "/file/sha256-..%2f..%2fetc%2fpasswd",
        "/file/%2fetc%2fpasswd",
        "/entity/..%2f..",
        "/entity/sha256-abc..def",
        "/entity/.hidden",
        "/run/..%2f..%2fetc",
        "/run/..",
        "/api/entities/..%2f..",
        "/entity/..%2f../image/slices.png",
        "/entity/..%2f../lineage.ttl",
    ],
)
def test_path_traversal_is_404(recorded: Recorded, url: str) -> None:
    response = client(recorded).get(url)
    assert response.status_code == 404
    assert b"root:" not in response.data


def test_file_recorded_outside_the_project_is_not_served(recorded: Recorded) -> None:
    viewer = client(recorded)
    outside = token(recorded.entities["outside"])
    assert viewer.get(f"/file/{outside}").status_code == 404
    html = viewer.get(f"/entity/{outside}").get_data(as_text=True)
    assert str(recorded.files["outside"]) in html  # the page says where it was...
    assert f'href="/file/{outside}"' not in html  # ...but offers no download


@pytest.mark.parametrize(
    "page",
    ["/", "/run/{refine}", "/run/{failed}", "/entity/{hostile}", "/entity/{map}"],
)
def test_hostile_strings_are_escaped(recorded: Recorded, page: str) -> None:
    url = page.format(
        refine=token(recorded.runs["refine"]),
        failed=token(recorded.runs["failed"]),
        hostile=token(recorded.entities["hostile"]),
        map=token(recorded.entities["map"]),
    )
    html = client(recorded).get(url).get_data(as_text=True)
    assert HOSTILE not in html
    assert "<script" not in html


@pytest.mark.parametrize(
    ("page", "where"),
    [
        ("/run/{refine}", "parameter value and command line"),
        ("/run/{failed}", "error message"),
        ("/entity/{hostile}", "path"),
        ("/run/{refine}", "log"),
    ],
)
def test_hostile_strings_are_shown_escaped(recorded: Recorded, page: str, where: str) -> None:
    url = page.format(
        refine=token(recorded.runs["refine"]),
        failed=token(recorded.runs["failed"]),
        hostile=token(recorded.entities["hostile"]),
    )
    assert ESCAPED in client(recorded).get(url).get_data(as_text=True), where


@pytest.mark.parametrize(
    "url",
    [
        "/entity/sha256-" + "0" * 64,
        "/run/" + "f" * 64,
        "/entity/sha256-" + "0" * 64 + "/image/slices.png",
        "/file/sha256-" + "0" * 64,
        "/no/such/page",
    ],
)
def test_unknown_names_give_the_404_page(recorded: Recorded, url: str) -> None:
    response = client(recorded).get(url)
    assert response.status_code == 404
    text = response.get_data(as_text=True)
    assert "<h1>404</h1>" in text and "Back to the overview" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/run/{refine}",
        "/entity/{map}",
        "/entity/{map}/image/slices.png",
        "/file/{map}",
        "/entity/{map}/lineage.ttl",
        "/api/runs",
        "/api/entities/{map}",
        "/api/openapi.json",
    ],
)
def test_post_to_read_only_pages_is_405(recorded: Recorded, url: str) -> None:
    target = url.format(refine=token(recorded.runs["refine"]), map=token(recorded.entities["map"]))
    assert client(recorded).post(target, data={"x": "1"}).status_code == 405


def test_security_headers(recorded: Recorded) -> None:
    response = client(recorded).get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
