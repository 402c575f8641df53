"""The child-element order of the EMDB header XML v3, derived from its XSD and shipped as a JSON table.

The XML renderer builds elements in any order and then sorts every element's children by this table, so
it needs no schema at run time. Substitution groups are resolved: where the XSD has the abstract
``image_processing``, the table lists ``singleparticle_processing``, ``helical_processing``, ... at its
place. Complex types are keyed by name; an anonymous type by ``<parent key>/<element name>``.

    python -m scipion_kg.deposition.xsd_order emdb.xsd scipion_kg/data/emdb/emdb-v3-order.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import DepositionError

__all__ = [
    "ORDER_TABLE_RESOURCE",
    "OrderTable",
    "derive_order_table",
    "load_order_table",
    "main",
    "render_table",
    "xsd_enumerations",
]

ORDER_TABLE_RESOURCE = "data/emdb/emdb-v3-order.json"
ROOT_ELEMENT = "emd"


def _load_schema(xsd_path: Path) -> Any:
    import xmlschema  # imported here: loading it is slow and most commands never need it

    try:
        return xmlschema.XMLSchema(str(xsd_path))
    except (OSError, xmlschema.XMLSchemaException) as error:
        raise DepositionError(f"{xsd_path}: cannot load the EMDB XML schema: {error}") from error


def _members(schema: Any, element: Any) -> list[Any]:
    """The concrete elements that may stand where ``element`` stands (itself unless abstract)."""
    found: list[Any] = [] if element.abstract else [element]
    for member in sorted(schema.substitution_groups.get(element.name, ()), key=lambda e: e.name):
        found.extend(_members(schema, member))
    return found


def _element_children(element: Any) -> list[Any]:
    """The declared child elements of ``element`` in document order (wildcards left out)."""
    children: list[Any] = []
    if not element.type.has_complex_content():
        return children
    for child in element.type.content.iter_elements():
        if hasattr(child, "abstract"):  # xs:any wildcards have no name and no place in the table
            children.append(child.ref if child.ref is not None else child)
    return children


def _type_key(element: Any, parent_key: str) -> str | None:
    if not element.type.is_complex():
        return None
    return str(element.type.name) if element.type.name else f"{parent_key}/{element.name}"


def derive_order_table(xsd_path: Path) -> dict[str, Any]:
    """The order table of ``xsd_path``: for every complex type reachable from ``emd``, its children."""
    schema = _load_schema(xsd_path)
    root = schema.elements[ROOT_ELEMENT]
    version = str(root.attributes["version"].default or "")
    types: dict[str, list[list[str | int | None]]] = {}
    attributes: dict[str, list[str]] = {}
    pending: list[tuple[str, Any]] = [(str(root.type.name or ROOT_ELEMENT), root)]
    while pending:
        key, element = pending.pop()
        if key in types:
            continue
        children: list[list[str | int | None]] = []
        seen: set[str] = set()
        attributes[key] = sorted(str(name) for name in element.attributes if name)
        for slot, child in enumerate(_element_children(element)):
            for member in _members(schema, child):
                if member.name in seen:
                    continue
                seen.add(member.name)
                child_key = _type_key(member, key)
                # members of one substitution group share the slot of their head: any order among them
                children.append([member.name, child_key, slot])
                if child_key is not None:
                    pending.append((child_key, member))
        types[key] = children
    return {
        "xsd_version": version,
        "root_element": ROOT_ELEMENT,
        "root_type": str(root.type.name or ROOT_ELEMENT),
        "types": dict(sorted(types.items())),
        "attributes": {key: names for key, names in sorted(attributes.items()) if names},
    }


def _enumeration(simple_type: Any) -> list[str] | None:
    values = getattr(simple_type, "enumeration", None)
    return [str(v) for v in values] if values else None


def xsd_enumerations(xsd_path: Path) -> dict[str, list[str]]:
    """The closed lists of the XSD, keyed by named simple type, by ``parent/element`` and ``parent/@attr``,
    and by the bare element name (``microscope``, ``film_or_detector_model``, ``instrument``...) where every
    element of that name has the same list."""
    schema = _load_schema(xsd_path)
    found: dict[str, list[str]] = {}
    by_name: dict[str, list[list[str]]] = defaultdict(list)
    for name, simple_type in schema.types.items():
        values = _enumeration(simple_type) if simple_type.is_simple() else None
        if values:
            found[str(name)] = values
    visited: set[int] = set()
    pending: list[Any] = [schema.elements[ROOT_ELEMENT]]
    while pending:
        element = pending.pop()
        if id(element.type) in visited:
            continue
        visited.add(id(element.type))
        for attribute_name, attribute in element.attributes.items():
            values = _enumeration(attribute.type)
            if values:
                found[f"{element.name}/@{attribute_name}"] = values
        if not element.type.has_complex_content():
            continue
        for child in _element_children(element):
            for member in _members(schema, child):
                values = _enumeration(member.type) if member.type.is_simple() else None
                if values is None and member.type.is_complex() and member.type.has_simple_content():
                    values = _enumeration(member.type.content)
                if values:
                    found[f"{element.name}/{member.name}"] = values
                    by_name[member.name].append(values)
                pending.append(member)
    for name, lists in by_name.items():
        if all(values == lists[0] for values in lists):
            found.setdefault(name, lists[0])
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class OrderTable:
    """The shipped order table: per complex type key, its children as (name, type key, slot)."""

    xsd_version: str
    root_element: str
    root_type: str
    types: dict[str, tuple[tuple[str, str | None, int], ...]]
    attributes: dict[str, frozenset[str]]

    def allows_attribute(self, type_key: str | None, name: str) -> bool:
        return type_key is not None and name in self.attributes.get(type_key, frozenset())

    def children(self, type_key: str) -> tuple[str, ...]:
        return tuple(child[0] for child in self.types.get(type_key, ()))

    def allows(self, type_key: str, name: str) -> bool:
        return any(child[0] == name for child in self.types.get(type_key, ()))

    def child_type(self, type_key: str, name: str) -> str | None:
        """The type key of child ``name`` of ``type_key``; ``None`` for a child of simple content."""
        for child, key, _ in self.types.get(type_key, ()):
            if child == name:
                return key
        raise DepositionError(
            f"EMDB XML v{self.xsd_version}: <{name}> is not a child of type {type_key}; "
            f"accepted: {', '.join(self.children(type_key)) or 'no child elements'}"
        )

    def slot(self, type_key: str, name: str) -> int:
        """The sequence position of child ``name`` (children the type does not know go last)."""
        for child, _, slot in self.types.get(type_key, ()):
            if child == name:
                return slot
        return len(self.types.get(type_key, ()))


def _table_from_json(data: dict[str, Any], source: str) -> OrderTable:
    try:
        return OrderTable(
            xsd_version=str(data["xsd_version"]),
            root_element=str(data["root_element"]),
            root_type=str(data["root_type"]),
            types={
                str(key): tuple(
                    (str(name), None if sub is None else str(sub), int(slot)) for name, sub, slot in children
                )
                for key, children in data["types"].items()
            },
            attributes={str(key): frozenset(map(str, names)) for key, names in data["attributes"].items()},
        )
    except (KeyError, TypeError, ValueError) as error:
        raise DepositionError(f"{source}: not an EMDB XML order table ({error})") from error


@cache
def load_order_table() -> OrderTable:
    """The order table shipped with scipion-kg (derived from EMDB XSD 3.0.11.3)."""
    resource = resources.files("scipion_kg").joinpath(ORDER_TABLE_RESOURCE)
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DepositionError(
            f"{ORDER_TABLE_RESOURCE}: cannot read the shipped order table: {error}"
        ) from error
    return _table_from_json(data, ORDER_TABLE_RESOURCE)


def render_table(table: dict[str, Any]) -> bytes:
    """The JSON text of a table, in the form shipped (sorted keys, one type per line)."""
    lines = [
        "{",
        f'  "xsd_version": {json.dumps(table["xsd_version"])},',
        f'  "root_element": {json.dumps(table["root_element"])},',
        f'  "root_type": {json.dumps(table["root_type"])},',
        '  "types": {',
    ]
    entries = [
        f"    {json.dumps(key)}: {json.dumps(children, ensure_ascii=False)}"
        for key, children in sorted(table["types"].items())
    ]
    lines.append(",\n".join(entries))
    lines.extend(["  },", '  "attributes": {'])
    lines.append(
        ",\n".join(
            f"    {json.dumps(key)}: {json.dumps(names)}" for key, names in table["attributes"].items()
        )
    )
    lines.extend(["  }", "}", ""])
    return "\n".join(lines).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m scipion_kg.deposition.xsd_order EMDB_XSD OUT_JSON", file=sys.stderr)
        return 2
    table = derive_order_table(Path(args[0]))
    atomic_write_bytes(Path(args[1]), render_table(table))
    print(f"{args[1]}: {len(table['types'])} element types from EMDB XSD {table['xsd_version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
