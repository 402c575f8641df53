"""The same store interface against a real SPARQL 1.1 server (Oxigraph server, started by the test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scipion_kg.graphs import graph_quads, remove_graph
from scipion_kg.lineage import lineage
from scipion_kg.project import Project, StoreConfig
from scipion_kg.store_endpoint import EndpointStore

from .conftest import record_chain

pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sparql_server(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("oxigraph")
    if binary is None:
        pytest.skip("the 'oxigraph' server (pip install oxigraph) is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "serve",
            "--location",
            str(tmp_path / "server-db"),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/query", params={"query": "ASK {}"}, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("the SPARQL server did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_project_on_an_endpoint_records_and_answers_lineage(sparql_server: str, tmp_path: Path) -> None:
    project = Project.init(
        tmp_path / "remote", store=StoreConfig(f"{sparql_server}/query", f"{sparql_server}/update")
    )
    embedded = Project.init(tmp_path / "local")
    with project.open_store(write=True) as remote, embedded.open_store(write=True) as local:
        chain = record_chain(project, remote)
        local_chain = record_chain(embedded, local)
        remote_lineage = lineage(remote, chain.entities["particles"])
        local_lineage = lineage(local, local_chain.entities["particles"])
        assert set(remote_lineage.runs) == set(chain.runs.values())
        # The same computations on the same content get the same IRIs in both stores.
        assert set(remote_lineage.runs) == set(local_lineage.runs)
        assert set(remote_lineage.entities) == set(local_lineage.entities)
        assert (
            remote_lineage.runs[chain.runs["ctf"]].parameters
            == local_lineage.runs[chain.runs["ctf"]].parameters
        )


def test_endpoint_store_basic_operations(sparql_server: str) -> None:
    import pyoxigraph as ox

    store = EndpointStore(f"{sparql_server}/query", f"{sparql_server}/update")
    triple = ox.Triple(ox.NamedNode("urn:s"), ox.NamedNode("urn:p"), ox.Literal("300.0"))
    store.add_quads(graph_quads("urn:g", [triple]))
    store.add_quads(graph_quads("urn:h", [triple]))
    assert store.graph_names() == {"urn:g", "urn:h"}
    assert store.ask("ASK { <urn:s> <urn:p> ?o }")
    # Two graphs assert the triple; the default graph holds it once.
    assert len(store.select("SELECT ?o WHERE { <urn:s> <urn:p> ?o }")) == 1
    remove_graph(store, "urn:g")
    assert store.graph_names() == {"urn:h"}
    assert store.ask("ASK { <urn:s> <urn:p> ?o }"), "still asserted by urn:h"
    remove_graph(store, "urn:h")
    assert store.graph_names() == set()
    assert not store.ask("ASK { <urn:s> <urn:p> ?o }")
    read_only = EndpointStore(f"{sparql_server}/query", read_only=True)
    with pytest.raises(Exception, match="read-only"):
        read_only.update("INSERT DATA { <urn:a> <urn:b> <urn:c> }")
