"""The overview page: runs newest first and paginated, counts by status and class, maps with links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scipion_kg.browse import overview_page
from scipion_kg.project import Project
from scipion_kg.store_oxigraph import OxigraphStore

from .projects import Recorded, client, record_viewer_project, token


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_viewer_project(tmp_path_factory.mktemp("overview"))


def _run_tokens(html: str) -> list[str]:
    return re.findall(r'href="/run/([^"]+)"', html)


def test_runs_newest_first(recorded: Recorded) -> None:
    response = client(recorded).get("/")
    assert response.status_code == 200
    assert _run_tokens(response.get_data(as_text=True)) == [token(iri) for iri in reversed(recorded.order)]


@pytest.mark.parametrize("page", [1, 2, 3, 4])
def test_pagination(recorded: Recorded, page: int) -> None:
    newest_first = [token(iri) for iri in reversed(recorded.order)]
    html = client(recorded, page_size=2).get(f"/?page={page}").get_data(as_text=True)
    assert _run_tokens(html) == newest_first[(page - 1) * 2 : page * 2]
    assert f"page {page} of 4" in html


def test_page_past_the_end_is_empty_not_an_error(recorded: Recorded) -> None:
    response = client(recorded, page_size=2).get("/?page=99")
    assert response.status_code == 200
    assert _run_tokens(response.get_data(as_text=True)) == []


def test_counts(recorded: Recorded) -> None:
    project = Project.find(recorded.project_dir)
    with project.open_store() as store:
        overview = overview_page(store, 1, 100)
    skg = "https://w3id.org/scipion-kg/ontology#"
    assert overview.runs_by_status == {skg + "Failed": 1, skg + "Succeeded": 6}
    assert overview.total_runs == 7
    # One movie set, micrograph set, CTF set, coordinate set and particle set from the chain; the
    # refinement's map, FSC curve and odd file. An input is also typed with the class its consumer declared
    # (skg:DataFile by default): movies, micrographs, coordinates, CTF, particles, the outside reference
    # and the map the failed run read make 7.
    expected = {
        "MovieSet": 1, "MicrographSet": 1, "CTFSet": 1, "CoordinateSet": 1, "ParticleSet": 1,
        "Map": 1, "FSCCurve": 1, "MetadataFile": 1, "DataFile": 7,
    }  # fmt: skip
    assert {key.removeprefix(skg): value for key, value in overview.entities_by_class.items()} == expected
    html = client(recorded).get("/").get_data(as_text=True)
    assert re.search(r"Failed</td><td>1</td>", html)
    assert re.search(r"micrograph set</td><td>1</td>", html)


def test_maps_listed_with_lineage_links(recorded: Recorded) -> None:
    html = client(recorded).get("/").get_data(as_text=True)
    map_token = token(recorded.entities["map"])
    assert f'href="/entity/{map_token}"' in html
    assert f'href="/lineage/{map_token}"' in html
    assert recorded.files["map"].relative_to(recorded.project_dir).as_posix() in html
    # only maps are listed there: the FSC curve is not a map
    maps_section = html.split("<h2>Maps</h2>")[1].split("<h2>")[0]
    assert token(recorded.entities["fsc"]) not in maps_section


def test_overview_query_count_does_not_grow_with_runs(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = OxigraphStore.select

    def counting(self: OxigraphStore, query: str) -> list[dict[str, object]]:
        calls.append(query)
        return original(self, query)  # type: ignore[return-value]

    monkeypatch.setattr(OxigraphStore, "select", counting)
    assert client(recorded, page_size=3).get("/").status_code == 200
    assert len(calls) <= 3


def test_empty_project(tmp_path: Path) -> None:
    project = Project.init(tmp_path / "empty")
    project.close()
    recorded = Recorded(project.root, chain=None)  # type: ignore[arg-type]
    html = client(recorded).get("/").get_data(as_text=True)
    assert "No runs recorded yet." in html
    assert "No maps recorded yet." in html
