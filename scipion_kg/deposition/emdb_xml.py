"""The EMDB header XML v3: rendering a deposition model, reading a real header back, validating.

Everything about places and units comes from the deposition mapping (ontology/deposition.ttl) and the
order of child elements from the order table derived from the XSD, so neither needs code per element:

    xml = render_emdb_xml(deposition)                       # bytes, UTF-8, pretty-printed
    errors = validate_emdb_xml(xml, schema)                 # [] when valid
    deposition, unmapped = read_emdb_xml_report(Path("emd-14544-v30.xml"))
"""

from __future__ import annotations

import io
import logging
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DepositionError
from .mapping import DepositionCategory, DepositionItem, DepositionMapping, Placement, load_mapping
from .model import Deposition, Evidence, Field, FieldValue
from .xsd_order import OrderTable, load_order_table

__all__ = [
    "read_emdb_xml",
    "read_emdb_xml_report",
    "render_emdb_xml",
    "render_emdb_xml_report",
    "unmapped_fields",
    "validate_emdb_xml",
]

_LOG = logging.getLogger(__name__)
_STEP = re.compile(r'^([A-Za-z_][\w\-]*)(?:\[@(\w+)="([^"]*)"\])?$')
_IGNORED_ROOT_ATTRIBUTES = {"emdb_id", "version"}


@dataclass(frozen=True)
class _Step:
    name: str
    attributes: tuple[tuple[str, str], ...] = ()

    def matches(self, element: ET.Element) -> bool:
        return element.tag == self.name and all(element.get(k) == v for k, v in self.attributes)


def _steps(path: str) -> list[_Step]:
    steps = []
    for part in path.split("/"):
        found = _STEP.match(part)
        if found is None:
            raise DepositionError(
                f"deposition mapping: XML path {path!r} has a step {part!r}; accepted: name or "
                'name[@attribute="value"]'
            )
        name, attribute, value = found.groups()
        steps.append(_Step(name, ((attribute, value),) if attribute else ()))
    return steps


def _split_attribute(path: str) -> tuple[str, str | None]:
    """``a/b/@c`` -> (``a/b``, ``c``); ``@c`` -> (``.``, ``c``); ``a/b`` -> (``a/b``, None)."""
    head, _, last = path.rpartition("/")
    if last.startswith("@"):
        return head or ".", last[1:]
    return path, None


# -- rendering -----------------------------------------------------------------------------------------


class _Tree:
    """An element tree that knows each element's XSD type, so it refuses children the type has not."""

    def __init__(self, table: OrderTable, root: ET.Element) -> None:
        self.table = table
        self.root = root
        self.types: dict[ET.Element, str | None] = {root: table.root_type}

    def allows(self, base: ET.Element, steps: list[_Step], attribute: str | None = None) -> bool:
        """Whether the XSD allows ``steps`` below ``base`` (and ``attribute`` on the last element)."""
        type_key = self.types.get(base)
        for step in steps:
            if type_key is None or not self.table.allows(type_key, step.name):
                return False
            type_key = self.table.child_type(type_key, step.name)
        return attribute is None or self.table.allows_attribute(type_key, attribute)

    def allows_attribute(self, element: ET.Element, name: str) -> bool:
        return self.table.allows_attribute(self.types.get(element), name)

    def child(self, parent: ET.Element, step: _Step, *, new: bool) -> ET.Element:
        if not new:
            for existing in parent:
                if step.matches(existing):
                    return existing
        element = ET.SubElement(parent, step.name, dict(step.attributes))
        parent_type = self.types[parent]
        self.types[element] = None if parent_type is None else self.table.child_type(parent_type, step.name)
        return element

    def path(self, base: ET.Element, steps: list[_Step], *, new_last: bool = False) -> ET.Element | None:
        if not self.allows(base, steps):
            return None
        element = base
        for index, step in enumerate(steps):
            element = self.child(element, step, new=new_last and index == len(steps) - 1)
        return element

    def sort(self, element: ET.Element | None = None) -> None:
        element = self.root if element is None else element
        type_key = self.types.get(element)
        children = list(element)
        if type_key is not None and children:
            children.sort(key=lambda child: self.table.slot(type_key, child.tag))
            element[:] = children
        for child in children:
            self.sort(child)


@dataclass
class _Rendering:
    mapping: DepositionMapping
    tree: _Tree
    method: str
    skipped: list[str] = field(default_factory=list)
    # (category, key value) -> element of that row; category -> elements in row order
    by_key: dict[tuple[str, str], ET.Element] = field(default_factory=dict)
    by_category: dict[str, list[ET.Element]] = field(default_factory=lambda: defaultdict(list))
    claimed: set[tuple[str, int]] = field(default_factory=set)


def _effective_rows(
    deposition: Deposition, category: DepositionCategory, mapping: DepositionMapping
) -> list[dict[str, FieldValue]]:
    rows = [
        {item: f.value for item, f in row.items() if f.value != ""} for row in deposition.rows(category.name)
    ]
    if category.name == "em_experiment":
        for row in rows or [{}]:
            row.setdefault("reconstruction_method", deposition.method)
        rows = rows or [{"reconstruction_method": deposition.method}]
    has_placeholder = any(item.placeholder for item in mapping.items_for(category.name))
    if not rows and has_placeholder and not category.parents and category.selector_item is None:
        rows = [{}]  # the XSD requires these elements (status, sites, dates): write the placeholders
    return rows


def _placement_for(category: DepositionCategory, row: dict[str, FieldValue]) -> list[Placement]:
    if category.selector_item is None:
        return list(category.placements)
    value = row.get(category.selector_item)
    return [p for p in category.placements if value is not None and p.selector_value == str(value)]


def _parent_element(state: _Rendering, placement: Placement, row: dict[str, FieldValue]) -> ET.Element | None:
    if placement.parent is None:
        return state.tree.root
    link = row.get(placement.link_item or "")
    if link is not None:
        return state.by_key.get((placement.parent, str(link)))
    parents = state.by_category.get(placement.parent, [])
    return parents[0] if parents else None


def _anchor(
    state: _Rendering, category: DepositionCategory, index: int, row: dict[str, FieldValue]
) -> ET.Element | None:
    label = f"{category.name} row {index + 1}"
    placements = _placement_for(category, row)
    if not placements:
        selector = category.selector_item
        state.skipped.append(f"{label}: no EMDB XML place for {selector}={row.get(selector or '')!r}")
        return None
    for placement in placements:
        parent = _parent_element(state, placement, row)
        if parent is None:
            state.skipped.append(
                f"{label}: its parent row ({placement.parent} {placement.link_item}="
                f"{row.get(placement.link_item or '')!r}) is not in the XML"
            )
            return None
        if placement.condition and parent.find(placement.condition) is None:
            continue
        steps = _steps(state.mapping.method(state.method).substitute(placement.anchor))
        element = state.tree.path(parent, steps, new_last=placement.repeats)
        if element is None:
            continue  # not in this method's XML: the next placement may be
        if not placement.repeats and (category.name, id(element)) in state.claimed:
            state.skipped.append(f"{label}: {placement.anchor} holds one row only")
            return None
        state.claimed.add((category.name, id(element)))
        return element
    state.skipped.append(
        f"{label}: the {state.method} XML has no {' or '.join(p.anchor for p in placements)}"
    )
    return None


def _write_item(state: _Rendering, base: ET.Element, item: DepositionItem, value: FieldValue) -> bool:
    text = state.mapping.to_xml(item, value)
    for path in item.xml_paths:
        element_path, attribute = _split_attribute(path)
        steps = [] if element_path == "." else _steps(element_path)
        element = state.tree.path(base, steps) if state.tree.allows(base, steps, attribute) else None
        if element is None:
            continue
        if attribute is not None:
            element.set(attribute, text)
        else:
            element.text = text
            if item.units_attribute and state.tree.allows_attribute(element, "units"):
                element.set("units", item.units_attribute)
        return True
    return False


def _render_category(state: _Rendering, deposition: Deposition, category: DepositionCategory) -> None:
    mapping = state.mapping
    rows = _effective_rows(deposition, category, mapping)
    if rows and not category.applies_to(state.method):
        state.skipped.append(f"{category.name}: not used for {state.method} entries")
        return
    items = mapping.items_for(category.name)
    for index, row in enumerate(rows):
        element = _anchor(state, category, index, row)
        if element is None:
            continue
        if category.key_item and category.key_item in row:
            state.by_key[(category.name, str(row[category.key_item]))] = element
        state.by_category[category.name].append(element)
        for item in items:
            value = row.get(item.name)
            if not item.xml_paths:
                continue
            if value is None:
                if item.placeholder is not None:
                    _write_item(state, element, item, item.placeholder)
                continue
            if not _write_item(state, element, item, value):
                state.skipped.append(f"{category.name} row {index + 1}: {item.name} has no place here")
            if item.copy_path and index == 0:
                copy = state.tree.path(state.tree.root, _steps(item.copy_path))
                if copy is not None:
                    copy.text = mapping.to_xml(item, value)


def unmapped_fields(deposition: Deposition, mapping: DepositionMapping | None = None) -> list[str]:
    """Items of the model the mapping does not know (``category[row].item``): neither format writes them."""
    mapping = mapping or load_mapping()
    found = []
    for category, index, item, _ in deposition.fields():
        if not mapping.has_category(category) or mapping.find_item(category, item) is None:
            found.append(f"{category}[{index + 1}].{item}")
    return found


def render_emdb_xml_report(
    deposition: Deposition, mapping: DepositionMapping | None = None
) -> tuple[bytes, list[str]]:
    """The XML, and in plain words what of the model it does not hold (unmapped items, rows with no
    place in the XML of this method)."""
    mapping = mapping or load_mapping()
    table = load_order_table()
    root = ET.Element(table.root_element, {"emdb_id": deposition.entry_id, "version": table.xsd_version})
    state = _Rendering(mapping, _Tree(table, root), deposition.method)
    mapping.method(deposition.method)
    for category in mapping.categories():
        _render_category(state, deposition, category)
    state.tree.sort()
    ET.indent(root, space="    ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    skipped = [f"{name}: not in the deposition mapping" for name in unmapped_fields(deposition, mapping)]
    return text.encode("utf-8"), skipped + state.skipped


def render_emdb_xml(deposition: Deposition, mapping: DepositionMapping | None = None) -> bytes:
    """The EMDB header XML v3 of ``deposition`` (what it cannot hold is logged; see the report variant)."""
    data, skipped = render_emdb_xml_report(deposition, mapping)
    for message in skipped:
        _LOG.info("EMDB XML of %s: %s", deposition.entry_id, message)
    return data


# -- reading -------------------------------------------------------------------------------------------


@dataclass
class _ReadRow:
    category: str
    values: dict[str, Field]
    key: str | None
    read_any: bool


@dataclass
class _Reading:
    mapping: DepositionMapping
    source: Path
    method: str
    entry_id: str
    consumed: set[tuple[int, str | None]] = field(default_factory=set)  # (id(element), attribute)
    rows: list[_ReadRow] = field(default_factory=list)
    # category -> [(element, concrete path, key value)]
    elements: dict[str, list[tuple[ET.Element, str, str | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def evidence(self, location: str) -> Evidence:
        return Evidence("header", f"{location} in {self.source.name}", location=location)


def _child_label(parent: ET.Element, child: ET.Element, step: _Step | None = None) -> str:
    """The path step of ``child``: ``name``, ``name[k]`` among same-named siblings, or the predicate
    ``name[@attr="value"]`` when the mapping selects it by an attribute (stable when siblings reorder)."""
    if step is not None and step.attributes:
        label = child.tag + "".join(f'[@{name}="{value}"]' for name, value in step.attributes)
        same = [sibling for sibling in parent if step.matches(sibling)]
    else:
        label = child.tag
        same = [sibling for sibling in parent if sibling.tag == child.tag]
    return label if len(same) == 1 else f"{label}[{same.index(child) + 1}]"


_Chain = tuple[tuple[ET.Element, _Step], ...]


def _find(
    base: ET.Element, base_path: str, steps: list[_Step], chain: _Chain = ()
) -> Iterator[tuple[ET.Element, str, _Chain]]:
    """Every element at ``steps`` below ``base``, with its path and the elements met on the way."""
    if not steps:
        yield base, base_path, chain
        return
    for child in base:
        if steps[0].matches(child):
            label = _child_label(base, child, steps[0])
            path = f"{base_path}/{label}" if base_path else label
            yield from _find(child, path, steps[1:], (*chain, (child, steps[0])))


def _consume_predicates(state: _Reading, chain: _Chain) -> None:
    for element, step in chain:
        for attribute, _ in step.attributes:
            state.consumed.add((id(element), attribute))


def _read_item(state: _Reading, base: ET.Element, base_path: str, item: DepositionItem) -> Field | None:
    for path in item.xml_paths:
        element_path, attribute = _split_attribute(path)
        steps = [] if element_path == "." else _steps(element_path)
        for element, location, chain in _find(base, base_path, steps):
            text = element.get(attribute) if attribute is not None else element.text
            if text is None or not text.strip():
                continue
            where = f"{location}/@{attribute}" if attribute is not None else location
            try:
                value = state.mapping.from_xml(item, text)
            except DepositionError as error:
                raise DepositionError(f"{state.source}: {where}: {error}") from None
            state.consumed.add((id(element), attribute))
            _consume_predicates(state, chain)
            if attribute is None and item.units_attribute:
                state.consumed.add((id(element), "units"))
            return Field(value, state.evidence(where))
    return None


def _read_placement(
    state: _Reading, category: DepositionCategory, placement: Placement, root: ET.Element
) -> None:
    mapping = state.mapping
    steps = _steps(mapping.method(state.method).substitute(placement.anchor))
    if placement.parent is None:
        bases: list[tuple[ET.Element, str, str | None]] = [(root, "", None)]
    else:
        bases = state.elements.get(placement.parent, [])
    items = mapping.items_for(category.name)
    for base, base_path, parent_key in bases:
        for element, path, chain in _find(base, base_path, steps):
            values: dict[str, Field] = {}
            for item in items:
                found = _read_item(state, element, path, item)
                if found is not None:
                    values[item.name] = found
            read_any = bool(values)
            _consume_predicates(state, chain)
            anchor_evidence = state.evidence(path)
            if category.selector_item and placement.selector_value is not None:
                values[category.selector_item] = Field(placement.selector_value, anchor_evidence)
            if placement.link_item and parent_key is not None:
                values[placement.link_item] = Field(parent_key, anchor_evidence)
            state.counters[category.name] += 1
            key_item = category.key_item
            if key_item and key_item not in values:
                key_field = mapping.find_item(category.name, key_item)
                number = state.counters[category.name]
                generated: FieldValue = (
                    number if key_field and key_field.value_type == "integer" else str(number)
                )
                values[key_item] = Field(generated, anchor_evidence)
            if mapping.find_item(category.name, "entry_id") is not None:
                values["entry_id"] = Field(state.entry_id, state.evidence("@emdb_id"))
            key = str(values[key_item].value) if key_item else None
            state.rows.append(_ReadRow(category.name, values, key, read_any))
            state.elements[category.name].append((element, path, key))


def _leaf_values(element: ET.Element, path: str) -> Iterator[tuple[ET.Element, str | None, str]]:
    """Every value of the document: (element, attribute or None for its text, path)."""
    for attribute in element.attrib:
        if "}" not in attribute:  # namespaced attributes (xsi:schemaLocation) are not data
            yield element, attribute, f"{path}/@{attribute}" if path else f"@{attribute}"
    if element.text and element.text.strip() and len(element) == 0:
        yield element, None, path
    for child in element:
        label = _child_label(element, child)
        yield from _leaf_values(child, f"{path}/{label}" if path else label)


def _parse(path: Path) -> ET.Element:
    import defusedxml
    import defusedxml.ElementTree as DET

    try:
        root: ET.Element | None = DET.parse(str(path), forbid_dtd=True).getroot()
    except defusedxml.DefusedXmlException as error:
        raise DepositionError(f"{path}: refused: {error} (EMDB headers have no DTD or entities)") from error
    except ET.ParseError as error:
        raise DepositionError(f"{path}: not well-formed XML: {error}") from error
    except OSError as error:
        raise DepositionError(f"{path}: cannot read: {error}") from error
    if root is None:
        raise DepositionError(f"{path}: the XML document has no root element")
    if root.tag != "emd":
        raise DepositionError(f"{path}: root element is <{root.tag}>; an EMDB header XML v3 has <emd>")
    return root


def read_emdb_xml_report(
    path: Path, mapping: DepositionMapping | None = None
) -> tuple[Deposition, list[str]]:
    """The deposition model of an EMDB header, and the XML paths of values the mapping does not know."""
    mapping = mapping or load_mapping()
    root = _parse(path)
    entry_id = root.get("emdb_id")
    if not entry_id:
        raise DepositionError(f"{path}: /emd has no emdb_id attribute (EMD-NNNN expected)")
    method_element = root.find("structure_determination_list/structure_determination/method")
    if method_element is None or not (method_element.text or "").strip():
        raise DepositionError(
            f"{path}: structure_determination_list/structure_determination/method is missing; "
            "expected singleParticle, helical, subtomogramAveraging, tomography or electronCrystallography"
        )
    try:
        method = mapping.method_for_xml((method_element.text or "").strip()).method
    except DepositionError as error:
        raise DepositionError(f"{path}: structure_determination/method: {error}") from None
    state = _Reading(mapping, path, method, entry_id)
    for category in mapping.categories():
        if not category.applies_to(method):
            continue
        for placement in category.placements:
            _read_placement(state, category, placement, root)
        for item in mapping.items_for(category.name):
            copy = root.find(item.copy_path) if item.copy_path else None
            if copy is not None:
                state.consumed.add((id(copy), None))  # a copy of the first row's value
    deposition = Deposition(method=method, entry_id=entry_id)
    referenced = {
        (placement.parent, str(row.values[placement.link_item].value))
        for row in state.rows
        for placement in mapping.category(row.category).placements
        if placement.parent and placement.link_item in row.values
    }
    for row in state.rows:
        if row.read_any or (row.category, row.key) in referenced:
            deposition.categories.setdefault(row.category, []).append(row.values)
    state.consumed.update((id(root), name) for name in _IGNORED_ROOT_ATTRIBUTES)
    unmapped = [
        p
        for element, attribute, p in _leaf_values(root, "")
        if (id(element), attribute) not in state.consumed
    ]
    return deposition, unmapped


def read_emdb_xml(path: Path, mapping: DepositionMapping | None = None) -> Deposition:
    """The deposition model of a real EMDB header XML v3 (for ``import-emdb``)."""
    deposition, unmapped = read_emdb_xml_report(path, mapping)
    if unmapped:
        _LOG.info("%s: %d values the deposition mapping does not know were ignored", path, len(unmapped))
    return deposition


# -- validation ----------------------------------------------------------------------------------------


def validate_emdb_xml(data: bytes | Path, schema: Any) -> list[str]:
    """Every error of ``data`` against the EMDB XSD, as ``path: reason`` (an empty list when valid).

    ``schema`` is an ``xmlschema.XMLSchema`` or the path of the XSD (loading one takes seconds: reuse it).
    """
    import xmlschema

    if isinstance(schema, Path):
        try:
            schema = xmlschema.XMLSchema(str(schema))
        except (OSError, xmlschema.XMLSchemaException) as error:
            raise DepositionError(f"{schema}: cannot load the EMDB XML schema: {error}") from error
    source: Any = str(data) if isinstance(data, Path) else io.BytesIO(data)
    try:
        resource = xmlschema.XMLResource(source, defuse="always")
    except (OSError, xmlschema.XMLSchemaException, ET.ParseError) as error:
        where = data if isinstance(data, Path) else "XML data"
        raise DepositionError(f"{where}: cannot be read as XML: {error}") from error
    return [f"{error.path}: {error.reason}" for error in schema.iter_errors(resource)]
