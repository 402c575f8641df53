"""Comparing two maps' histories: alignment by step and the most upstream divergence."""

from __future__ import annotations

import hashlib

from scipion_kg.compare import compare_histories, run_chain_order
from scipion_kg.lineage import lineage
from scipion_kg.project import Project
from scipion_kg.recorder import Recorder
from scipion_kg.store import Store

from .history_builders import iri_of, motion, movies_file, processing_branch


def test_one_parameter_of_one_step_is_reported_first(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    micrographs = motion(recorder, movies_file(project, "movies.star", "movie_001.tif\n"), patches=[5, 5])
    map_a = processing_branch(recorder, micrographs, max_resolution=5.0)
    map_b = processing_branch(recorder, micrographs, max_resolution=4.0)
    comparison = compare_histories(store, iri_of(project, map_a), iri_of(project, map_b))
    assert [step.step.rsplit("#", 1)[1] for step in comparison.steps] == [
        "MotionCorrection",
        "CTFEstimation",
        "ParticleExtraction",
        "Refinement3D",
        "PostProcessing",
    ]
    first = comparison.first_difference
    assert first is not None
    step, value = first
    assert step.label == "CTF estimation"
    assert (value.kind, value.name, value.a, value.b) == ("parameter", "max_resolution", "5 Å", "4 Å")
    assert comparison.summary == "The histories first differ at CTF estimation: max_resolution 5 Å vs 4 Å"
    # The shared motion correction run does not differ; min_resolution (same value) is not marked.
    assert comparison.steps[0].differences == []
    shared = comparison.steps[0]
    assert shared.a is not None and shared.b is not None and shared.a.iri == shared.b.iri
    assert [v.name for v in step.differences if v.kind == "parameter"] == ["max_resolution"]


def test_software_version_comes_before_parameters_in_the_same_step(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    micrographs = motion(recorder, movies_file(project, "movies.star", "movie_001.tif\n"), patches=[5, 5])
    map_a = processing_branch(recorder, micrographs, max_resolution=5.0, ctffind="4.1.14")
    map_b = processing_branch(recorder, micrographs, max_resolution=4.0, ctffind="4.1.10")
    comparison = compare_histories(store, iri_of(project, map_a), iri_of(project, map_b))
    assert comparison.summary == (
        "The histories first differ at CTF estimation: software CTFFIND 4.1.14 vs CTFFIND 4.1.10"
    )
    first = comparison.first_difference
    assert first is not None
    assert {v.name for v in first[0].differences} >= {"software", "max_resolution"}


def test_identical_histories_have_no_difference(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    micrographs = motion(recorder, movies_file(project, "movies.star", "movie_001.tif\n"), patches=[5, 5])
    map_a = iri_of(project, processing_branch(recorder, micrographs))
    comparison = compare_histories(store, map_a, map_a)
    assert comparison.first_difference is None
    assert "no difference" in comparison.summary
    assert len(comparison.steps) == 5
    assert all(not value.differs for step in comparison.steps for value in step.values)


def test_different_inputs_at_the_root_are_reported(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    movies_a = movies_file(project, "movies_a.star", "movie_001.tif\n")
    movies_b = movies_file(project, "movies_b.star", "movie_002.tif\n")
    map_a = processing_branch(recorder, motion(recorder, movies_a, patches=[5, 5]))
    map_b = processing_branch(recorder, motion(recorder, movies_b, patches=[5, 5]))
    comparison = compare_histories(store, iri_of(project, map_a), iri_of(project, map_b))
    first = comparison.first_difference
    assert first is not None
    step, value = first
    digest_a = hashlib.sha256(movies_a.read_bytes()).hexdigest()
    digest_b = hashlib.sha256(movies_b.read_bytes()).hexdigest()
    assert step.label == "Motion correction"
    assert (value.kind, value.name) == ("input", "movies")
    assert value.a == f"sha256 {digest_a[:12]}…" and value.b == f"sha256 {digest_b[:12]}…"
    assert comparison.summary.startswith(
        "The histories first differ at Motion correction: input movies sha256"
    )


def test_a_step_present_on_one_side_only(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    movies = movies_file(project, "movies.star", "movie_001.tif\n")
    micrographs = motion(recorder, movies, patches=[5, 5])
    map_a = iri_of(project, processing_branch(recorder, micrographs))
    comparison = compare_histories(store, iri_of(project, micrographs), map_a)
    assert comparison.steps[0].differences == []  # both start with the same motion correction
    assert comparison.summary == "The histories first differ at CTF estimation: only history B has this step."


def test_runs_are_ordered_root_most_first(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    micrographs = motion(recorder, movies_file(project, "movies.star", "m\n"), patches=[1, 1])
    final = iri_of(project, processing_branch(recorder, micrographs))
    history = lineage(store, final)
    ordered = [run.step.rsplit("#", 1)[1] for run in run_chain_order(history)]
    assert ordered == [
        "MotionCorrection",
        "CTFEstimation",
        "ParticleExtraction",
        "Refinement3D",
        "PostProcessing",
    ]
