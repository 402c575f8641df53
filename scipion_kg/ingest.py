"""Ingesting run bundles into the store: validated first, idempotent, all-or-nothing per call.

Each bundle goes into its own named graph (``<run>/bundle``). The ledger graph remembers the SHA-256 of
the bundle file each graph was loaded from, so ingesting the same bundle again changes nothing, and a
re-run of the same computation replaces the old graph in one SPARQL update.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .bundle import BUNDLE_FILE, bundle_graph_iri
from .errors import BundleError, UnknownTermError
from .graphs import replace_graph_update
from .hashing import hash_bytes
from .namespaces import PROV, QUDT, RDF, SKG, compact, ledger_graph_iri, sha256_of_entity_iri
from .project import Project
from .store import Store
from .terms import Lit
from .validation import validate_bundle_shacl
from .vocabulary import Vocabulary

__all__ = ["IngestReport", "ParsedBundle", "find_bundles", "ingest_bundles", "parse_bundle"]

_STATUSES = {SKG + "Succeeded", SKG + "Failed"}


@dataclass
class IngestReport:
    ingested: int = 0
    replaced: int = 0
    unchanged: int = 0
    triples: int = 0
    runs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedBundle:
    path: Path
    sha256: str
    run: str
    graph: str
    triples: list[ox.Quad]  # as parsed: in the default graph


def find_bundles(project: Project) -> list[Path]:
    """Every complete bundle under the project's run directories (temporary files are never bundles)."""
    return sorted(project.runs_dir.rglob(BUNDLE_FILE))


def parse_bundle(path: Path, vocabulary: Vocabulary, data: bytes | None = None) -> ParsedBundle:
    """Parse and check one bundle file; any problem raises :class:`BundleError` naming the file."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BundleError(f"{path}: cannot read the bundle: {error}") from error
    try:
        triples = list(ox.parse(data, format=ox.RdfFormat.TURTLE))
    except SyntaxError as error:
        raise BundleError(f"{path}: not a valid Turtle bundle: {error}") from error
    run = _check_bundle(path, triples, vocabulary)
    return ParsedBundle(path, hash_bytes(data), run, bundle_graph_iri(run), triples)


def _check_bundle(path: Path, triples: Sequence[ox.Quad], vocabulary: Vocabulary) -> str:
    """The bundle rules; returns the run's IRI."""
    types: dict[str, set[str]] = {}
    generated_by: dict[str, str] = {}
    values: dict[tuple[str, str], list[ox.NamedNode | ox.BlankNode | ox.Literal]] = {}
    declared = vocabulary.declared
    for triple in triples:
        subject, predicate, obj = triple.subject, triple.predicate.value, triple.object
        if isinstance(subject, ox.BlankNode):
            raise BundleError(f"{path}: blank node {subject} found: bundles name every node with an IRI")
        if isinstance(obj, ox.BlankNode):
            raise BundleError(f"{path}: blank node {obj} found: bundles name every node with an IRI")
        if isinstance(obj, ox.Triple) or isinstance(subject, ox.Triple):
            raise BundleError(f"{path}: RDF-star triple terms are not allowed in bundles")
        if (predicate.startswith(SKG) or predicate.startswith(PROV)) and predicate not in declared:
            raise UnknownTermError(f"{path}: unknown ontology term {compact(predicate)} used as a property")
        if predicate == RDF + "type" and isinstance(obj, ox.NamedNode):
            if obj.value.startswith((SKG, PROV)) and obj.value not in declared:
                raise UnknownTermError(f"{path}: unknown ontology term {compact(obj.value)} used as a type")
            types.setdefault(subject.value, set()).add(obj.value)
        elif predicate == PROV + "wasGeneratedBy" and isinstance(obj, ox.NamedNode):
            generated_by[subject.value] = obj.value
        values.setdefault((subject.value, predicate), []).append(obj)
    steps = [
        subject
        for subject, kinds in types.items()
        if any(vocabulary.is_subclass(kind, SKG + "ProcessingStep") for kind in kinds)
    ]
    if len(steps) != 1:
        raise BundleError(
            f"{path}: a bundle describes exactly one run of a skg:ProcessingStep; found {len(steps)}"
        )
    run = steps[0]
    status = [
        node.value for node in values.get((run, SKG + "runStatus"), []) if isinstance(node, ox.NamedNode)
    ]
    if len(status) != 1 or status[0] not in _STATUSES:
        raise BundleError(f"{path}: run {compact(run)} needs one skg:runStatus, skg:Succeeded or skg:Failed")
    if not values.get((run, PROV + "startedAtTime")):
        raise BundleError(f"{path}: run {compact(run)} has no prov:startedAtTime")
    for entity, activity in generated_by.items():
        if activity != run:
            raise BundleError(
                f"{path}: {compact(entity)} is said to be generated by {compact(activity)}, "
                "which is not this bundle's run"
            )
        if status[0] != SKG + "Succeeded":
            raise BundleError(
                f"{path}: failed run {compact(run)} registers output {compact(entity)}; "
                "a failed run registers no output"
            )
    for (node, predicate), objects in values.items():
        if predicate == SKG + "sha256":
            expected = sha256_of_entity_iri(node)
            if expected is not None and any(getattr(o, "value", None) != expected for o in objects):
                raise BundleError(f"{path}: entity {compact(node)} carries a skg:sha256 that is not its own")
        elif predicate == SKG + "hasFormat":
            for term in objects:
                if term.value not in vocabulary.individuals.get(SKG + "FileFormat", set()):
                    raise UnknownTermError(
                        f"{path}: unknown ontology term {compact(term.value)} used as a file format"
                    )
        elif predicate == SKG + "parameterUnit":
            for term in objects:
                if term.value not in vocabulary.individuals.get(QUDT + "Unit", set()):
                    raise UnknownTermError(
                        f"{path}: unknown ontology term {compact(term.value)} used as a unit"
                    )
    return run


def _ledger(store: Store) -> dict[str, str]:
    rows = store.select(
        f"SELECT ?g ?sha WHERE {{ GRAPH <{ledger_graph_iri()}> {{ ?g <{SKG}bundleSha256> ?sha }} }}"
    )
    return {str(row["g"]): str(row["sha"]) for row in rows if isinstance(row.get("sha"), Lit)}


def _ledger_quads(bundle: ParsedBundle, project: Project) -> list[ox.Quad]:
    ledger = ox.NamedNode(ledger_graph_iri())
    graph = ox.NamedNode(bundle.graph)
    return [
        ox.Quad(graph, ox.NamedNode(SKG + "bundleSha256"), ox.Literal(bundle.sha256), ledger),
        ox.Quad(
            graph, ox.NamedNode(SKG + "filePath"), ox.Literal(project.relative_path(bundle.path)), ledger
        ),
    ]


def ingest_bundles(
    store: Store, project: Project, paths: Iterable[Path], vocabulary: Vocabulary, *, shacl: bool = False
) -> IngestReport:
    """Validate every bundle, then load the new and changed ones; any invalid bundle stops all.

    ``shacl`` also validates each bundle with pySHACL against ``ontology/shapes/run-bundle.ttl``
    (slower: meant for bundles from elsewhere).
    """
    parsed: dict[str, ParsedBundle] = {}
    for path in paths:
        bundle = parse_bundle(path, vocabulary)
        if shacl:
            shacl_report = validate_bundle_shacl(path)
            if not shacl_report.conforms:
                raise BundleError(
                    f"{path}: violates the run-bundle shapes: " + "; ".join(shacl_report.results)
                )
        parsed[bundle.graph] = bundle  # the last file wins when two directories hold the same run
    known = _ledger(store)
    report = IngestReport()
    fresh: list[ParsedBundle] = []
    for graph, bundle in parsed.items():
        previous = known.get(graph)
        if previous == bundle.sha256:
            report.unchanged += 1
        elif previous is None:
            fresh.append(bundle)
        else:
            _replace(store, project, bundle)
            report.replaced += 1
            report.triples += len(bundle.triples)
            report.runs.append(bundle.run)
    if fresh:
        # Data first through the bulk loader, ledger entries last in one transaction: a crash in between
        # leaves graphs without ledger entries, which the next ingest simply adds again (set semantics).
        store.add_quads_bulk(_data_quads(fresh))
        store.add_quads([quad for bundle in fresh for quad in _ledger_quads(bundle, project)])
    for bundle in fresh:
        report.ingested += 1
        report.triples += len(bundle.triples)
        report.runs.append(bundle.run)
    return report


def _data_quads(bundles: Sequence[ParsedBundle]) -> Iterator[ox.Quad]:
    """Each bundle's triples in its named graph and in the default graph (see graphs.py)."""
    for bundle in bundles:
        graph = ox.NamedNode(bundle.graph)
        for quad in bundle.triples:
            yield quad
            yield ox.Quad(quad.subject, quad.predicate, quad.object, graph)


def _replace(store: Store, project: Project, bundle: ParsedBundle) -> None:
    """Swap a run's graph, its share of the default graph and its ledger entry in one SPARQL update."""
    ledger = ledger_graph_iri()
    store.update(
        f"DELETE WHERE {{ GRAPH <{ledger}> {{ <{bundle.graph}> ?p ?o }} }} ;\n"
        + replace_graph_update(bundle.graph, bundle.triples, _ledger_quads(bundle, project))
    )
