"""The deposition mapping, read from the ontology's deposition module: where each PDBx/mmCIF category and
item of the deposition model goes in the EMDB header XML v3, its value type and its units.

    mapping = load_mapping()
    mapping.item("_em_imaging.accelerating_voltage").xml_path      # "acceleration_voltage"
    mapping.to_xml(mapping.item("_em_imaging.nominal_defocus_min"), 1500)   # "1.5" (nm -> µm)
    [item.label for item in mapping.mandatory_items("SINGLE PARTICLE")]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import rdflib
from rdflib.term import Node

from ..errors import DepositionError
from ..namespaces import SKG
from ..vocabulary import load_rdflib_graph
from .model import FieldValue

__all__ = [
    "VALUE_TYPES",
    "DepositionCategory",
    "DepositionItem",
    "DepositionMapping",
    "MethodElements",
    "Placement",
    "load_mapping",
]

VALUE_TYPES = ("string", "integer", "float", "enum", "yes-no", "date", "author-name", "doi")
_SIGNIFICANT_DIGITS = 12  # unit conversions are rounded so that 1500 nm reads 1.5 µm, not 1.5000000000000002
_QUDT_MULTIPLIER = rdflib.URIRef("http://qudt.org/schema/qudt/conversionMultiplier")
_LABEL = rdflib.RDFS.label


@dataclass(frozen=True)
class DepositionItem:
    """One mmCIF item and its place in the EMDB XML (``xml_paths`` empty: written to mmCIF only)."""

    category: str
    name: str
    label: str
    xml_paths: tuple[str, ...]
    value_type: str
    xsd_mandatory: bool
    onedep_mandatory: bool
    pdbx_unit: str | None
    xml_unit: str | None
    units_attribute: str | None
    correspondences: tuple[tuple[str, str], ...]
    placeholder: str | None
    copy_path: str | None

    @property
    def mmcif_name(self) -> str:
        return f"_{self.category}.{self.name}"

    @property
    def xml_path(self) -> str | None:
        return self.xml_paths[0] if self.xml_paths else None


@dataclass(frozen=True)
class Placement:
    """Where rows go: the whole category (``selector_value`` None) or the rows with one selector value."""

    category: str
    selector_value: str | None
    anchor: str
    repeats: bool
    parent: str | None
    link_item: str | None
    condition: str | None
    order: int


@dataclass(frozen=True)
class DepositionCategory:
    name: str
    label: str
    key_item: str | None
    selector_item: str | None
    methods: tuple[str, ...]
    placements: tuple[Placement, ...]
    order: int

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(sorted({p.parent for p in self.placements if p.parent is not None}))

    def applies_to(self, method: str) -> bool:
        return not self.methods or method in self.methods


@dataclass(frozen=True)
class MethodElements:
    """The substitution-group elements of one reconstruction method."""

    method: str
    xml_method: str
    preparation: str
    microscopy: str
    processing: str

    def substitute(self, anchor: str) -> str:
        return (
            anchor.replace("{preparation}", self.preparation)
            .replace("{microscopy}", self.microscopy)
            .replace("{processing}", self.processing)
        )


class DepositionMapping:
    """Typed, read-only view of the deposition module of the ontology."""

    def __init__(
        self,
        categories: list[DepositionCategory],
        items: list[DepositionItem],
        methods: list[MethodElements],
        multipliers: dict[str, float],
    ) -> None:
        self._categories = {c.name: c for c in sorted(categories, key=lambda c: (c.order, c.name))}
        self._items: dict[str, list[DepositionItem]] = defaultdict(list)
        for item in sorted(items, key=lambda i: (i.category, i.name)):
            self._items[item.category].append(item)
        self._by_name = {item.mmcif_name: item for item in items}
        self._methods = {m.method: m for m in methods}
        self._multipliers = multipliers

    # -- lookups ---------------------------------------------------------------------------------------

    def categories(self) -> list[DepositionCategory]:
        """Every category, parents before the categories nested in them."""
        return list(self._categories.values())

    def category(self, name: str) -> DepositionCategory:
        try:
            return self._categories[name]
        except KeyError:
            raise DepositionError(
                f"mmCIF category {name!r} is not in the deposition mapping (ontology/deposition.ttl); "
                f"known: {', '.join(sorted(self._categories))}"
            ) from None

    def has_category(self, name: str) -> bool:
        return name in self._categories

    def items_for(self, category: str) -> list[DepositionItem]:
        self.category(category)
        return list(self._items.get(category, ()))

    def all_items(self) -> list[DepositionItem]:
        """Every item, by category in render order."""
        return [item for category in self._categories for item in self._items.get(category, ())]

    def find_item(self, category: str, name: str) -> DepositionItem | None:
        return self._by_name.get(f"_{category}.{name}")

    def item(self, mmcif_name: str) -> DepositionItem:
        """An item by its mmCIF name, ``_em_imaging.accelerating_voltage`` (leading underscore optional)."""
        key = mmcif_name if mmcif_name.startswith("_") else "_" + mmcif_name
        try:
            return self._by_name[key]
        except KeyError:
            raise DepositionError(
                f"mmCIF item {key!r} is not in the deposition mapping (ontology/deposition.ttl); "
                "write it as _category.item, for example _em_imaging.accelerating_voltage"
            ) from None

    def method(self, method: str) -> MethodElements:
        try:
            return self._methods[method]
        except KeyError:
            raise DepositionError(
                f"reconstruction method {method!r} has no EMDB XML elements in the deposition mapping; "
                f"known: {', '.join(sorted(self._methods))}"
            ) from None

    def method_for_xml(self, xml_method: str) -> MethodElements:
        for elements in self._methods.values():
            if elements.xml_method == xml_method:
                return elements
        raise DepositionError(
            f"EMDB XML method {xml_method!r} is unknown; accepted: "
            f"{', '.join(sorted(m.xml_method for m in self._methods.values()))}"
        )

    def mandatory_items(self, method: str) -> list[DepositionItem]:
        """The items the XSD or OneDep requires for an entry of ``method`` (labels are plain words)."""
        self.method(method)
        return [
            item
            for category in self.categories()
            if category.applies_to(method)
            for item in self._items.get(category.name, ())
            if item.xsd_mandatory or item.onedep_mandatory
        ]

    # -- values ----------------------------------------------------------------------------------------

    def _factor(self, item: DepositionItem) -> float:
        if item.pdbx_unit is None or item.xml_unit is None or item.pdbx_unit == item.xml_unit:
            return 1.0
        try:
            return self._multipliers[item.pdbx_unit] / self._multipliers[item.xml_unit]
        except KeyError as missing:
            raise DepositionError(
                f"{item.mmcif_name}: unit {missing} has no qudt:conversionMultiplier in the ontology, so "
                f"{item.pdbx_unit} cannot be converted to {item.xml_unit}"
            ) from None

    def to_xml(self, item: DepositionItem, value: FieldValue) -> str:
        """The XML text of a model value: unit changed, spelling changed, value type applied."""
        text = _plain(value)
        for mmcif, xml in item.correspondences:
            if text == mmcif:
                return xml
        if item.value_type in ("integer", "float"):
            number = _number(item, value) * self._factor(item)
            if item.value_type == "integer":
                return str(round(number))
            return _float_text(number, converted=self._factor(item) != 1.0)
        if item.value_type == "yes-no":
            return "true" if text.upper() in ("YES", "Y", "TRUE", "1") else "false"
        if item.value_type == "author-name":
            return _author_to_xml(text)
        if item.value_type == "doi":
            return text if text.lower().startswith("doi:") else f"doi:{text}"
        return text

    def from_xml(self, item: DepositionItem, text: str) -> FieldValue:
        """The model value of an XML text (the inverse of :meth:`to_xml`)."""
        text = text.strip()
        for mmcif, xml in item.correspondences:
            if text == xml:
                return mmcif
        if item.value_type in ("integer", "float"):
            try:
                number = float(text) / self._factor(item)
            except ValueError:
                raise DepositionError(
                    f"{item.mmcif_name}: XML value {text!r} is not a number ({item.value_type} expected)"
                ) from None
            if item.value_type == "integer":
                return round(number)
            return _rounded(number) if self._factor(item) != 1.0 else number
        if item.value_type == "yes-no":
            return "YES" if text.lower() in ("true", "1", "yes") else "NO"
        if item.value_type == "author-name":
            return _author_from_xml(text)
        if item.value_type == "doi":
            return text[4:] if text.lower().startswith("doi:") else text
        return text


def _plain(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)


def _number(item: DepositionItem, value: FieldValue) -> float:
    if isinstance(value, bool):
        raise DepositionError(f"{item.mmcif_name}: {value!r} is not a number ({item.value_type} expected)")
    try:
        return float(value)
    except ValueError:
        raise DepositionError(
            f"{item.mmcif_name}: {value!r} is not a number ({item.value_type} expected)"
        ) from None


def _rounded(number: float) -> float:
    return float(f"{number:.{_SIGNIFICANT_DIGITS}g}")


def _float_text(number: float, *, converted: bool) -> str:
    return repr(_rounded(number) if converted else number)


def _author_to_xml(name: str) -> str:
    """``Glyde, R.`` (PDBx) -> ``Glyde R`` (EMDB XML); other forms are kept."""
    if "," not in name:
        return name
    last, _, initials = name.partition(",")
    compact = initials.replace(".", "").replace(" ", "")
    return f"{last.strip()} {compact}".strip()


def _author_from_xml(name: str) -> str:
    """``Le Bas A`` (EMDB XML) -> ``Le Bas, A.`` (PDBx); a name without initials is kept."""
    last, _, initials = name.strip().rpartition(" ")
    if not last or not initials.isalpha() or not initials.isupper() or len(initials) > 4:
        return name.strip()
    return f"{last}, {''.join(letter + '.' for letter in initials)}"


# -- loading -------------------------------------------------------------------------------------------


def _literal(graph: rdflib.Graph, subject: Node, name: str) -> str | None:
    value = graph.value(subject, rdflib.URIRef(SKG + name))
    return None if value is None else str(value)


def _literals(graph: rdflib.Graph, subject: Node, name: str) -> list[str]:
    return sorted(str(value) for value in graph.objects(subject, rdflib.URIRef(SKG + name)))


def _flag(graph: rdflib.Graph, subject: Node, name: str) -> bool:
    return (_literal(graph, subject, name) or "false").lower() in ("true", "1")


def _integer(graph: rdflib.Graph, subject: Node, name: str) -> int:
    text = _literal(graph, subject, name)
    return int(text) if text is not None else 0


def _category_name(graph: rdflib.Graph, node: Node | None, where: str) -> str | None:
    if node is None:
        return None
    name = _literal(graph, node, "mmcifCategory")
    if name is None:
        raise DepositionError(
            f"ontology deposition mapping: {where} points to {node}, not a DepositionCategory"
        )
    return name


def _pairs(values: list[str], where: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        mmcif, separator, xml = value.partition("=")
        if not separator:
            raise DepositionError(
                f"ontology deposition mapping: {where} has skg:xmlValueCorrespondence {value!r}; "
                'write it as "mmCIF value=XML value"'
            )
        pairs.append((mmcif, xml))
    return tuple(pairs)


def _subjects(graph: rdflib.Graph, class_name: str) -> list[Node]:
    return sorted(graph.subjects(rdflib.RDF.type, rdflib.URIRef(SKG + class_name)), key=str)


def _placement(graph: rdflib.Graph, node: Node, category: str) -> Placement:
    anchor = _literal(graph, node, "xmlAnchor")
    if anchor is None:
        raise DepositionError(f"ontology deposition mapping: {node} has no skg:xmlAnchor")
    return Placement(
        category=category,
        selector_value=_literal(graph, node, "selectorValue"),
        anchor=anchor,
        repeats=_flag(graph, node, "xmlRepeats"),
        parent=_category_name(graph, graph.value(node, rdflib.URIRef(SKG + "parentCategory")), str(node)),
        link_item=_literal(graph, node, "parentLinkItem"),
        condition=_literal(graph, node, "placementCondition"),
        order=_integer(graph, node, "renderOrder"),
    )


def _item(graph: rdflib.Graph, node: Node) -> DepositionItem:
    mmcif = _literal(graph, node, "mmcifItem") or ""
    category, separator, name = mmcif.lstrip("_").partition(".")
    if not separator:
        raise DepositionError(f"ontology deposition mapping: {node} has no skg:mmcifItem _category.item")
    value_type = _literal(graph, node, "valueType") or "string"
    if value_type not in VALUE_TYPES:
        raise DepositionError(
            f"ontology deposition mapping: {node} has value type {value_type!r}; "
            f"accepted: {', '.join(VALUE_TYPES)}"
        )
    pdbx_unit = graph.value(node, rdflib.URIRef(SKG + "mmcifUnit"))
    xml_unit = graph.value(node, rdflib.URIRef(SKG + "xmlUnit"))
    return DepositionItem(
        category=category,
        name=name,
        label=str(graph.value(node, _LABEL) or name),
        xml_paths=tuple(_literals(graph, node, "xmlPath")),
        value_type=value_type,
        xsd_mandatory=_flag(graph, node, "xsdMandatory"),
        onedep_mandatory=_flag(graph, node, "onedepMandatory"),
        pdbx_unit=None if pdbx_unit is None else str(pdbx_unit),
        xml_unit=None if xml_unit is None else str(xml_unit),
        units_attribute=_literal(graph, node, "xmlUnitsAttribute"),
        correspondences=_pairs(_literals(graph, node, "xmlValueCorrespondence"), str(node)),
        placeholder=_literal(graph, node, "xmlPlaceholder"),
        copy_path=_literal(graph, node, "xmlCopyPath"),
    )


def _build(graph: rdflib.Graph) -> DepositionMapping:
    placements: dict[str, list[Placement]] = defaultdict(list)
    for node in _subjects(graph, "DepositionPlacement"):
        category = _category_name(graph, graph.value(node, rdflib.URIRef(SKG + "placementOf")), str(node))
        if category is None:
            raise DepositionError(f"ontology deposition mapping: placement {node} has no skg:placementOf")
        placements[category].append(_placement(graph, node, category))
    categories = []
    for node in _subjects(graph, "DepositionCategory"):
        name = _category_name(graph, node, str(node)) or ""
        own = placements.get(name, [])
        if _literal(graph, node, "xmlAnchor") is not None:
            own = [_placement(graph, node, name), *own]
        categories.append(
            DepositionCategory(
                name=name,
                label=str(graph.value(node, _LABEL) or name),
                key_item=_literal(graph, node, "keyItem"),
                selector_item=_literal(graph, node, "selectorItem"),
                methods=tuple(_literals(graph, node, "appliesToMethod")),
                placements=tuple(sorted(own, key=lambda p: p.order)),
                order=_integer(graph, node, "renderOrder"),
            )
        )
    methods = [
        MethodElements(
            method=_literal(graph, node, "reconstructionMethodName") or "",
            xml_method=_literal(graph, node, "xmlMethodName") or "",
            preparation=_literal(graph, node, "preparationElement") or "",
            microscopy=_literal(graph, node, "microscopyElement") or "",
            processing=_literal(graph, node, "processingElement") or "",
        )
        for node in _subjects(graph, "DepositionMethod")
    ]
    multipliers = {str(unit): float(str(value)) for unit, value in graph.subject_objects(_QUDT_MULTIPLIER)}
    items = [_item(graph, node) for node in _subjects(graph, "DepositionItem")]
    if not categories or not items:
        raise DepositionError(
            "the ontology has no deposition mapping (skg:DepositionCategory / skg:DepositionItem individuals "
            "of ontology/deposition.ttl)"
        )
    known = {c.name for c in categories}
    for item in items:
        if item.category not in known:
            raise DepositionError(
                f"ontology deposition mapping: {item.mmcif_name} names an undeclared category"
            )
    return DepositionMapping(categories, items, methods, multipliers)


@cache
def _installed_mapping() -> DepositionMapping:
    return _build(load_rdflib_graph())


def load_mapping(graph: rdflib.Graph | None = None) -> DepositionMapping:
    """The deposition mapping of ``graph``, or of the installed ontology (loaded once per process)."""
    return _installed_mapping() if graph is None else _build(graph)
