"""The ontology: it parses, obeys its rules (which do catch what they are for), HermiT finds it
consistent, it covers the 3DEM core, and its PDBx mappings name real dictionary items."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib

from scipion_kg.namespaces import PROV, SKG
from scipion_kg.ontology_check import check_ontology, rule_files, run_rules
from scipion_kg.reasoner import run_hermit
from scipion_kg.vocabulary import load_rdflib_graph, module_files, ontology_dir, parse_modules, vocabulary

STEP_CLASSES = [
    "Import",
    "MotionCorrection",
    "CTFEstimation",
    "ParticlePicking",
    "ParticleExtraction",
    "Classification2D",
    "InitialModel",
    "Classification3D",
    "Refinement3D",
    "Reconstruction",
    "PostProcessing",
    "ResolutionEstimation",
    "Masking",
    "FormatConversion",
    "TiltSeriesAlignment",
    "TomogramReconstruction",
    "SubtomogramAveraging",
]
DATA_CLASSES = [
    "Movie",
    "Micrograph",
    "CTFModel",
    "CoordinateSet",
    "ParticleSet",
    "Classes2D",
    "Classes3D",
    "Map",
    "HalfMap",
    "Mask",
    "FSCCurve",
    "AtomicModel",
    "TiltSeries",
    "Tomogram",
    "SubtomogramSet",
    "Acquisition",
    "OpticsGroup",
    "GainReference",
    "DefectMap",
    "HelicalSegment",
    "PointGroupSymmetry",
    "LocalResolutionMap",
]


@pytest.fixture(scope="module")
def graph() -> rdflib.Graph:
    return load_rdflib_graph()


def test_every_module_parses_and_is_an_ontology(graph: rdflib.Graph) -> None:
    files = module_files()
    assert {f.name for f in files} >= {
        "scipion-kg.ttl",
        "core.ttl",
        "acquisition.ttl",
        "processing.ttl",
        "software.ttl",
        "formats.ttl",
        "units.ttl",
        "prov-o.ttl",
    }
    ontologies = set(graph.subjects(rdflib.RDF.type, rdflib.OWL.Ontology))
    assert len(ontologies) == len(files)


def test_the_release_has_a_version_iri_and_imports_every_module(graph: rdflib.Graph) -> None:
    release = rdflib.URIRef("https://w3id.org/scipion-kg/ontology")
    assert str(graph.value(release, rdflib.OWL.versionIRI)).startswith(
        "https://w3id.org/scipion-kg/ontology/"
    )
    imports = {str(i) for i in graph.objects(release, rdflib.OWL.imports)}
    modules = {str(o) for o in graph.subjects(rdflib.RDF.type, rdflib.OWL.Ontology)} - {str(release)}
    assert imports == modules
    assert "http://www.w3.org/ns/prov-o" in imports


@pytest.mark.parametrize("rule", [path.stem for path in rule_files()])
def test_rule_finds_no_violation(rule: str) -> None:
    quads = parse_modules(module_files())
    assert run_rules(quads, [ontology_dir() / "sparql" / f"{rule}.rq"]) == []


BROKEN = {
    "missing-label-violation": 'skg:Broken a owl:Class ; skos:definition "x"@en ; dcterms:source "test" .',
    "missing-definition-violation": 'skg:Broken a owl:Class ; rdfs:label "broken"@en .',
    "undeclared-term-violation": "skg:Map skg:notDeclared skg:Broken .",
    "deprecated-without-replacement-violation": "skg:Map owl:deprecated true .",
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_rule_catches_what_it_is_for(rule: str) -> None:
    text = (
        "@prefix skg: <https://w3id.org/scipion-kg/ontology#> .\n"
        "@prefix owl: <http://www.w3.org/2002/07/owl#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
        "@prefix dcterms: <http://purl.org/dc/terms/> .\n" + BROKEN[rule]
    )
    quads = parse_modules(module_files()) + list(ox.parse(text.encode(), format=ox.RdfFormat.TURTLE))
    found = run_rules(quads, [ontology_dir() / "sparql" / f"{rule}.rq"])
    assert {v.term for v in found} & {SKG + "Broken", SKG + "Map", SKG + "notDeclared"}


def test_the_core_holds_at_least_60_classes_with_the_required_ones() -> None:
    vocab = vocabulary()
    own = {c for c in vocab.classes if c.startswith(SKG)}
    assert len(own) >= 60, len(own)
    for name in STEP_CLASSES:
        assert vocab.is_subclass(SKG + name, SKG + "ProcessingStep"), name
        assert vocab.is_subclass(SKG + name, PROV + "Activity"), name
    for name in DATA_CLASSES:
        assert vocab.is_subclass(SKG + name, PROV + "Entity"), name
    assert vocab.is_subclass(SKG + "SoftwareProgram", PROV + "SoftwareAgent")
    assert vocab.is_subclass(SKG + "SoftwarePackage", PROV + "SoftwareAgent")


def test_datatype_properties_of_quantities_declare_qudt_units(graph: rdflib.Graph) -> None:
    unit = rdflib.URIRef(SKG + "unit")
    with_unit = {s for s in graph.subjects(unit, None)}
    assert len(with_unit) >= 15
    units = {
        str(u) for u in graph.subjects(rdflib.RDF.type, rdflib.URIRef("http://qudt.org/schema/qudt/Unit"))
    }
    for prop in with_unit:
        for value in graph.objects(prop, unit):
            assert str(value) in units, f"{prop} declares unit {value}, which the ontology does not declare"


def test_mappings_to_external_ontologies_use_their_real_iri_forms(graph: rdflib.Graph) -> None:
    patterns = {
        "http://scipion.i2pc.es/ontology/": re.compile(r"CRYOEM_\d{7}"),
        "http://purl.obolibrary.org/obo/": re.compile(r"[A-Za-z]+_\d{7}"),
        "http://edamontology.org/": re.compile(r"(format|operation|data|topic)_\d{4}"),
    }
    mapped = 0
    for predicate in ("exactMatch", "closeMatch", "broadMatch", "narrowMatch"):
        for _, target in graph.subject_objects(
            rdflib.URIRef("http://www.w3.org/2004/02/skos/core#" + predicate)
        ):
            for base, pattern in patterns.items():
                if str(target).startswith(base):
                    assert pattern.fullmatch(str(target)[len(base) :]), target
                    mapped += 1
    assert mapped >= 30


def test_pdbx_mappings_name_items_of_the_real_dictionary(graph: rdflib.Graph, shared_data: Path) -> None:
    dictionary = shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"
    with gzip.open(dictionary, "rt", encoding="utf-8", errors="replace") as handle:
        items = {line[5:].strip() for line in handle if line.startswith("save__")}
    mapped = {str(o) for o in graph.objects(None, rdflib.URIRef(SKG + "pdbxItem"))}
    assert len(mapped) >= 20
    missing = sorted(m for m in mapped if m.lstrip("_") not in {i.lstrip("_") for i in items})
    assert missing == []


def test_step_and_entity_classes_never_overlap(graph: rdflib.Graph) -> None:
    vocab = vocabulary()
    assert not vocab.subclasses(PROV + "Activity") & vocab.subclasses(PROV + "Entity")
    assert (
        rdflib.URIRef(PROV + "Entity"),
        rdflib.OWL.disjointWith,
        rdflib.URIRef(PROV + "Activity"),
    ) in graph or (
        rdflib.URIRef(PROV + "Activity"),
        rdflib.OWL.disjointWith,
        rdflib.URIRef(PROV + "Entity"),
    ) in graph


needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="HermiT needs Java")


@pytest.mark.reasoner
@needs_java
def test_hermit_finds_the_ontology_consistent_with_no_unsatisfiable_class() -> None:
    report = check_ontology()
    assert report.violations == []
    assert report.reasoner is not None
    assert report.reasoner.consistent, report.reasoner.message
    assert report.reasoner.unsatisfiable == ()


@pytest.mark.reasoner
@needs_java
def test_hermit_does_report_an_unsatisfiable_class(graph: rdflib.Graph) -> None:
    broken = rdflib.Graph()
    for triple in graph:
        broken.add(triple)
    # A half map is a map; declaring the two disjoint leaves no possible half map.
    broken.add((rdflib.URIRef(SKG + "Map"), rdflib.OWL.disjointWith, rdflib.URIRef(SKG + "HalfMap")))
    result = run_hermit(broken)
    assert SKG + "HalfMap" in result.unsatisfiable
