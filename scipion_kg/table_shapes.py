"""The SHACL shapes of canonical tables, compiled into vectorised numpy checks over columns.

``ontology/shapes/tables.ttl`` says what a valid row of each table kind is; ``ontology/tables.ttl`` says
which property holds which canonical column (``skg:canonicalColumn``) and which row class holds the rows
of which table kind (``skg:canonicalTableKind``). This module reads both and turns every property shape of
a row shape into a :class:`PropertyCheck` that evaluates a whole column at once and returns, per SHACL
constraint component, a boolean mask of the rows that violate it. Nothing here knows a bound or a required
column: editing the Turtle changes the checks.

The compiled semantics are pySHACL's (RDFLib/pySHACL, ``pyshacl/constraints/core``), so that the
compiled verdict on a table equals pySHACL's verdict on its rows as RDF
(:func:`scipion_kg.table_validation.table_sample_graph`):

- a table cell is one value (there are no missing cells: NaN and ``""`` are values); a column that is absent
  gives every row zero values;
- ``sh:datatype`` compares the column's dtype (float -> ``xsd:double``, int -> ``xsd:integer``, str ->
  ``xsd:string``) with the exact datatype IRI, as SHACL does;
- value ranges compare numbers by value the way pySHACL does (``compare_literal``: equal, greater, else
  less): ``minInclusive`` fails unless ``v >= min``, ``minExclusive`` unless ``v > min``,
  ``maxInclusive`` fails when ``v > max``, ``maxExclusive`` when ``v >= max``. So NaN fails every lower
  bound and passes every upper bound (the SHACL spec would fail both; pySHACL does not), and a string
  compared with a number fails;
- ``sh:pattern`` uses ``re.search`` with the ``i`` and ``m`` flags, on the lexical form of the value.

Store independence (an Oxigraph store returns ``"300.0"^^xsd:double`` as ``"300"^^xsd:double``, ``xsd:int``
as ``xsd:integer``, and drops ``^^xsd:string``) is enforced when compiling: numeric bounds must be typed
like the property (``xsd:double`` or ``xsd:integer``), ``sh:in`` may list only IRIs and plain strings, and
string constraints (``sh:pattern``, ``sh:minLength``, ``sh:maxLength``, ``sh:in``) are allowed only on
``xsd:string`` properties. A constraint the compiler does not know is an error, never silently skipped.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import rdflib
from rdflib.collection import Collection

from .errors import OntologyError
from .namespaces import SKG, XSD, compact
from .vocabulary import ontology_dir

__all__ = [
    "SH",
    "ColumnViolation",
    "PropertyCheck",
    "RowShape",
    "TableShapes",
    "column_datatype",
    "compile_table_shapes",
    "lexical_form",
    "shapes_graph",
    "table_shapes",
]

SH = "http://www.w3.org/ns/shacl#"

Number = int | float
# A mask of violating rows, or True (every row) / False (no row) when the verdict is the same for all rows.
Mask = npt.NDArray[np.bool_] | bool

_XSD_DOUBLE = XSD + "double"
_XSD_INTEGER = XSD + "integer"
_XSD_STRING = XSD + "string"
_DTYPE_KIND_DATATYPE = {"f": _XSD_DOUBLE, "i": _XSD_INTEGER, "u": _XSD_INTEGER, "U": _XSD_STRING}

_BOUNDS = ("minInclusive", "maxInclusive", "minExclusive", "maxExclusive")
_STRING_PARAMETERS = ("pattern", "flags", "minLength", "maxLength", "in")
_PROPERTY_SHAPE_PREDICATES = frozenset(
    {"path", "datatype", "minCount", "maxCount", *_BOUNDS, *_STRING_PARAMETERS}
    | {"message", "severity", "name", "description", "deactivated", "order", "group"}
)
_NODE_SHAPE_PREDICATES = frozenset(
    {"targetClass", "property", "name", "description", "deactivated", "severity", "message"}
)
_SEVERITIES = frozenset({SH + "Violation", SH + "Warning", SH + "Info"})


def _default_shapes_path() -> Path:
    return ontology_dir() / "shapes" / "tables.ttl"


def _default_ontology_path() -> Path:
    return ontology_dir() / "tables.ttl"


def _parse(path: Path) -> rdflib.Graph:
    try:
        return rdflib.Graph().parse(path, format="turtle")
    except OSError as error:
        raise OntologyError(f"{path}: cannot read: {error}") from error
    except Exception as error:  # rdflib raises parser-specific types
        raise OntologyError(f"{path}: Turtle syntax error: {error}") from error


@cache
def _shapes_graph(path: str) -> rdflib.Graph:
    return _parse(Path(path))


def shapes_graph(path: Path | None = None) -> rdflib.Graph:
    """The shapes of ``ontology/shapes/tables.ttl`` (or of ``path``), parsed once per file; do not mutate."""
    return _shapes_graph(str(path or _default_shapes_path()))


def lexical_form(value: object) -> str:
    """The lexical form of a cell as an RDF literal (XSD's ``NaN``, ``INF`` and ``-INF`` for floats)."""
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "INF" if number > 0 else "-INF"
        return repr(number)
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def column_datatype(values: npt.NDArray[np.generic]) -> str:
    """The XSD datatype of the literals of a column, from its dtype (float, int or str)."""
    datatype = _DTYPE_KIND_DATATYPE.get(values.dtype.kind)
    if datatype is None:
        raise TypeError(f"numpy dtype {values.dtype} is not a canonical column type (float, int or str)")
    return datatype


@dataclass(frozen=True)
class ColumnViolation:
    """The rows of a column that violate one constraint component of a property shape."""

    component: str  # full IRI, e.g. sh:MaxInclusiveConstraintComponent
    mask: Mask
    message: str


@dataclass(frozen=True)
class PropertyCheck:
    """One property shape, compiled: the constraints of one canonical column."""

    shape: str
    path: str
    column: str
    severity: str
    message: str | None
    datatype: str | None = None
    min_count: int | None = None
    max_count: int | None = None
    min_inclusive: Number | None = None
    max_inclusive: Number | None = None
    min_exclusive: Number | None = None
    max_exclusive: Number | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    allowed: frozenset[str] | None = None  # sh:in (plain strings; listed IRIs never equal a literal)

    def violations(self, values: npt.NDArray[np.generic] | None, n_rows: int) -> Iterator[ColumnViolation]:
        """The violations of each constraint over a column (``None``: the table has no such column)."""
        count = 0 if values is None else 1
        if self.min_count is not None and count < self.min_count:
            yield self._violation("MinCount", True, f"column {self.column} is required")
        if self.max_count is not None and count > self.max_count:
            yield self._violation("MaxCount", True, f"column {self.column} must be absent")
        if values is None or n_rows == 0:
            return
        datatype = column_datatype(values)
        if self.datatype is not None and datatype != self.datatype:
            yield self._violation(
                "Datatype",
                True,
                f"{self.column} holds {compact(datatype)} values, not {compact(self.datatype)}",
            )
        yield from self._range_violations(values, datatype)
        yield from self._string_violations(values, datatype)

    def _range_violations(self, values: npt.NDArray[np.generic], datatype: str) -> Iterator[ColumnViolation]:
        numeric = datatype in (_XSD_DOUBLE, _XSD_INTEGER)
        numbers = cast(npt.NDArray[np.float64], values)
        tests: tuple[tuple[str, Number | None, str], ...] = (
            ("MinInclusive", self.min_inclusive, ">="),
            ("MinExclusive", self.min_exclusive, ">"),
            ("MaxInclusive", self.max_inclusive, "<="),
            ("MaxExclusive", self.max_exclusive, "<"),
        )
        for name, bound, relation in tests:
            if bound is None:
                continue
            mask: Mask
            if not numeric:
                mask = True  # pySHACL: a non-number never compares with a numeric bound
            elif name == "MinInclusive":
                mask = ~(numbers >= bound)  # NaN fails: the comparison is false
            elif name == "MinExclusive":
                mask = ~(numbers > bound)
            elif name == "MaxInclusive":
                mask = numbers > bound  # NaN passes, as in pySHACL
            else:
                mask = numbers >= bound
            yield self._violation(name, mask, f"{self.column} must be {relation} {lexical_form(bound)}")

    def _string_violations(self, values: npt.NDArray[np.generic], datatype: str) -> Iterator[ColumnViolation]:
        if (
            self.min_length is None
            and self.max_length is None
            and self.pattern is None
            and self.allowed is None
        ):
            return
        strings = cast(npt.NDArray[np.str_], values) if datatype == _XSD_STRING else _lexical_strings(values)
        if self.min_length is not None or self.max_length is not None:
            lengths = np.char.str_len(strings)
            if self.min_length is not None:
                yield self._violation(
                    "MinLength",
                    lengths < self.min_length,
                    f"{self.column} must have at least {self.min_length} character(s)",
                )
            if self.max_length is not None:
                yield self._violation(
                    "MaxLength",
                    lengths > self.max_length,
                    f"{self.column} must have at most {self.max_length} character(s)",
                )
        if self.pattern is not None:
            unique, inverse = np.unique(strings, return_inverse=True)
            matcher = self.pattern
            matches = np.fromiter((matcher.search(str(s)) is not None for s in unique), bool, len(unique))
            yield self._violation(
                "Pattern", ~matches[inverse], f"{self.column} must match {self.pattern.pattern!r}"
            )
        if self.allowed is not None:
            mask: Mask = True  # a typed literal never equals a plain string
            if datatype == _XSD_STRING:
                mask = ~np.isin(strings, np.array(sorted(self.allowed), dtype=str))
            yield self._violation("In", mask, f"{self.column} must be one of {sorted(self.allowed)}")

    def _violation(self, component: str, mask: Mask, default: str) -> ColumnViolation:
        return ColumnViolation(SH + component + "ConstraintComponent", mask, self.message or default)


def _lexical_strings(values: npt.NDArray[np.generic]) -> npt.NDArray[np.str_]:
    unique, inverse = np.unique(values, return_inverse=True)
    forms = np.array([lexical_form(v) for v in unique.tolist()], dtype=str)
    return forms[inverse]


@dataclass(frozen=True)
class RowShape:
    """The compiled node shapes of one table kind."""

    kind: str
    row_class: str
    node_shapes: tuple[str, ...]
    checks: tuple[PropertyCheck, ...]

    @property
    def required_columns(self) -> frozenset[str]:
        return frozenset(c.column for c in self.checks if c.min_count is not None and c.min_count > 0)


@dataclass(frozen=True)
class TableShapes:
    """Every row shape of the shapes file, and the column <-> property mapping of the ontology module."""

    shapes_path: Path
    rows: dict[str, RowShape]
    column_property: dict[str, str]
    set_field_property: dict[str, str]

    @property
    def property_column(self) -> dict[str, str]:
        return {prop: column for column, prop in self.column_property.items()}

    def row_shape(self, kind: str) -> RowShape:
        shape = self.rows.get(kind)
        if shape is None:
            raise OntologyError(
                f"{self.shapes_path}: no node shape targets the row class of table kind {kind!r}"
                f" (shaped kinds: {', '.join(sorted(self.rows))})"
            )
        return shape


def table_shapes(shapes_path: Path | None = None, ontology_path: Path | None = None) -> TableShapes:
    """The compiled shapes (cached per pair of files; pass paths to compile an edited copy)."""
    return _compiled(
        str(shapes_path or _default_shapes_path()), str(ontology_path or _default_ontology_path())
    )


@cache
def _compiled(shapes_path: str, ontology_path: str) -> TableShapes:
    return compile_table_shapes(Path(shapes_path), Path(ontology_path))


def compile_table_shapes(shapes_path: Path, ontology_path: Path) -> TableShapes:
    """Read the shapes and the column vocabulary and compile every row shape (uncached)."""
    shapes = _parse(shapes_path)
    ontology = _parse(ontology_path)
    column_property = _annotation_map(ontology, "canonicalColumn", ontology_path)
    set_field_property = _annotation_map(ontology, "setMetadataField", ontology_path)
    kind_class = _annotation_map(ontology, "canonicalTableKind", ontology_path)
    property_column = {prop: column for column, prop in column_property.items()}
    where = shapes_path.name

    property_shapes = sorted(
        {s for s in shapes.subjects(rdflib.URIRef(SH + "path"), None)}, key=lambda s: s.n3()
    )
    compiled = {
        shape: _compile_property_shape(shapes, shape, property_column, where) for shape in property_shapes
    }

    node_shapes_of: dict[str, list[rdflib.term.Node]] = defaultdict(list)
    for node_shape, target in shapes.subject_objects(rdflib.URIRef(SH + "targetClass")):
        node_shapes_of[str(target)].append(node_shape)
    rows: dict[str, RowShape] = {}
    for kind, row_class in sorted(kind_class.items()):
        nodes = sorted(node_shapes_of.get(row_class, []), key=lambda s: s.n3())
        if not nodes:
            continue
        checks: dict[str, PropertyCheck] = {}
        for node in nodes:
            _check_node_shape(shapes, node, where)
            if _is_deactivated(shapes, node):
                continue
            for prop_shape in shapes.objects(node, rdflib.URIRef(SH + "property")):
                if not isinstance(prop_shape, rdflib.URIRef):
                    raise OntologyError(
                        f"{where}: {_name(node)} has an unnamed property shape: name it (an IRI) so that"
                        " validation reports can cite it as their sh:sourceShape"
                    )
                check = compiled.get(prop_shape)
                if check is None:
                    raise OntologyError(f"{where}: {_name(node)} has a property shape without sh:path")
                if isinstance(check, str):
                    raise OntologyError(check)
                if not _is_deactivated(shapes, prop_shape):
                    checks[check.shape] = check
        rows[kind] = RowShape(
            kind=kind,
            row_class=row_class,
            node_shapes=tuple(str(n) for n in nodes),
            checks=tuple(checks[name] for name in sorted(checks)),
        )
    return TableShapes(shapes_path, rows, column_property, set_field_property)


def _annotation_map(ontology: rdflib.Graph, name: str, path: Path) -> dict[str, str]:
    """``{value: subject IRI}`` of the annotation ``skg:<name>``; each value names exactly one term."""
    found: dict[str, str] = {}
    for subject, value in ontology.subject_objects(rdflib.URIRef(SKG + name)):
        key = str(value)
        if key in found and found[key] != str(subject):
            raise OntologyError(
                f"{path.name}: skg:{name} {key!r} is given to both {compact(found[key])}"
                f" and {compact(str(subject))}"
            )
        found[key] = str(subject)
    return found


def _name(node: rdflib.term.Node) -> str:
    return compact(str(node)) if isinstance(node, rdflib.URIRef) else f"blank node {node.n3()}"


def _is_deactivated(shapes: rdflib.Graph, node: rdflib.term.Node) -> bool:
    flag = shapes.value(node, rdflib.URIRef(SH + "deactivated"))
    return isinstance(flag, rdflib.Literal) and flag.value is True


def _check_node_shape(shapes: rdflib.Graph, node: rdflib.term.Node, where: str) -> None:
    for predicate in set(shapes.predicates(node, None)):
        local = str(predicate)[len(SH) :] if str(predicate).startswith(SH) else None
        if local is not None and local not in _NODE_SHAPE_PREDICATES:
            raise OntologyError(
                f"{where}: node shape {_name(node)} uses sh:{local},"
                " which the table compiler does not support"
            )


def _compile_property_shape(
    shapes: rdflib.Graph, shape: rdflib.term.Node, property_column: dict[str, str], where: str
) -> PropertyCheck | str:
    """Compile a property shape; a shape of a property that is no canonical column gives an error text
    (used only if a row shape refers to it). Unsupported or store-dependent constraints raise."""
    name = _name(shape)
    values: dict[str, list[rdflib.term.Node]] = defaultdict(list)
    for predicate, obj in shapes.predicate_objects(shape):
        text = str(predicate)
        if text.startswith(SH):
            local = text[len(SH) :]
            if local not in _PROPERTY_SHAPE_PREDICATES:
                raise OntologyError(
                    f"{where}: {name} uses sh:{local}, which the table compiler does not support"
                )
            values[local].append(obj)
        elif predicate == rdflib.RDF.type and obj not in (
            rdflib.URIRef(SH + "PropertyShape"),
            rdflib.URIRef(SH + "Shape"),
        ):
            raise OntologyError(f"{where}: {name} is typed {_name(obj)}; expected sh:PropertyShape")

    def single(local: str) -> rdflib.term.Node | None:
        found = values.get(local, [])
        if len(found) > 1:
            raise OntologyError(
                f"{where}: {name} has {len(found)} values of sh:{local}; the compiler needs one"
            )
        return found[0] if found else None

    path = single("path")
    if not isinstance(path, rdflib.URIRef):
        raise OntologyError(
            f"{where}: {name} has a sh:path that is not a property IRI (paths are not supported)"
        )
    datatype_node = single("datatype")
    datatype = str(datatype_node) if datatype_node is not None else None
    if datatype is not None and datatype not in (_XSD_DOUBLE, _XSD_INTEGER, _XSD_STRING):
        raise OntologyError(
            f"{where}: {name} has sh:datatype {compact(datatype)};"
            " table columns are xsd:double, xsd:integer or xsd:string"
        )
    bounds = {local: _bound(single(local), datatype, name, local, where) for local in _BOUNDS}
    string_locals = [local for local in _STRING_PARAMETERS if local in values]
    if string_locals and datatype != _XSD_STRING:
        raise OntologyError(
            f"{where}: {name} uses sh:{string_locals[0]} on a property that is not xsd:string: it would"
            " test the lexical form of a number, which RDF stores rewrite (300.0 becomes 300)"
        )
    severity_node = single("severity")
    severity = str(severity_node) if severity_node is not None else SH + "Violation"
    if severity not in _SEVERITIES:
        raise OntologyError(
            f"{where}: {name} has sh:severity {severity}; expected sh:Violation, sh:Warning or sh:Info"
        )
    messages = sorted(str(m) for m in values.get("message", []) if isinstance(m, rdflib.Literal))
    check = PropertyCheck(
        shape=str(shape),
        path=str(path),
        column=property_column.get(str(path), ""),
        severity=severity,
        message=messages[0] if messages else None,
        datatype=datatype,
        min_count=_integer(single("minCount"), name, "minCount", where),
        max_count=_integer(single("maxCount"), name, "maxCount", where),
        min_inclusive=bounds["minInclusive"],
        max_inclusive=bounds["maxInclusive"],
        min_exclusive=bounds["minExclusive"],
        max_exclusive=bounds["maxExclusive"],
        min_length=_integer(single("minLength"), name, "minLength", where),
        max_length=_integer(single("maxLength"), name, "maxLength", where),
        pattern=_pattern(single("pattern"), single("flags"), name, where),
        allowed=_allowed(shapes, single("in"), name, where),
    )
    if not check.column:
        return f"{where}: {name} constrains {compact(str(path))}, which no skg:canonicalColumn names"
    return check


def _bound(
    node: rdflib.term.Node | None, datatype: str | None, name: str, local: str, where: str
) -> Number | None:
    if node is None:
        return None
    expected = datatype if datatype in (_XSD_DOUBLE, _XSD_INTEGER) else None
    if not isinstance(node, rdflib.Literal) or str(node.datatype) not in (_XSD_DOUBLE, _XSD_INTEGER):
        raise OntologyError(
            f"{where}: {name} sh:{local} {node.n3()} must be an xsd:double (written like 1.0e0)"
            " or an xsd:integer"
        )
    if expected is not None and str(node.datatype) != expected:
        raise OntologyError(
            f"{where}: {name} sh:{local} {node.n3()} must be typed {compact(expected)} like the property,"
            " so that values compare exactly as pySHACL compares them"
        )
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OntologyError(f"{where}: {name} sh:{local} {node.n3()} is not a well-formed number")
    return value


def _integer(node: rdflib.term.Node | None, name: str, local: str, where: str) -> int | None:
    if node is None:
        return None
    value = node.value if isinstance(node, rdflib.Literal) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OntologyError(f"{where}: {name} sh:{local} must be a non-negative integer, not {node.n3()}")
    return value


def _pattern(
    node: rdflib.term.Node | None, flags: rdflib.term.Node | None, name: str, where: str
) -> re.Pattern[str] | None:
    if node is None:
        if flags is not None:
            raise OntologyError(f"{where}: {name} has sh:flags without sh:pattern")
        return None
    letters = str(flags) if flags is not None else ""
    if set(letters) - {"i", "m"}:
        # pySHACL honours only i and m: another flag would make the two verdicts differ.
        raise OntologyError(f"{where}: {name} sh:flags {letters!r}: only 'i' and 'm' are supported")
    re_flags = (re.IGNORECASE if "i" in letters else 0) | (re.MULTILINE if "m" in letters else 0)
    try:
        return re.compile(str(node), re_flags)
    except re.error as error:
        raise OntologyError(
            f"{where}: {name} sh:pattern {str(node)!r} is not a valid regex: {error}"
        ) from error


def _allowed(
    shapes: rdflib.Graph, head: rdflib.term.Node | None, name: str, where: str
) -> frozenset[str] | None:
    if head is None:
        return None
    members = list(Collection(shapes, head))
    allowed: set[str] = set()
    for member in members:
        if isinstance(member, rdflib.URIRef):
            continue  # a literal cell never equals an IRI
        if (
            not isinstance(member, rdflib.Literal)
            or member.language is not None
            or member.datatype not in (None, rdflib.URIRef(_XSD_STRING))
        ):
            raise OntologyError(
                f"{where}: {name} sh:in lists {member.n3()}: sh:in may list only IRIs and plain strings"
                " (stores rewrite the lexical form of numbers and other typed literals)"
            )
        allowed.add(str(member))
    return frozenset(allowed)
