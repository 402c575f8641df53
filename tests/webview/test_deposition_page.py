"""The viewer's deposition page: the preview filled from the graph, the missing items, the refusal of a
map without lineage, and the download of a package prepared by ``scipion-kg deposit``."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from scipion_kg.webview import ViewerConfig, create_app

from scipion_kg.cli import main
from scipion_kg.deposition.fsc import masked_half_map_fsc
from scipion_kg.importer import import_files
from scipion_kg.ontology_graph import sync_ontology_graph
from scipion_kg.project import Project
from scipion_kg.recorder import Recorder

from ..deposition.recorded_spa import RecordedSPA, record_spa, write_map


@pytest.fixture
def spa(project: Project) -> RecordedSPA:
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        return record_spa(project, store)


def _token(iri: str) -> str:
    return iri.rsplit("/", 1)[-1]


def test_the_page_shows_the_recomputed_resolution_missing_items_and_evidence(
    spa: RecordedSPA, project: Project
) -> None:
    client = create_app(ViewerConfig(project_dir=project.root)).test_client()
    page = client.get(f"/deposition/{_token(spa.entities['postprocess_map'])}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    expected = masked_half_map_fsc(
        spa.files["refine_half_map_1"], spa.files["refine_half_map_2"], spa.files["mask"]
    ).corrected.resolution()
    assert f"Resolution {expected:.2f} Å" in html
    assert "_em_buffer.pH" in html and "_em_imaging.microscope_model" in html  # the user must supply them
    assert "CTFFIND" in html and "within mask" in html  # values with their evidence
    assert "None yet" in html


def test_a_prepared_package_downloads_as_a_zip_of_the_recorded_files(
    spa: RecordedSPA, project: Project, tmp_path: Path
) -> None:
    arguments = ["deposit", str(spa.files["postprocess_map"]), "--out", str(tmp_path / "package")]
    assert main([*arguments, "--project", str(project.root)]) == 2  # written; not validated, not complete
    client = create_app(ViewerConfig(project_dir=project.root)).test_client()
    token = _token(spa.entities["postprocess_map"])
    html = client.get(f"/deposition/{token}").get_data(as_text=True)
    (link,) = re.findall(r'href="(/deposition/[^"]+\.zip)"', html)
    response = client.get(link)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert {"emd_0000.map", "emd_0000_half_map_1.map", "header.xml", "metadata.cif", "fsc.xml"} <= set(
        archive.namelist()
    )
    assert archive.read("emd_0000_half_map_2.map") == spa.files["refine_half_map_2"].read_bytes()
    assert archive.read("header.xml") == (tmp_path / "package" / "header.xml").read_bytes()
    other_run = "0" * 64
    assert client.get(f"/deposition/{token}/package/{other_run}.zip").status_code == 404
    assert client.get(f"/deposition/{token}/package/..%2f..%2fetc.zip").status_code == 404


def test_a_map_without_lineage_is_explained_not_crashed(project: Project, tmp_path: Path) -> None:
    import numpy as np

    path = write_map(project.root / "outside.mrc", np.zeros((8, 8, 8), dtype=np.float32))
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        run = import_files(Recorder(project, store), [path])
    client = create_app(ViewerConfig(project_dir=project.root)).test_client()
    page = client.get(f"/deposition/{_token(run.outputs[0].iri)}")
    assert page.status_code == 200
    assert 'id="deposition-problem"' in page.get_data(as_text=True)


@pytest.mark.parametrize("token", ["sha256-" + "0" * 64, "..", "sha256-<script>"])
def test_unknown_or_malformed_maps_give_404(project: Project, token: str) -> None:
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
    client = create_app(ViewerConfig(project_dir=project.root)).test_client()
    response = client.get(f"/deposition/{token}")
    assert response.status_code == 404
    assert "<script>" not in response.get_data(as_text=True)
