"""The methods paragraph: right software, versions, parameter values and units, and the ontology's DOIs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import rdflib

from scipion_kg.lineage import lineage
from scipion_kg.methods_text import (
    MethodsText,
    Quantity,
    format_quantity,
    methods_for,
    methods_paragraph,
    software_citations,
)
from scipion_kg.project import Project
from scipion_kg.recorder import Parameter, Recorder, Software
from scipion_kg.store import Store

from .history_builders import Output, iri_of, motion, movies_file, processing_branch, run_step

DCTERMS = rdflib.Namespace("http://purl.org/dc/terms/")
SKG = rdflib.Namespace("https://w3id.org/scipion-kg/ontology#")


def ontology_dois() -> dict[str, str]:
    """Software name → DOI, read straight from the ontology's Turtle."""
    graph = rdflib.Graph()
    graph.parse(str(resources.files("scipion_kg.ontology").joinpath("software.ttl")), format="turtle")
    return {
        str(name): str(doi)
        for package, name in graph.subject_objects(SKG.softwareName)
        for doi in graph.objects(package, DCTERMS.bibliographicCitation)
    }


def record(project: Project, store: Store, *, dose_weighting: bool = True) -> tuple[str, Path]:
    recorder = Recorder(project, store)
    movies = movies_file(project, "movies.star", "movie_001.tif\n")
    micrographs = motion(recorder, movies, patches=[5, 5], dose_weighting=dose_weighting)
    sharpened = processing_branch(recorder, micrographs, max_resolution=4.0, symmetry="D2")
    local = run_step(
        recorder,
        "skg:LocalResolutionEstimation",
        [(sharpened, "map")],
        [Output("local_resolution", "local_resolution", "skg:Map")],
        [Parameter("step_size", 1.0, "unit:ANGSTROM"), Parameter("threads", 4, significant=False)],
        Software("ResMap", "1.1.4"),
    )["local_resolution"]
    return iri_of(project, local), sharpened


@pytest.fixture
def text(project: Project, store: Store) -> MethodsText:
    root, _ = record(project, store)
    return methods_for(store, root)


def sentence(text: MethodsText, step: str) -> str:
    return next(s.text for s in text.sentences if s.step.endswith("#" + step))


def test_one_sentence_per_run_in_order(text: MethodsText) -> None:
    steps = [s.step.rsplit("#", 1)[1] for s in text.sentences]
    assert steps == [
        "MotionCorrection",
        "CTFEstimation",
        "ParticleExtraction",
        "Refinement3D",
        "PostProcessing",
        "LocalResolutionEstimation",
    ]
    assert text.paragraph.startswith("Movies were motion-corrected with RELION 3.1.3 (Scheres, 2012)")


@pytest.mark.parametrize(
    ("step", "fragments"),
    [
        (
            "MotionCorrection",
            ["RELION 3.1.3 (Scheres, 2012)", "5 × 5 patches", "with dose weighting", "24 micrographs"],
        ),
        ("CTFEstimation", ["CTFFIND 4.1.14 (Rohou & Grigorieff, 2015)", "between 30 Å and 4 Å resolution"]),
        (
            "ParticleExtraction",
            ["RELION 3.1.3", "boxes of 256 px", "12345 particles", "pixel size of 1.05 Å"],
        ),
        (
            "Refinement3D",
            ["from 12000 particles", "imposing D2 symmetry", "reaching 3.4 Å resolution", "40 Å"],
        ),
        ("PostProcessing", ["3.1 Å at the gold-standard FSC 0.143", "B-factor of -95.5 Å²"]),
    ],
)
def test_sentences_name_software_versions_and_values(
    text: MethodsText, step: str, fragments: list[str]
) -> None:
    written = sentence(text, step)
    for fragment in fragments:
        assert fragment in written, (fragment, written)


def test_unknown_steps_get_a_generic_sentence(text: MethodsText) -> None:
    assert sentence(text, "LocalResolutionEstimation") == (
        "Local resolution estimation was run with ResMap 1.1.4 (Kucukelbir, Sigworth & Tagare, 2014)"
        " (step_size = 1 Å)."
    )  # the insignificant thread count is left out


def test_dose_weighting_clause_follows_the_parameter(project: Project, store: Store) -> None:
    root, _ = record(project, store, dose_weighting=False)
    assert "dose weighting" not in sentence(methods_for(store, root), "MotionCorrection")


def test_references_carry_the_ontology_dois_of_the_packages_used(text: MethodsText) -> None:
    dois = ontology_dois()
    assert [c.name for c in text.references] == ["RELION", "CTFFIND", "ResMap"]  # order of first citation
    for citation in text.references:
        assert citation.doi == dois[citation.name]
        assert f"https://doi.org/{dois[citation.name]}" in citation.reference


def test_builtin_backends_cite_scipion_kg(project: Project, store: Store) -> None:
    recorder = Recorder(project, store)
    movies = movies_file(project, "movies.star", "m\n")
    made = run_step(
        recorder,
        "skg:MotionCorrection",
        [(movies, "movies")],
        [Output("micrographs", "micrographs", "skg:MicrographSet")],
        [Parameter("patches", [1, 1])],
        Software("scipion-kg", "0.1.0", algorithm="frame cross-correlation alignment"),
    )["micrographs"]
    result = methods_for(store, iri_of(project, made))
    assert result.sentences[0].text == (
        "Movies were motion-corrected with the scipion-kg 0.1.0 built-in backend "
        "(frame cross-correlation alignment), using 1 × 1 patches."
    )
    assert [c.package for c in result.references] == [str(SKG.Package_ScipionKG)]
    assert result.references[0].doi is None and result.references[0].reference.startswith("scipion-kg: ")


def test_software_outside_the_ontology_is_named_without_citation(project: Project, store: Store) -> None:
    root, _ = record(project, store)
    history = lineage(store, root)
    citations = {k: v for k, v in software_citations(store).items() if k != "ctffind"}
    written = methods_paragraph(history, citations)
    assert "CTFFIND 4.1.14," in written.paragraph or "CTFFIND 4.1.14." in written.paragraph
    assert "CTFFIND" not in [c.name for c in written.references]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (Quantity([5, 5]), "5 × 5"),
        (Quantity("[110.0,180.0]", "Å"), "110–180 Å"),
        (Quantity(1.8999999999999997, "Å"), "1.9 Å"),
        (Quantity(10.0, "°"), "10°"),
        (Quantity(True), "yes"),
        (Quantity("C1"), "C1"),
    ],
)
def test_values_are_written_as_a_methods_section_would(quantity: Quantity, expected: str) -> None:
    assert format_quantity(quantity) == expected
