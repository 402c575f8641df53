"""The run page: parameters with units, software, user, host, times, inputs and outputs, logs, figures."""

from __future__ import annotations

import getpass
import re
import socket

import pytest

from scipion_kg.browse import format_duration

from .projects import LOG_HEAD, LOG_TAIL, Recorded, client, record_viewer_project, sha256_of, token


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_viewer_project(tmp_path_factory.mktemp("runs"))


def _page(recorded: Recorded, name: str) -> str:
    response = client(recorded).get(f"/run/{token(recorded.runs[name])}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("run", "name", "value", "unit"),
    [
        ("ctf", "max_resolution", "5", "Å"),
        ("motion", "dose_per_frame", "1.2", "e/Å²"),
        ("motion", "patches", "5", ""),
        ("refine", "initial_lowpass", "40", "Å"),
        ("refine", "symmetry", "C1", ""),
    ],
)
def test_parameters_with_unit_symbols(recorded: Recorded, run: str, name: str, value: str, unit: str) -> None:
    html = _page(recorded, run)
    row = re.search(
        rf'<td class="mono">{re.escape(name)}</td>\s*<td class="mono">([^<]*)</td>\s*<td[^>]*>([^<]*)</td>',
        html,
    )
    assert row is not None, name
    assert (row.group(1), row.group(2)) == (value, unit)


def test_insignificant_parameter_marked(recorded: Recorded) -> None:
    html = _page(recorded, "ctf")
    assert re.search(r'threads</td>\s*<td class="mono">2</td>\s*<td[^>]*></td>\s*<td>no</td>', html)


def test_software_user_host_and_status(recorded: Recorded) -> None:
    html = _page(recorded, "refine")
    assert "RELION 3.1.3" in html
    assert f"<td>{getpass.getuser()}</td>" in html
    assert f"<td>{socket.gethostname()}</td>" in html
    assert 'class="status-Succeeded"' in html
    failed = _page(recorded, "failed")
    assert 'class="status-Failed"' in failed
    assert "RuntimeError: failed on" in failed


def test_inputs_and_outputs_with_hashes_and_sizes(recorded: Recorded) -> None:
    html = _page(recorded, "refine")
    inputs, outputs = html.split("<h2>Inputs</h2>")[1].split("<h2>Outputs</h2>")
    particles = recorded.files["particles"]
    assert sha256_of(particles)[:16] in inputs
    assert f'href="/entity/{token(recorded.entities["particles"])}"' in inputs
    assert f"{particles.stat().st_size} bytes" in inputs
    map_file = recorded.files["map"]
    outputs = outputs.split("<h2>")[0]
    assert sha256_of(map_file)[:16] in outputs
    assert f"{map_file.stat().st_size / 1024:.1f} KiB" in outputs
    for role in ("map", "fsc", "odd"):
        assert f"<td>{role}</td>" in outputs


def test_log_tail_capped(recorded: Recorded) -> None:
    html = _page(recorded, "refine")
    assert LOG_TAIL in html
    assert LOG_HEAD not in html  # the log is larger than the 64 KiB shown: only its end is
    assert "run.log" in html and "run.err" in html


def test_figures_served_from_the_run_directory(recorded: Recorded) -> None:
    viewer = client(recorded)
    run = token(recorded.runs["refine"])
    html = viewer.get(f"/run/{run}").get_data(as_text=True)
    url = f"/run/{run}/figure/figures/angles.png"
    assert f'src="{url}"' in html
    response = viewer.get(url)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    figure = recorded.files["map"].parent / "figures" / "angles.png"
    assert response.data == figure.read_bytes()


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "missing.png", "..%2f..%2f.scipion-kg%2fproject.json", "../../outside/reference.png"],
)
def test_figure_route_refuses_other_files(recorded: Recorded, name: str) -> None:
    response = client(recorded).get(f"/run/{token(recorded.runs['refine'])}/figure/{name}")
    assert response.status_code == 404


def test_unknown_run_is_404(recorded: Recorded) -> None:
    response = client(recorded).get("/run/" + "0" * 64)
    assert response.status_code == 404
    assert "Back to the overview" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.25, "250 ms"),
        (4.25, "4.2 s"),
        (42.0, "42 s"),
        (185.0, "3 min 05 s"),
        (7440.0, "2 h 04 min"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
