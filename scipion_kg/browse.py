"""What the viewer shows: a page of runs with counts, one run, one entity; each in one or two queries.

The SPARQL lives in ``scipion_kg/queries/browse-*.rq``. Labels, unit symbols and the units of set-level
properties come from the ontology (``rdfs:label``, ``qudt:symbol``, ``skg:unit``), so a new unit or
property declared in Turtle is displayed with no code change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import pyoxigraph as ox

from .errors import LineageError
from .namespaces import PROV, QUDT, RDF, RDFS, SKG, XSD, compact
from .queries import fill_query, iri_term, load_query
from .store import Row, Store
from .terms import IRI, Lit, Term
from .vocabulary import module_files, parse_modules, vocabulary

__all__ = [
    "EntityDetails",
    "EntityLink",
    "MapSummary",
    "OverviewPage",
    "ParameterView",
    "PropertyView",
    "RunDetails",
    "RunLink",
    "RunSummary",
    "entity_details",
    "format_duration",
    "format_size",
    "label_of",
    "overview_page",
    "recorded_file",
    "run_details",
    "runs_page",
    "unit_symbol",
]

_SOFTWARE_AGENT = PROV + "SoftwareAgent"
_PERSON = PROV + "Person"
# Statements about an entity that the page shows in their own place, not as set-level properties.
_STRUCTURAL = frozenset(
    {
        RDF + "type",
        SKG + "sha256",
        SKG + "byteSize",
        SKG + "filePath",
        SKG + "hasFormat",
        PROV + "wasGeneratedBy",
        PROV + "qualifiedGeneration",
        PROV + "wasDerivedFrom",
        RDFS + "label",
    }
)


# -- ontology display terms ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _DisplayTerms:
    unit_symbols: dict[str, str]
    property_units: dict[str, str]


@cache
def _display_terms() -> _DisplayTerms:
    symbols: dict[str, str] = {}
    units: dict[str, str] = {}
    for quad in parse_modules(module_files()):
        predicate = quad.predicate.value
        subject = quad.subject
        if not isinstance(subject, ox.NamedNode):
            continue
        if predicate == QUDT + "symbol" and isinstance(quad.object, ox.Literal):
            symbols[subject.value] = quad.object.value
        elif predicate == SKG + "unit" and isinstance(quad.object, ox.NamedNode):
            units[subject.value] = quad.object.value
    return _DisplayTerms(symbols, units)


def unit_symbol(unit: str | None) -> str:
    """The compact symbol of a QUDT unit IRI ("Å", "e/Å²"), its label, or its compact IRI."""
    if not unit:
        return ""
    symbol = _display_terms().unit_symbols.get(unit)
    if symbol is not None:
        return symbol
    return vocabulary().labels.get(unit) or compact(unit)


def label_of(iri: str | None) -> str:
    """The ontology label of a term, else its local name."""
    if not iri:
        return ""
    label = vocabulary().labels.get(iri)
    if label:
        return label
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _step_label(step: str | None) -> str:
    return label_of(step) if step else "run"


# -- formatting ------------------------------------------------------------------------------------------
def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(started: str | None, ended: str | None) -> float | None:
    start, end = _parse_time(started), _parse_time(ended)
    if start is None or end is None:
        return None
    try:
        return max((end - start).total_seconds(), 0.0)
    except TypeError:  # one time with a zone, one without
        return None


def format_duration(seconds: float | None) -> str:
    """``"850 ms"``, ``"42 s"``, ``"3 min 05 s"``, ``"2 h 04 min"``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_size(size: int | None) -> str:
    """``"3.4 MiB"``; bytes below 1 KiB."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def _text(row: Row, name: str) -> str | None:
    value = row.get(name)
    return str(value) if value is not None else None


def _int(term: Term | None) -> int | None:
    if isinstance(term, Lit):
        try:
            return int(term.lexical)
        except ValueError:
            return None
    return None


# -- the overview ---------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    """One line of the run list."""

    iri: str
    step: str | None
    step_label: str
    status: str
    started: str
    ended: str | None
    duration_seconds: float | None
    software: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        return self.status.rsplit("#", 1)[-1]

    @property
    def duration(self) -> str:
        return format_duration(self.duration_seconds)


@dataclass(frozen=True)
class MapSummary:
    iri: str
    classes: list[str]
    path: str | None
    started: str | None


@dataclass
class OverviewPage:
    runs: list[RunSummary]
    page: int
    page_size: int
    total_runs: int
    runs_by_status: dict[str, int]
    entities_by_class: dict[str, int]
    maps: list[MapSummary]
    total_maps: int

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total_runs // self.page_size))


def runs_page(store: Store, page: int, page_size: int) -> list[RunSummary]:
    """Runs ``page`` (1-based) of ``page_size``, newest first: one query."""
    page = max(page, 1)
    rows = store.select(
        fill_query("browse-runs-page", limit=str(int(page_size)), offset=str((page - 1) * int(page_size)))
    )
    runs: dict[str, RunSummary] = {}
    for row in rows:
        iri = str(row["run"])
        run = runs.get(iri)
        if run is None:
            started, ended = _text(row, "started") or "", _text(row, "ended")
            step = _text(row, "step")
            run = runs[iri] = RunSummary(
                iri=iri,
                step=step,
                step_label=_step_label(step),
                status=_text(row, "status") or "",
                started=started,
                ended=ended,
                duration_seconds=_duration(started, ended),
            )
        elif run.step is None and row.get("step") is not None:
            run.step = _text(row, "step")
            run.step_label = _step_label(run.step)
        software = (_text(row, "software"), _text(row, "version"))
        if software[0] is not None and software[1] is not None:
            pair = (software[0], software[1])
            if pair not in run.software:
                run.software.append(pair)
    for run in runs.values():
        run.software.sort()
    newest_first = sorted(runs.values(), key=lambda run: run.iri, reverse=True)
    return sorted(newest_first, key=lambda run: _sort_time(run.started), reverse=True)


def _sort_time(value: str) -> float:
    parsed = _parse_time(value)
    if parsed is None:
        return float("-inf")
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return float("-inf")


def _map_classes() -> list[str]:
    vocab = vocabulary()
    return sorted(vocab.subclasses(SKG + "Map"))


def overview_page(store: Store, page: int = 1, page_size: int = 100, map_limit: int = 50) -> OverviewPage:
    """The overview: one page of runs, counts of runs by status and entities by class, the newest maps.

    Three queries whatever the size of the project.
    """
    page = max(page, 1)
    runs = runs_page(store, page, page_size)
    runs_by_status: dict[str, int] = {}
    entities_by_class: dict[str, int] = {}
    for row in store.select(load_query("browse-counts")):
        count = _int(row.get("n")) or 0
        key = _text(row, "key") or ""
        (runs_by_status if _text(row, "kind") == "status" else entities_by_class)[key] = count
    map_classes = _map_classes()
    maps = [
        MapSummary(
            iri=str(row["entity"]),
            classes=sorted((_text(row, "classes") or "").split()),
            path=_text(row, "path"),
            started=_text(row, "started"),
        )
        for row in store.select(
            fill_query(
                "browse-maps",
                classes=" ".join(iri_term(c) for c in map_classes),
                limit=str(int(map_limit)),
            )
        )
        if "entity" in row
    ]
    return OverviewPage(
        runs=runs,
        page=page,
        page_size=page_size,
        total_runs=sum(runs_by_status.values()),
        runs_by_status=dict(sorted(runs_by_status.items())),
        entities_by_class=dict(sorted(entities_by_class.items(), key=lambda item: (-item[1], item[0]))),
        maps=maps,
        total_maps=_count_distinct_maps(entities_by_class, map_classes),
    )


def _count_distinct_maps(entities_by_class: dict[str, int], map_classes: Iterable[str]) -> int:
    # Per-class counts; an entity typed with two map classes would count twice (the recorder types each
    # file with one class).
    return sum(entities_by_class.get(c, 0) for c in map_classes)


# -- one run ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterView:
    name: str
    value: str
    unit: str | None
    unit_symbol: str
    significant: bool


@dataclass
class EntityLink:
    """An input or output as a run page lists it."""

    iri: str
    role: str | None
    classes: list[str] = field(default_factory=list)
    format: str | None = None
    sha256: str | None = None
    size: int | None = None
    paths: list[str] = field(default_factory=list)

    @property
    def path(self) -> str | None:
        return self.paths[0] if self.paths else None

    @property
    def size_label(self) -> str:
        return format_size(self.size)


@dataclass
class RunDetails:
    iri: str
    step: str | None
    step_label: str
    status: str
    started: str
    ended: str | None
    duration_seconds: float | None
    host: str | None
    user: str | None
    command_line: str | None
    directory: str | None
    error: str | None
    signature: str | None
    parameters: list[ParameterView]
    software: list[dict[str, str | None]]
    inputs: list[EntityLink]
    outputs: list[EntityLink]

    @property
    def status_label(self) -> str:
        return self.status.rsplit("#", 1)[-1]

    @property
    def duration(self) -> str:
        return format_duration(self.duration_seconds)


def _by_subject(rows: Iterable[Row]) -> dict[str, dict[str, list[Term]]]:
    subjects: dict[str, dict[str, list[Term]]] = {}
    for row in rows:
        subject, predicate, obj = row.get("s"), row.get("p"), row.get("o")
        if subject is None or predicate is None or obj is None:
            continue
        values = subjects.setdefault(str(subject), {}).setdefault(str(predicate), [])
        if obj not in values:
            values.append(obj)
    return subjects


def _first(properties: dict[str, list[Term]], predicate: str) -> str | None:
    values = properties.get(predicate)
    return str(values[0]) if values else None


def _entity_link(iri: str, role: str | None, properties: dict[str, list[Term]]) -> EntityLink:
    classes = sorted(str(c) for c in properties.get(RDF + "type", []) if str(c) != PROV + "Entity")
    return EntityLink(
        iri=iri,
        role=role,
        classes=classes,
        format=_first(properties, SKG + "hasFormat"),
        sha256=_first(properties, SKG + "sha256"),
        size=_int(properties.get(SKG + "byteSize", [None])[0]),
        paths=sorted(str(p) for p in properties.get(SKG + "filePath", [])),
    )


_DECIMAL_TYPES = frozenset({XSD + "double", XSD + "float", XSD + "decimal"})


def _display_value(term: Term) -> str:
    """A literal as people read it: a float32 pixel size 1.899999976158142 shows as 1.9."""
    if isinstance(term, Lit):
        if term.datatype in _DECIMAL_TYPES:
            try:
                return f"{float(term.lexical):.6g}"
            except ValueError:
                return term.lexical
        return term.lexical
    return compact(str(term))


def run_details(store: Store, run: str) -> RunDetails:
    """Everything the run page shows about ``run``, in one query; LineageError if it is not recorded."""
    subjects = _by_subject(store.select(fill_query("browse-run", run=iri_term(run))))
    about = subjects.get(run)
    if not about or SKG + "runStatus" not in about:
        raise LineageError(f"{compact(run)} is not a run recorded in this store")
    steps = [
        str(t)
        for t in about.get(RDF + "type", [])
        if str(t).startswith(SKG) and str(t) != SKG + "ProcessingStep"
    ]
    step = sorted(steps)[0] if steps else None

    def role_label(node: str) -> str | None:
        role = _first(subjects.get(node, {}), PROV + "hadRole")
        if role is None:
            return None
        return _first(subjects.get(role, {}), RDFS + "label") or role.rsplit("/", 1)[-1]

    parameters = []
    for node in about.get(SKG + "hasParameter", []):
        properties = subjects.get(str(node), {})
        name = _first(properties, SKG + "parameterName")
        if name is None:
            continue
        values = properties.get(SKG + "parameterValue", [])
        unit = _first(properties, SKG + "parameterUnit")
        significant = properties.get(SKG + "isSignificant", [])
        parameters.append(
            ParameterView(
                name=name,
                value=_display_value(values[0]) if values else "",
                unit=unit,
                unit_symbol=unit_symbol(unit),
                significant=not any(_false(term) for term in significant),
            )
        )
    parameters.sort(key=lambda parameter: parameter.name)
    software: list[dict[str, str | None]] = []
    user = None
    for agent in about.get(PROV + "wasAssociatedWith", []):
        properties = subjects.get(str(agent), {})
        types = {str(t) for t in properties.get(RDF + "type", [])}
        if _PERSON in types:
            user = _first(properties, SKG + "userName") or str(agent).rsplit("/", 1)[-1]
        elif _SOFTWARE_AGENT in types or SKG + "softwareName" in properties:
            software.append(
                {
                    "agent": str(agent),
                    "name": _first(properties, SKG + "softwareName"),
                    "version": _first(properties, SKG + "softwareVersion"),
                    "algorithm": _first(properties, SKG + "algorithm"),
                }
            )
    software.sort(key=lambda item: (item["name"] or "", item["version"] or ""))
    inputs: list[EntityLink] = []
    seen_inputs: set[str] = set()
    for usage in about.get(PROV + "qualifiedUsage", []):
        entity = _first(subjects.get(str(usage), {}), PROV + "entity")
        if entity is not None:
            seen_inputs.add(entity)
            inputs.append(_entity_link(entity, role_label(str(usage)), subjects.get(entity, {})))
    for entity_term in about.get(PROV + "used", []):
        if str(entity_term) not in seen_inputs:
            inputs.append(_entity_link(str(entity_term), None, subjects.get(str(entity_term), {})))
    outputs: list[EntityLink] = []
    for subject, properties in subjects.items():
        if IRI(run) not in properties.get(PROV + "wasGeneratedBy", []):
            continue
        role = None
        for generation in properties.get(PROV + "qualifiedGeneration", []):
            if _first(subjects.get(str(generation), {}), PROV + "activity") == run:
                role = role_label(str(generation))
        outputs.append(_entity_link(subject, role, properties))
    inputs.sort(key=lambda link: (link.role or "", link.path or "", link.iri))
    outputs.sort(key=lambda link: (link.role or "", link.path or "", link.iri))
    started, ended = _first(about, PROV + "startedAtTime") or "", _first(about, PROV + "endedAtTime")
    return RunDetails(
        iri=run,
        step=step,
        step_label=_step_label(step),
        status=_first(about, SKG + "runStatus") or "",
        started=started,
        ended=ended,
        duration_seconds=_duration(started, ended),
        host=_first(about, SKG + "hostName"),
        user=user,
        command_line=_first(about, SKG + "commandLine"),
        directory=_first(about, SKG + "runDirectory"),
        error=_first(about, SKG + "errorMessage"),
        signature=_first(about, SKG + "inputSignature"),
        parameters=parameters,
        software=software,
        inputs=inputs,
        outputs=outputs,
    )


def _false(term: Term) -> bool:
    return isinstance(term, Lit) and term.lexical.strip() in ("false", "0")


# -- one entity ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PropertyView:
    """A set-level statement about an entity (pixel size, resolution, point group, item count...)."""

    property: str
    label: str
    value: str
    unit_symbol: str


@dataclass(frozen=True)
class RunLink:
    iri: str
    role: str | None
    step: str | None
    step_label: str
    status: str
    started: str

    @property
    def status_label(self) -> str:
        return self.status.rsplit("#", 1)[-1]


@dataclass
class EntityDetails:
    iri: str
    classes: list[str]
    formats: list[str]
    sha256: str | None
    size: int | None
    paths: list[str]
    properties: list[PropertyView]
    generated_by: list[RunLink]
    used_by: list[RunLink]
    used_by_truncated: bool

    @property
    def size_label(self) -> str:
        return format_size(self.size)

    @property
    def class_labels(self) -> list[str]:
        """Labels of the most specific classes: a class another one specialises is left out, and so is
        the generic skg:DataFile a consumer declares for its inputs when a producer said more."""
        vocab = vocabulary()
        specific = [
            c for c in self.classes if not any(o != c and vocab.is_subclass(o, c) for o in self.classes)
        ]
        if len(specific) > 1:
            specific = [c for c in specific if c != SKG + "DataFile"]
        return [label_of(c) for c in specific]

    @property
    def format_labels(self) -> list[str]:
        formats = vocabulary().formats
        return [formats[f].label if f in formats else label_of(f) for f in self.formats]

    def is_a(self, ancestor: str) -> bool:
        vocab = vocabulary()
        return any(vocab.is_subclass(c, ancestor) for c in self.classes)


def entity_details(store: Store, entity: str, used_by_limit: int = 200) -> EntityDetails:
    """Everything the entity page shows about ``entity``, in two queries; LineageError if unknown."""
    token = iri_term(entity)
    about: dict[str, list[Term]] = {}
    for row in store.select(fill_query("browse-entity", entity=token)):
        predicate, obj = row.get("p"), row.get("o")
        if predicate is not None and obj is not None:
            values = about.setdefault(str(predicate), [])
            if obj not in values:
                values.append(obj)
    types = {str(t) for t in about.get(RDF + "type", [])}
    if SKG + "sha256" not in about and PROV + "Entity" not in types:
        raise LineageError(f"{compact(entity)} is not an entity recorded in this store")
    symbols = _display_terms().property_units
    properties = [
        PropertyView(
            property=predicate,
            label=label_of(predicate),
            value=_display_value(value) if not isinstance(value, IRI) else label_of(value),
            unit_symbol=unit_symbol(symbols.get(predicate)),
        )
        for predicate, values in about.items()
        if predicate not in _STRUCTURAL
        for value in values
    ]
    properties.sort(key=lambda view: (view.label, view.value))
    # Generations come first in the query's order; a few more rows than the limit tell truncation.
    limit = int(used_by_limit) + 64
    generated_by: list[RunLink] = []
    used_by: list[RunLink] = []
    for row in store.select(fill_query("browse-entity-runs", entity=token, limit=str(limit))):
        step = _text(row, "step")
        link = RunLink(
            iri=str(row["run"]),
            role=_text(row, "role"),
            step=step,
            step_label=_step_label(step),
            status=_text(row, "status") or "",
            started=_text(row, "started") or "",
        )
        bucket = generated_by if _text(row, "relation") == "generated" else used_by
        if not any(existing.iri == link.iri and existing.role == link.role for existing in bucket):
            bucket.append(link)
    truncated = len(used_by) > used_by_limit
    return EntityDetails(
        iri=entity,
        classes=sorted(str(c) for c in about.get(RDF + "type", []) if str(c) != PROV + "Entity"),
        formats=sorted(str(f) for f in about.get(SKG + "hasFormat", [])),
        sha256=_first(about, SKG + "sha256"),
        size=_int(about.get(SKG + "byteSize", [None])[0]),
        paths=sorted(str(p) for p in about.get(SKG + "filePath", [])),
        properties=properties,
        generated_by=generated_by,
        used_by=used_by[:used_by_limit],
        used_by_truncated=truncated,
    )


def recorded_file(
    paths: Iterable[str], size: int | None, project_file: Callable[[str], Path | None]
) -> Path | None:
    """The first recorded path that is a file inside the project (``project_file`` decides) and still has
    the recorded size; None when there is none (outside the project, missing, or changed since)."""
    for recorded in paths:
        candidate = project_file(recorded)
        if candidate is None:
            continue
        if size is not None:
            try:
                if candidate.stat().st_size != size:
                    continue
            except OSError:
                continue
        return candidate
    return None
