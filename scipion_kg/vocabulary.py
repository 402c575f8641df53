"""Loading the shipped ontology, and the vocabulary view the recorder uses to check terms.

The ontology is Turtle in several modules (``ontology/*.ttl`` and the vendored imports in
``ontology/imports/``); this module merges them. Term checks go through :class:`Vocabulary`, built once
per process from a fast pyoxigraph parse.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import pyoxigraph as ox
import rdflib

from .errors import OntologyError, UnknownTermError
from .namespaces import OWL, PROV, QUDT, RDF, RDFS, SKG, compact

__all__ = [
    "FormatDeclaration",
    "Vocabulary",
    "load_rdflib_graph",
    "module_files",
    "ontology_dir",
    "parse_modules",
    "vocabulary",
]

_DECLARATION_KINDS = (
    OWL + "Class",
    OWL + "ObjectProperty",
    OWL + "DatatypeProperty",
    OWL + "AnnotationProperty",
    OWL + "NamedIndividual",
    OWL + "Ontology",
)


def ontology_dir() -> Path:
    """The folder of the installed ontology (package data of ``scipion_kg.ontology``)."""
    return Path(str(resources.files("scipion_kg.ontology")))


EXTENSION_VARIABLE = "SCIPION_KG_ONTOLOGY_PATH"


def extension_dirs() -> tuple[Path, ...]:
    """Folders of ontology extensions (a standards group's or a lab's own conventions and formats).

    Every ``*.ttl`` file in the folders listed in ``$SCIPION_KG_ONTOLOGY_PATH`` (separated like PATH)
    is loaded after the bundled modules: a new package convention needs only a Turtle file there.
    """
    value = os.environ.get(EXTENSION_VARIABLE, "")
    folders = tuple(Path(part) for part in value.split(os.pathsep) if part)
    for folder in folders:
        if not folder.is_dir():
            raise OntologyError(f"${EXTENSION_VARIABLE}: {folder} is not a folder of Turtle files")
    return folders


def module_files(directory: Path | None = None, *, extensions: bool = True) -> list[Path]:
    """The Turtle modules of the ontology, vendored imports and extensions included, shapes excluded."""
    base = directory or ontology_dir()
    files = sorted(base.glob("*.ttl")) + sorted((base / "imports").glob("*.ttl"))
    if not files:
        raise OntologyError(f"no ontology modules (*.ttl) found in {base}")
    if directory is None and extensions:
        for folder in extension_dirs():
            files.extend(sorted(folder.glob("*.ttl")))
    return files


def parse_modules(files: Iterable[Path]) -> list[ox.Quad]:
    """Parse every module with pyoxigraph; a syntax error names the file and the line."""
    quads: list[ox.Quad] = []
    for path in files:
        try:
            quads.extend(ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
        except SyntaxError as error:
            raise OntologyError(f"{path}: Turtle syntax error: {error}") from error
        except OSError as error:
            raise OntologyError(f"{path}: cannot read: {error}") from error
    return quads


def load_rdflib_graph(files: Iterable[Path] | None = None) -> rdflib.Graph:
    """The merged ontology as an rdflib Graph (for pySHACL and ontology tooling)."""
    graph = rdflib.Graph()
    for path in files if files is not None else module_files():
        try:
            graph.parse(path, format="turtle")
        except Exception as error:  # rdflib raises many parser-specific types
            raise OntologyError(f"{path}: Turtle syntax error: {error}") from error
    return graph


@dataclass(frozen=True)
class FormatDeclaration:
    """How a file format is recognised, as the ontology's formats module declares it."""

    iri: str
    label: str
    extensions: tuple[str, ...]
    signature_offset: int | None
    signature_text: str | None
    content_pattern: str | None
    priority: int
    data_class: str | None
    is_text: bool = False


@dataclass
class Vocabulary:
    """What the ontology declares: terms by kind, the class hierarchy, formats and units."""

    declared: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    properties: set[str] = field(default_factory=set)
    individuals: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    superclasses: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    labels: dict[str, str] = field(default_factory=dict)
    formats: dict[str, FormatDeclaration] = field(default_factory=dict)
    deprecated: set[str] = field(default_factory=set)
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_quads(cls, quads: Iterable[ox.Quad]) -> Vocabulary:
        vocabulary = cls()
        by_subject: dict[str, dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for quad in quads:
            subject = quad.subject
            if not isinstance(subject, ox.NamedNode):
                continue
            obj = quad.object
            if isinstance(obj, ox.Triple):
                continue
            by_subject[subject.value][quad.predicate.value].append(obj)
        for iri, properties in by_subject.items():
            types = {
                node.value for node in properties.get(RDF + "type", []) if isinstance(node, ox.NamedNode)
            }
            if types & set(_DECLARATION_KINDS) or iri.startswith(PROV):
                vocabulary.declared.add(iri)
            if OWL + "Class" in types or RDFS + "Class" in types:
                vocabulary.classes.add(iri)
            if types & {OWL + "ObjectProperty", OWL + "DatatypeProperty", OWL + "AnnotationProperty"}:
                vocabulary.properties.add(iri)
            for kind in types - set(_DECLARATION_KINDS):
                vocabulary.individuals[kind].add(iri)
            for parent in properties.get(RDFS + "subClassOf", []):
                if isinstance(parent, ox.NamedNode):
                    vocabulary.superclasses[iri].add(parent.value)
            for label in properties.get(RDFS + "label", []):
                if isinstance(label, ox.Literal) and (
                    label.language in (None, "en") or iri not in vocabulary.labels
                ):
                    vocabulary.labels[iri] = label.value
            if any(
                isinstance(flag, ox.Literal) and flag.value in ("true", "1")
                for flag in properties.get(OWL + "deprecated", [])
            ):
                vocabulary.deprecated.add(iri)
        for iri in vocabulary.individuals.get(SKG + "FileFormat", set()):
            vocabulary.formats[iri] = _format_declaration(
                iri, by_subject[iri], vocabulary.labels.get(iri, iri)
            )
        return vocabulary

    def ancestors(self, iri: str) -> set[str]:
        """Every superclass of ``iri`` (transitively), ``iri`` included."""
        cached = self._ancestors.get(iri)
        if cached is not None:
            return set(cached)
        seen = {iri}
        stack = [iri]
        while stack:
            for parent in self.superclasses.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        self._ancestors[iri] = frozenset(seen)
        return seen

    def is_subclass(self, iri: str, ancestor: str) -> bool:
        cached = self._ancestors.get(iri)
        return ancestor in (cached if cached is not None else self.ancestors(iri))

    def require_class(self, iri: str, ancestor: str, what: str) -> str:
        """Return ``iri`` if it is a declared class under ``ancestor``; else say what is wrong."""
        if iri not in self.classes:
            raise UnknownTermError(
                f"unknown ontology term {compact(iri)} used as {what}: the ontology declares no such class"
                f"{self._suggestion(iri, ancestor)}"
            )
        if iri in self.deprecated:
            raise UnknownTermError(f"{compact(iri)} used as {what} is deprecated in the ontology")
        if not self.is_subclass(iri, ancestor):
            raise UnknownTermError(f"{compact(iri)} used as {what} is not a subclass of {compact(ancestor)}")
        return iri

    def require_individual(self, iri: str, kind: str, what: str) -> str:
        if iri not in self.individuals.get(kind, set()):
            raise UnknownTermError(
                f"unknown ontology term {compact(iri)} used as {what}: it is not a declared {compact(kind)}"
            )
        return iri

    def require_unit(self, iri: str) -> str:
        return self.require_individual(iri, QUDT + "Unit", "a unit")

    def subclasses(self, ancestor: str) -> set[str]:
        return {iri for iri in self.classes if self.is_subclass(iri, ancestor)}

    def _suggestion(self, iri: str, ancestor: str) -> str:
        local = iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1].lower()
        candidates = sorted(compact(c) for c in self.subclasses(ancestor) if local[:4] in c.lower())
        return f" (did you mean one of {', '.join(candidates[:5])}?)" if candidates else ""


def _format_declaration(
    iri: str, properties: dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]], label: str
) -> FormatDeclaration:
    def literals(name: str) -> list[str]:
        return [node.value for node in properties.get(SKG + name, []) if isinstance(node, ox.Literal)]

    def first(name: str) -> str | None:
        values = literals(name)
        return values[0] if values else None

    offset = first("signatureOffset")
    priority = first("formatPriority")
    data_class = next(
        (node.value for node in properties.get(SKG + "holdsDataClass", []) if isinstance(node, ox.NamedNode)),
        None,
    )
    return FormatDeclaration(
        iri=iri,
        label=label,
        extensions=tuple(sorted({ext.lower() for ext in literals("fileExtension")})),
        signature_offset=int(offset) if offset is not None else None,
        signature_text=first("signatureText"),
        content_pattern=first("contentPattern"),
        priority=int(priority) if priority is not None else 0,
        data_class=data_class,
        is_text=first("isTextFormat") == "true",
    )


def vocabulary() -> Vocabulary:
    """The vocabulary of the installed ontology and its extensions (parsed once per set of folders)."""
    return _vocabulary_for(extension_dirs())


@cache
def _vocabulary_for(extensions: tuple[Path, ...]) -> Vocabulary:
    del extensions  # the cache key: module_files() reads the same folders
    return Vocabulary.from_quads(parse_modules(module_files()))
