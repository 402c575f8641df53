"""The package conventions declared in the ontology (module ``conventions.ttl`` and extensions).

Loaded once per set of ontology folders into plain dataclasses the mapping engine uses; nothing here
knows a package by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pyoxigraph as ox

from scipion_kg.errors import ConversionError, OntologyError
from scipion_kg.namespaces import SKG, compact
from scipion_kg.vocabulary import extension_dirs, module_files, parse_modules

from .canonical import CANONICAL_COLUMNS
from .raw import RawDocument

__all__ = ["ColumnRule", "Convention", "conventions", "select_convention", "unit_factor"]

QUDT_MULTIPLIER = "http://qudt.org/schema/qudt/conversionMultiplier"
UNIT = "http://qudt.org/vocab/unit/"
PIXEL = UNIT + "PIXEL_COUNT"

# The canonical unit of each canonical column (converters.canonical), as full IRIs.
_CANONICAL_UNIT = {
    "unit:ANGSTROM": UNIT + "ANGSTROM",
    "unit:DEG": UNIT + "DEG",
    "unit:KiloV": UNIT + "KiloV",
    "unit:MilliM": UNIT + "MilliM",
    "unit:SEC": UNIT + "SEC",
    "unit:FRACTION": UNIT + "FRACTION",
    "skg:SquareAngstrom": SKG + "SquareAngstrom",
    "skg:ElectronPerSquareAngstrom": SKG + "ElectronPerSquareAngstrom",
    "unit:PIXEL_COUNT": PIXEL,
}


@dataclass(frozen=True)
class ColumnRule:
    """One file column <-> one canonical column."""

    label: str
    column: str
    unit: str | None = None  # full IRI of the file's unit
    index_base: int | None = None
    block: str | None = None  # None: the main block
    scaled_by: str | None = None
    divided_by: str | None = None
    divisor_written: float | None = None
    per_row_optics: bool = False


@dataclass(frozen=True)
class Convention:
    iri: str
    label: str
    format_iri: str
    table_kind: str
    priority: int = 0
    main_block: str = ""
    optics_block: str | None = None
    write_version: str | None = None
    requires_blocks: tuple[str, ...] = ()
    requires_labels: tuple[str, ...] = ()
    forbids_labels: tuple[str, ...] = ()
    requires_columns: tuple[str, ...] = ()
    rotation_encoding: str | None = None  # local name: EulerAngleRotation...
    rotation_labels: tuple[str, ...] = ()
    euler_sequence: str = ""
    transposed: bool = True  # package matrix = A^T
    angle_unit: str | None = None
    shift_labels: tuple[str, ...] = ()
    shift_unit: str | None = None
    shift_sign: float = 1.0
    defocus_encoding: str | None = None
    defocus_labels: tuple[str, ...] = ()
    defocus_unit: str | None = None
    defocus_angle_unit: str | None = None
    defocus_difference_sign: float = 1.0
    astigmatism_angle_offset: float = 0.0
    image_locator: str | None = None
    tilt_alignment_encoding: str | None = None
    tilt_alignment_labels: tuple[str, ...] = ()
    row_id_label: str | None = None
    rules: tuple[ColumnRule, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return compact(self.iri)

    def labels(self) -> set[str]:
        """Every label this convention gives a meaning to."""
        out = {rule.label for rule in self.rules}
        out.update(self.rotation_labels, self.shift_labels, self.defocus_labels, self.tilt_alignment_labels)
        out.update(rule.scaled_by for rule in self.rules if rule.scaled_by)
        out.update(rule.divided_by for rule in self.rules if rule.divided_by)
        if self.image_locator:
            out.add(self.image_locator)
        return out


@dataclass(frozen=True)
class ConventionSet:
    conventions: dict[str, Convention]
    multipliers: dict[str, float]
    syntax: dict[str, str]  # format IRI -> syntax module name


def _literal(node: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple | None) -> str | None:
    return node.value if isinstance(node, ox.Literal | ox.NamedNode) else None


def _load(files: list[Path]) -> ConventionSet:
    store = ox.Store()
    store.extend(parse_modules(files))
    by_subject: dict[str, dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]]] = {}
    for quad in store.quads_for_pattern(None, None, None):
        node = quad.subject
        if isinstance(node, ox.Triple) or isinstance(quad.object, ox.Triple):
            continue
        key = node.value if isinstance(node, ox.NamedNode) else "_:" + node.value
        by_subject.setdefault(key, {}).setdefault(quad.predicate.value, []).append(quad.object)

    def first(props: dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]], name: str) -> str | None:
        values = props.get(SKG + name, [])
        return _literal(values[0]) if values else None

    def words(props: dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]], name: str) -> tuple[str, ...]:
        value = first(props, name)
        if not value:
            return ()
        # Labels with spaces (CTFFIND's column names) are separated by '|'.
        return tuple(part.strip() for part in value.split("|")) if "|" in value else tuple(value.split())

    def all_values(
        props: dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]], name: str
    ) -> tuple[str, ...]:
        return tuple(sorted(v for v in (_literal(node) for node in props.get(SKG + name, [])) if v))

    multipliers = {
        subject: float(values[0].value)
        for subject, props in by_subject.items()
        if (values := props.get(QUDT_MULTIPLIER)) and isinstance(values[0], ox.Literal)
    }
    syntax = {
        subject: str(first(props, "syntaxModule"))
        for subject, props in by_subject.items()
        if first(props, "syntaxModule")
    }
    result: dict[str, Convention] = {}
    rdf_type = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
    for subject, props in by_subject.items():
        if not any(_literal(t) == SKG + "PackageConvention" for t in props.get(rdf_type, [])):
            continue
        where = compact(subject)
        rules: list[ColumnRule] = []
        for target in props.get(SKG + "hasColumnMapping", []):
            key = target.value if isinstance(target, ox.NamedNode) else "_:" + target.value
            mapping = by_subject.get(key, {})
            label, column = first(mapping, "fileLabel"), first(mapping, "canonicalColumnName")
            if not label or not column:
                raise OntologyError(
                    f"{where}: a column mapping lacks skg:fileLabel or skg:canonicalColumnName"
                )
            if column not in CANONICAL_COLUMNS:
                raise OntologyError(
                    f"{where}: column mapping of {label!r} names unknown canonical column {column!r}"
                )
            base, divisor = first(mapping, "indexBase"), first(mapping, "divisorWritten")
            rules.append(
                ColumnRule(
                    label=label,
                    column=column,
                    unit=first(mapping, "sourceUnit"),
                    index_base=int(base) if base is not None else None,
                    block=first(mapping, "inBlock"),
                    scaled_by=first(mapping, "scaledByLabel"),
                    divided_by=first(mapping, "dividedByLabel"),
                    divisor_written=float(divisor) if divisor is not None else None,
                    per_row_optics=first(mapping, "perRowOptics") == "true",
                )
            )
        rules.sort(key=lambda rule: (rule.block or "", rule.label, rule.column))
        format_iri, kind = first(props, "conventionForFormat"), first(props, "tableKind")
        if not format_iri or not kind:
            raise OntologyError(
                f"{where}: a package convention needs skg:conventionForFormat and skg:tableKind"
            )

        def local(
            name: str, props: dict[str, list[ox.NamedNode | ox.BlankNode | ox.Literal]] = props
        ) -> str | None:
            value = first(props, name)
            return value.rsplit("#", 1)[-1] if value else None

        result[subject] = Convention(
            iri=subject,
            label=next((v.value for v in props.get("http://www.w3.org/2000/01/rdf-schema#label", [])), where),
            format_iri=format_iri,
            table_kind=kind,
            priority=int(first(props, "dialectPriority") or 0),
            main_block=first(props, "mainBlock") or "",
            optics_block=first(props, "opticsBlock"),
            write_version=first(props, "writeVersion"),
            requires_blocks=all_values(props, "requiresBlock"),
            requires_labels=all_values(props, "requiresLabel"),
            forbids_labels=all_values(props, "forbidsLabel"),
            requires_columns=words(props, "requiresCanonicalColumns"),
            rotation_encoding=local("rotationEncoding"),
            rotation_labels=words(props, "rotationLabels"),
            euler_sequence=first(props, "eulerSequence") or "",
            transposed=local("matrixRelation") != "PivotMatrix",
            angle_unit=first(props, "angleUnit"),
            shift_labels=words(props, "shiftLabels"),
            shift_unit=first(props, "shiftUnit"),
            shift_sign=float(first(props, "shiftSign") or 1),
            defocus_encoding=local("defocusEncoding"),
            defocus_labels=words(props, "defocusLabels"),
            defocus_unit=first(props, "defocusUnit"),
            defocus_angle_unit=first(props, "defocusAngleUnit"),
            defocus_difference_sign=float(first(props, "defocusDifferenceSign") or 1),
            astigmatism_angle_offset=float(first(props, "astigmatismAngleOffset") or 0),
            image_locator=first(props, "imageLocatorLabel"),
            tilt_alignment_encoding=local("tiltAlignmentEncoding"),
            tilt_alignment_labels=words(props, "tiltAlignmentLabels"),
            row_id_label=first(props, "rowIdentifierLabel"),
            rules=tuple(rules),
        )
    return ConventionSet(result, multipliers, syntax)


@cache
def _conventions_for(extensions: tuple[Path, ...]) -> ConventionSet:
    del extensions  # cache key; module_files() reads the same folders
    return _load(module_files())


def conventions() -> ConventionSet:
    """Every declared convention, unit multiplier and syntax module (bundled ontology + extensions)."""
    return _conventions_for(extension_dirs())


def unit_factor(source: str | None, canonical: str | None) -> float:
    """The factor taking a value in ``source`` to ``canonical`` (both full unit IRIs; None = as is)."""
    if source is None or canonical is None or source == canonical:
        return 1.0
    multipliers = conventions().multipliers
    try:
        return multipliers[source] / multipliers[canonical]
    except KeyError as missing:
        raise OntologyError(
            f"no qudt:conversionMultiplier for {compact(str(missing.args[0]))}: cannot convert "
            f"{compact(source)} to {compact(canonical)}"
        ) from None


def canonical_unit(column: str) -> str | None:
    unit = CANONICAL_COLUMNS[column].unit
    return _CANONICAL_UNIT.get(unit, unit) if unit else None


def _labels_of(document: RawDocument) -> set[str]:
    labels: set[str] = set()
    for block in document:
        for name, values in block.columns.items():
            labels.add(name)
            if getattr(values, "ndim", 1) == 2:
                labels.update(f"{name}[{index}]" for index in range(values.shape[1]))
    return labels


def select_convention(document: RawDocument, wanted: str | None = None) -> Convention:
    """The convention of ``document``: ``wanted`` (IRI or compact name) or the best matching dialect."""
    known = conventions().conventions
    if wanted is not None:
        for convention in known.values():
            if wanted in (convention.iri, convention.name, convention.name.split(":", 1)[-1]):
                return convention
        raise ConversionError(
            f"unknown convention {wanted!r}; known: {', '.join(sorted(c.name for c in known.values()))}"
        )
    labels = _labels_of(document)
    candidates = [
        convention
        for convention in known.values()
        if convention.format_iri == document.format_iri
        and all(block in document.blocks for block in convention.requires_blocks)
        and all(label in labels for label in convention.requires_labels)
        and not any(label in labels for label in convention.forbids_labels)
    ]
    if not candidates:
        where = document.source or "the document"
        raise ConversionError(
            f"{where}: no declared convention of {compact(document.format_iri)} matches this file "
            f"(blocks: {', '.join(document.blocks) or 'none'})"
        )
    return max(candidates, key=lambda c: (c.priority, len(c.labels() & labels), c.iri))
