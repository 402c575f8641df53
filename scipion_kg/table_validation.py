"""Validation of canonical tables and set-level metadata against ``ontology/shapes/tables.ttl``.

Tables are validated by the checks compiled from the shapes (:mod:`scipion_kg.table_shapes`): one
vectorised pass per column, Python objects only for the violations that are reported (at most
``max_results`` per shape and constraint; all are counted). Set-level metadata, a small graph, is validated
by pySHACL with the same shapes file. Both give a :class:`ValidationReport` in the vocabulary of the SHACL
validation report (W3C SHACL, section 3.6): focus node (a row is ``<table IRI>#row-<1-based index>``),
result path, value, source constraint component, source shape, severity and message.

The two paths agree: pySHACL on the RDF of sampled rows (:func:`table_sample_graph`) finds the same
(focus node, path, constraint component, shape) results as the compiled checks (tests prove it on random
tables). Set graphs are put in the canonical form an Oxigraph store gives them (``"300.0"^^xsd:double``
becomes ``"300"^^xsd:double``, ``xsd:int`` becomes ``xsd:integer``) before pySHACL runs, so a verdict does
not depend on where the graph came from.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyoxigraph as ox
import rdflib

from .converters.canonical import SetMetadata, Table
from .errors import TableValidationError
from .namespaces import ID, SKG, XSD, compact
from .table_shapes import SH, TableShapes, column_datatype, lexical_form, shapes_graph, table_shapes
from .vocabulary import vocabulary

__all__ = [
    "ConstraintCount",
    "ValidationReport",
    "ValidationResult",
    "set_metadata_graph",
    "table_sample_graph",
    "validate_set",
    "validate_table",
]

DEFAULT_TABLE_IRI = ID + "table/unsaved"
SKGSH = "https://w3id.org/scipion-kg/shapes#"
_VIOLATION = SH + "Violation"

Value = float | int | str


@dataclass(frozen=True)
class ValidationResult:
    """One ``sh:ValidationResult``."""

    focus_node: str
    result_path: str | None
    value: Value | None
    value_term: str | None  # the value as an N-Triples term, for the RDF report
    source_constraint_component: str
    source_shape: str
    severity: str
    message: str

    @property
    def key(self) -> tuple[str, str | None, str, str]:
        """What identifies a result across validators: focus node, path, constraint component, shape."""
        return (self.focus_node, self.result_path, self.source_constraint_component, self.source_shape)


@dataclass(frozen=True)
class ConstraintCount:
    """How many results one constraint component of one shape gave (all of them, reported or not)."""

    source_shape: str
    source_constraint_component: str
    result_path: str | None
    severity: str
    count: int


@dataclass(frozen=True)
class ValidationReport:
    """A SHACL validation report; ``results`` may be a capped selection, ``counts`` count every result."""

    conforms: bool
    results: tuple[ValidationResult, ...]
    counts: tuple[ConstraintCount, ...]

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.results)

    def count(self, shape: str, component: str) -> int:
        """The number of results of one constraint component (``sh:MaxInclusiveConstraintComponent``...)."""
        return sum(
            c.count
            for c in self.counts
            if c.source_shape == shape and c.source_constraint_component in (component, SH + component)
        )

    def summary(self, limit: int = 10) -> str:
        """A human-readable summary: the counts per shape, then the first ``limit`` results."""
        if not self.counts:
            return "conforms: no SHACL result"
        lines = [f"{'conforms' if self.conforms else 'does not conform'}: {self.total} SHACL results"]
        for c in self.counts:
            lines.append(
                f"  {c.count} x {_short(c.source_constraint_component)} on {_short(c.result_path or '')}"
                f" ({_short(c.source_shape)}, {_short(c.severity)})"
            )
        for result in self.results[:limit]:
            lines.append(f"  {result.focus_node}: {result.message} (value {result.value!r})")
        if len(self.results) > limit or self.truncated:
            lines.append(f"  ... {self.total - min(limit, len(self.results))} more")
        return "\n".join(lines)

    def merged(self, *others: ValidationReport) -> ValidationReport:
        """One report of several (for example a table's and its optics table's)."""
        reports = (self, *others)
        return ValidationReport(
            all(r.conforms for r in reports),
            tuple(result for r in reports for result in r.results),
            tuple(count for r in reports for count in r.counts),
        )

    def raise_for_violations(self, what: str) -> None:
        """Raise :class:`TableValidationError` naming ``what`` when the report does not conform."""
        if not self.conforms:
            raise TableValidationError(f"{what} violates its SHACL shapes:\n{self.summary()}")

    def to_turtle(self) -> str:
        """Same as :meth:`to_rdf`."""
        return self.to_rdf()

    def to_rdf(self) -> str:
        """The report as a ``sh:ValidationReport`` graph in Turtle (deterministic; counts as comments)."""
        lines = [
            f"@prefix sh: <{SH}> .",
            f"@prefix xsd: <{XSD}> .",
            "",
        ]
        listed = Counter((r.source_shape, r.source_constraint_component) for r in self.results)
        for c in self.counts:
            lines.append(
                f"# {_short(c.source_shape)}, {_short(c.source_constraint_component)}: {c.count} results"
                f" ({listed[c.source_shape, c.source_constraint_component]} listed)"
            )
        lines.append("[] a sh:ValidationReport ;")
        lines.append(
            f"  sh:conforms {'true' if self.conforms else 'false'}" + (" ;" if self.results else " .")
        )
        for index, result in enumerate(self.results):
            parts = [
                "a sh:ValidationResult",
                f"sh:focusNode <{result.focus_node}>",
            ]
            if result.result_path is not None:
                parts.append(f"sh:resultPath <{result.result_path}>")
            if result.value_term is not None:
                parts.append(f"sh:value {result.value_term}")
            parts += [
                f"sh:sourceConstraintComponent <{result.source_constraint_component}>",
                f"sh:sourceShape <{result.source_shape}>",
                f"sh:resultSeverity <{result.severity}>",
                f"sh:resultMessage {_string_term(result.message)}",
            ]
            end = " ." if index == len(self.results) - 1 else " ;"
            lines.append("  sh:result [ " + " ; ".join(parts) + " ]" + end)
        return "\n".join(lines) + "\n"


def _short(iri: str) -> str:
    for prefix, base in (("sh", SH), ("skgsh", SKGSH)):
        if iri.startswith(base):
            return f"{prefix}:{iri[len(base) :]}"
    return compact(iri)


def _string_term(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _value_term(value: Value) -> str:
    if isinstance(value, float):
        return f'"{lexical_form(value)}"^^<{XSD}double>'
    if isinstance(value, int):
        return f'"{value}"^^<{XSD}integer>'
    return _string_term(value)


def _python_value(cell: object) -> Value:
    if isinstance(cell, np.floating | float):
        return float(cell)
    if isinstance(cell, np.integer | int):
        return int(cell)
    return str(cell)


def _row_iri(table_iri: str, row: int) -> str:
    return f"{table_iri}#row-{row + 1}"


def validate_table(
    table: Table,
    table_iri: str = DEFAULT_TABLE_IRI,
    *,
    shapes: TableShapes | None = None,
    max_results: int = 100,
    include_related: bool = True,
) -> ValidationReport:
    """Validate every row of ``table`` (and of its related tables, under ``<table IRI>/<name>``)."""
    compiled = shapes or table_shapes()
    results: list[ValidationResult] = []
    counts: list[ConstraintCount] = []
    _validate_rows(table, table_iri, compiled, max_results, results, counts)
    if include_related:
        for name, child in sorted(table.related.items()):
            child_report = validate_table(
                child, f"{table_iri}/{name}", shapes=compiled, max_results=max_results, include_related=True
            )
            results.extend(child_report.results)
            counts.extend(child_report.counts)
    conforms = not any(c.severity == _VIOLATION for c in counts)
    return ValidationReport(conforms, tuple(results), tuple(counts))


def _validate_rows(
    table: Table,
    table_iri: str,
    shapes: TableShapes,
    max_results: int,
    results: list[ValidationResult],
    counts: list[ConstraintCount],
) -> None:
    row_shape = shapes.row_shape(table.kind)
    n_rows = table.n_rows
    for name, column in table.columns.items():
        if column.ndim != 1 or len(column) != n_rows:
            raise TableValidationError(
                f"{table_iri}: column {name} has shape {column.shape}; the table has {n_rows} rows"
            )
    for check in row_shape.checks:
        values = table.columns.get(check.column)
        try:
            violations = list(check.violations(values, n_rows))
        except TypeError as error:
            raise TableValidationError(f"{table_iri}: column {check.column}: {error}") from error
        for violation in violations:
            mask = violation.mask
            rows: npt.NDArray[np.intp]
            if isinstance(mask, bool | np.bool_):
                if not mask or n_rows == 0:
                    continue
                count = n_rows
                rows = np.arange(min(n_rows, max_results))
            else:
                count = int(np.count_nonzero(mask))
                if count == 0:
                    continue
                rows = np.flatnonzero(mask)[:max_results]
            counts.append(
                ConstraintCount(check.shape, violation.component, check.path, check.severity, count)
            )
            for row in rows.tolist():
                value: Value | None = None
                if values is not None and violation.component != SH + "MinCountConstraintComponent":
                    value = _python_value(values[row])
                results.append(
                    ValidationResult(
                        focus_node=_row_iri(table_iri, row),
                        result_path=check.path,
                        value=value,
                        value_term=_value_term(value) if value is not None else None,
                        source_constraint_component=violation.component,
                        source_shape=check.shape,
                        severity=check.severity,
                        message=violation.message,
                    )
                )


def table_sample_graph(
    table: Table,
    rows: Iterable[int] | None = None,
    table_iri: str = DEFAULT_TABLE_IRI,
    *,
    shapes: TableShapes | None = None,
) -> rdflib.Graph:
    """The RDF of some rows (0-based indices; all rows when ``None``): each row is ``<table IRI>#row-<n>``,
    typed with its kind's row class, with one literal per canonical column. Floats are ``xsd:double``
    (NaN and infinities as XSD writes them), integers ``xsd:integer``, strings plain literals."""
    compiled = shapes or table_shapes()
    row_class = rdflib.URIRef(compiled.row_shape(table.kind).row_class)
    columns: list[tuple[rdflib.URIRef, npt.NDArray[np.generic], rdflib.URIRef | None]] = []
    for name, values in sorted(table.columns.items()):
        prop = compiled.column_property.get(name)
        if prop is None:
            raise TableValidationError(
                f"{table_iri}: column {name} is not a canonical column of the ontology"
            )
        try:
            datatype = column_datatype(values)
        except TypeError as error:
            raise TableValidationError(f"{table_iri}: column {name}: {error}") from error
        columns.append(
            (rdflib.URIRef(prop), values, None if datatype == XSD + "string" else rdflib.URIRef(datatype))
        )
    graph = rdflib.Graph()
    selected = range(table.n_rows) if rows is None else rows
    for row in selected:
        subject = rdflib.URIRef(_row_iri(table_iri, int(row)))
        graph.add((subject, rdflib.RDF.type, row_class))
        for predicate, values, literal_type in columns:
            graph.add((subject, predicate, rdflib.Literal(lexical_form(values[row]), datatype=literal_type)))
    return graph


def set_metadata_graph(metadata: SetMetadata, set_iri: str, set_class: str = SKG + "EMSet") -> rdflib.Graph:
    """The set-level metadata as triples on the set's entity, with the properties the ontology names for
    each :class:`SetMetadata` field (``skg:setMetadataField``). Fields without such a property
    (``micrograph_size``, ``tomogram_size``) are not written."""
    fields = table_shapes().set_field_property
    graph = rdflib.Graph()
    subject = rdflib.URIRef(set_iri)
    graph.add((subject, rdflib.RDF.type, rdflib.URIRef(set_class)))
    for field in dataclasses.fields(metadata):
        value = getattr(metadata, field.name)
        field_property = fields.get(field.name)
        if value is None or field_property is None:
            continue
        annotation = str(field.type)
        literal: rdflib.Literal
        if annotation.startswith("float"):
            literal = rdflib.Literal(lexical_form(float(value)), datatype=rdflib.XSD.double)
        elif annotation.startswith("int"):
            literal = rdflib.Literal(str(int(value)), datatype=rdflib.XSD.integer)
        else:
            literal = rdflib.Literal(str(value))
        graph.add((subject, rdflib.URIRef(field_property), literal))
    return graph


def validate_set(graph: rdflib.Graph, *, shapes_path: Path | None = None) -> ValidationReport:
    """Run pySHACL with the table shapes on a set-level graph (after putting it in canonical form)."""
    import pyshacl  # ~0.06 s to import; the compiled table checks never need it

    data = _canonical_form(graph)
    _add_class_hierarchy(data)
    conforms, report_graph, _ = pyshacl.validate(
        data,
        shacl_graph=shapes_graph(shapes_path),
        inference="none",
        advanced=True,
        allow_warnings=True,
    )
    results = _results_of(report_graph)
    tally = Counter(
        (r.source_shape, r.source_constraint_component, r.result_path, r.severity) for r in results
    )
    counts = tuple(
        ConstraintCount(shape, component, path, severity, count)
        for (shape, component, path, severity), count in sorted(tally.items(), key=lambda item: str(item[0]))
    )
    return ValidationReport(bool(conforms), results, counts)


def _canonical_form(graph: rdflib.Graph) -> rdflib.Graph:
    """The graph as an Oxigraph store returns it (canonical lexical forms, plain strings)."""
    store = ox.Store()
    store.load(graph.serialize(format="nt", encoding="utf-8"), format=ox.RdfFormat.N_TRIPLES)
    text = store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.DefaultGraph())
    return rdflib.Graph().parse(data=text.decode("utf-8") if text else "", format="nt")


def _add_class_hierarchy(data: rdflib.Graph) -> None:
    """State the ontology's superclasses of every class used, so sh:targetClass skg:EMSet reaches sets
    typed with a subclass (pySHACL follows rdfs:subClassOf in the data graph)."""
    vocab = vocabulary()
    for cls in set(data.objects(None, rdflib.RDF.type)):
        for ancestor in vocab.ancestors(str(cls)) - {str(cls)}:
            data.add((cls, rdflib.RDFS.subClassOf, rdflib.URIRef(ancestor)))


def _results_of(report: rdflib.Graph) -> tuple[ValidationResult, ...]:
    sh = rdflib.Namespace(SH)
    results: list[ValidationResult] = []
    for node in report.subjects(rdflib.RDF.type, sh.ValidationResult):
        value = report.value(node, sh.value)
        path = report.value(node, sh.resultPath)
        message = report.value(node, sh.resultMessage)
        python: Value | None = None
        if isinstance(value, rdflib.Literal):
            converted = value.toPython()
            python = converted if isinstance(converted, float | int | str) else str(value)
        elif value is not None:
            python = str(value)
        results.append(
            ValidationResult(
                focus_node=str(report.value(node, sh.focusNode)),
                result_path=str(path) if path is not None else None,
                value=python,
                value_term=value.n3() if value is not None else None,
                source_constraint_component=str(report.value(node, sh.sourceConstraintComponent)),
                source_shape=str(report.value(node, sh.sourceShape)),
                severity=str(report.value(node, sh.resultSeverity)),
                message=str(message) if message is not None else "",
            )
        )
    return tuple(sorted(results, key=lambda r: (r.key, r.message)))
