"""A methods-section paragraph for a map, written from its recorded lineage, with software citations.

Each step class has one sentence template (``STEP_SENTENCES``, data keyed by step class IRI): an opening
and optional clauses. A clause is kept only when every value it names is recorded: ``{name}`` is a run
parameter (with its unit), ``{@role.property}`` a set-level value of the output with that role
(``{@*.property}``: of any output), ``{software}`` the programs that ran, with their in-text citations.
Steps without a template get a generic sentence naming the step, its software and its parameters.
References come from the ontology's software package individuals (DOIs); scipion-kg's built-in backends
cite scipion-kg itself.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .lineage import Lineage, RunNode, lineage
from .namespaces import SKG, UNIT
from .queries import load_query
from .store import Store
from .terms import IRI, Lit

__all__ = [
    "STEP_SENTENCES",
    "Citation",
    "Clause",
    "MethodsSentence",
    "MethodsText",
    "Quantity",
    "StepSentence",
    "entity_properties",
    "format_quantity",
    "methods_for",
    "methods_paragraph",
    "software_citations",
    "step_label",
    "step_labels",
    "unit_symbols",
]

_AUTHOR_YEAR = re.compile(r"^(?P<authors>.+?)\s+(?P<year>(19|20)\d\d)\b")
_FIELD = re.compile(r"\{([^{}]+)\}")
_UNITLESS = {UNIT + "FRACTION", UNIT + "UNITLESS"}
_HIDDEN_PARAMETERS = {"backend"}


@dataclass(frozen=True)
class Citation:
    """A software package as the ontology describes it, and how to cite it."""

    package: str
    name: str
    label: str
    source: str | None = None
    doi: str | None = None
    homepage: str | None = None
    definition: str | None = None

    @property
    def in_text(self) -> str:
        """``Scheres, 2012`` from the package's reference; the package label when it has none."""
        match = _AUTHOR_YEAR.match(self.source or "") if self.doi else None
        return f"{match['authors']}, {match['year']}" if match else self.label

    @property
    def reference(self) -> str:
        """The reference-list entry."""
        description = (self.definition or self.name).removeprefix("This software: ")
        parts = [self.source if self.doi and self.source else f"{self.label}: {description}"]
        if self.doi:
            parts.append(f"https://doi.org/{self.doi}")
        elif self.homepage:
            parts.append(self.homepage)
        return ". ".join(part.rstrip(".") for part in parts) + "."


@dataclass(frozen=True)
class Quantity:
    """A recorded value and its unit symbol (empty when unitless)."""

    value: object
    symbol: str = ""


@dataclass(frozen=True)
class Clause:
    """Part of a sentence, kept when all its fields are known (and, with ``when``, that parameter is true)."""

    text: str
    when: str | None = None


@dataclass(frozen=True)
class StepSentence:
    """The first of ``openings`` whose fields are all known (the last should need only ``{software}``),
    then the clauses that can be filled."""

    openings: tuple[str, ...]
    clauses: tuple[Clause, ...] = ()


def _sentence(opening: str | tuple[str, ...], *clauses: str | Clause) -> StepSentence:
    openings = opening if isinstance(opening, tuple) else (opening,)
    return StepSentence(openings, tuple(c if isinstance(c, Clause) else Clause(c) for c in clauses))


_PICKING = _sentence(
    "Particles were picked with {software}",
    "with a particle diameter of {diameter}",
    "giving {@coordinates.itemCount} particle positions",
)

STEP_SENTENCES: dict[str, StepSentence] = {
    SKG + "ImportMovies": _sentence(
        (
            "{@movies.itemCount} movies of {@movies.numberOfFrames} frames were imported with {software}",
            "{@movies.itemCount} movies were imported with {software}",
            "Movies were imported with {software}",
        ),
        "at a pixel size of {@movies.pixelSize}",
        "recorded at {@movies.accelerationVoltage}",
        "with a dose of {@movies.dosePerFrame} per frame",
        "spherical aberration {@movies.sphericalAberration}",
        "amplitude contrast {@movies.amplitudeContrast}",
    ),
    SKG + "MotionCorrection": _sentence(
        "Movies were motion-corrected with {software}",
        "using {patches} patches",
        Clause("with dose weighting", when="dose_weighting"),
        "with a dose of {dose_per_frame} per frame",
        "giving {@micrographs.itemCount} micrographs",
    ),
    SKG + "CTFEstimation": _sentence(
        "The contrast transfer function was estimated with {software}",
        "fitting the power spectra between {min_resolution} and {max_resolution} resolution",
        "up to {max_resolution} resolution",
        "searching defocus values from {min_defocus} to {max_defocus}",
        "for {@micrographs.itemCount} micrographs",
    ),
    SKG + "ParticlePicking": _PICKING,
    SKG + "AutomaticParticlePicking": _PICKING,
    SKG + "ParticleExtraction": _sentence(
        "Particles were extracted with {software}",
        "in boxes of {box}",
        "in boxes of {box_size}",
        "giving {@particles.itemCount} particles",
        "at a pixel size of {@particles.pixelSize}",
    ),
    SKG + "Classification2D": _sentence(
        "Reference-free 2D classification was done with {software}",
        "into {classes} classes",
        "over {iterations} iterations",
        "with a mask diameter of {mask_diameter}",
        "keeping {@selected.itemCount} of {@particles.itemCount} particles",
    ),
    SKG + "InitialModel": _sentence(
        "An initial model was made with {software}",
        "low-pass filtered to {resolution}",
    ),
    SKG + "Refinement3D": _sentence(
        "The structure was refined with {software}",
        "from {@map.numberOfParticlesUsed} particles",
        "imposing {symmetry} symmetry",
        "starting from a reference low-pass filtered to {initial_lowpass}",
        "with a box of {@map.boxSize}",
        "reaching {@map.resolution} resolution (gold-standard FSC 0.143)",
    ),
    SKG + "Reconstruction": _sentence(
        "A map was reconstructed with {software}",
        "imposing {symmetry} symmetry",
        Clause("with CTF correction", when="ctf"),
    ),
    SKG + "Masking": _sentence(
        "A soft mask was made with {software}",
        "from the map low-pass filtered to {lowpass}",
        "extended by {extend} with a soft edge of {soft_edge}",
    ),
    SKG + "PostProcessing": _sentence(
        "The map was post-processed with {software}",
        "giving a resolution of {@map.resolution} at the gold-standard FSC 0.143 criterion",
        "and sharpened with a B-factor of {@map.bFactor}",
    ),
    SKG + "Simulation": _sentence("Data were simulated with {software}"),
}


@dataclass(frozen=True)
class MethodsSentence:
    run: str
    step: str
    text: str


@dataclass
class MethodsText:
    """The paragraph, its sentences (one per run, in time order) and the references they cite."""

    sentences: list[MethodsSentence]
    references: list[Citation] = field(default_factory=list)

    @property
    def paragraph(self) -> str:
        return " ".join(sentence.text for sentence in self.sentences)


# -- store lookups -----------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def software_citations(store: Store) -> dict[str, Citation]:
    """The ontology's software packages, keyed by lower-case software name."""
    citations: dict[str, Citation] = {}
    for row in store.select(load_query("methods-software-citations")):
        name = str(row["name"])
        citations.setdefault(
            name.lower(),
            Citation(
                package=str(row["package"]),
                name=name,
                label=_text(row.get("label")) or name,
                source=_text(row.get("source")),
                doi=_text(row.get("doi")),
                homepage=_text(row.get("homepage")),
                definition=_text(row.get("definition")),
            ),
        )
    return citations


def unit_symbols(store: Store) -> dict[str, str]:
    """Unit IRI → symbol, as the ontology declares them (fractions and unitless values get none)."""
    symbols = {
        str(row["unit"]): str(row["symbol"]) for row in store.select(load_query("methods-unit-symbols"))
    }
    for unitless in _UNITLESS:
        symbols[unitless] = ""
    return symbols


def entity_properties(
    store: Store, entities: Iterable[str], symbols: Mapping[str, str]
) -> dict[str, dict[str, Quantity]]:
    """Set-level values of ``entities`` (local property name → quantity)."""
    ordered = sorted(set(entities))
    found: dict[str, dict[str, Quantity]] = {}
    for start in range(0, len(ordered), 2000):
        values = " ".join(f"<{iri}>" for iri in ordered[start : start + 2000])
        query = load_query("methods-entity-properties").replace("{{entities}}", values)
        for row in store.select(query):
            value = row["value"]
            unit = row.get("unit")
            found.setdefault(str(row["entity"]), {})[str(row["property"]).rsplit("#", 1)[-1]] = Quantity(
                value.to_python() if isinstance(value, Lit) else str(value),
                symbols.get(str(unit), "") if isinstance(unit, IRI) else "",
            )
    return found


# -- writing -----------------------------------------------------------------------------------------------


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_quantity(quantity: Quantity) -> str:
    """``5 Å``, ``5 × 5``, ``110–180 Å``, ``10°``: a value as a methods section writes it."""
    value, symbol = quantity.value, quantity.symbol
    if isinstance(value, str) and value.startswith("["):
        # List parameters are recorded as JSON text.
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, list):
        if symbol and len(value) == 2:
            return f"{_number(value[0])}–{_number(value[1])} {symbol}"
        text = " × ".join(_number(item) for item in value)
    else:
        text = _number(value)
    if not symbol:
        return text
    return f"{text}{symbol}" if symbol in ("°",) else f"{text} {symbol}"


def _software_phrase(run: RunNode, citations: Mapping[str, Citation], cited: list[Citation]) -> str:
    phrases = []
    for software in run.software:
        name = software["name"] or "unnamed software"
        version = software["version"] or ""
        citation = citations.get(name.lower())
        if citation is not None and citation not in cited:
            cited.append(citation)
        label = f"{name} {version}".strip()
        if citation is not None and citation.package == SKG + "Package_ScipionKG":
            algorithm = software.get("algorithm")
            phrases.append(f"the {label} built-in backend" + (f" ({algorithm})" if algorithm else ""))
        elif citation is not None:
            phrases.append(f"{label} ({citation.in_text})")
        else:
            phrases.append(label)
    if not phrases:
        return "unrecorded software"
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _fields(
    run: RunNode, properties: Mapping[str, Mapping[str, Quantity]], symbols: Mapping[str, str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for parameter in run.parameters:
        if parameter.value is None:
            continue
        symbol = symbols.get(parameter.unit, "") if parameter.unit else ""
        values[parameter.name] = format_quantity(Quantity(parameter.value, symbol))
    for entity, role in run.generated:
        for name, quantity in properties.get(entity, {}).items():
            values.setdefault(f"@{role}.{name}", format_quantity(quantity))
            values.setdefault(f"@*.{name}", format_quantity(quantity))
    return values


def _fill(text: str, values: Mapping[str, str]) -> str | None:
    names = _FIELD.findall(text)
    if any(name not in values for name in names):
        return None
    return _FIELD.sub(lambda match: values[match.group(1)], text)


def step_labels(store: Store) -> dict[str, str]:
    """Step class IRI → its ontology label, capitalised (``CTF estimation``, ``3D refinement``)."""
    labels = {}
    for row in store.select(load_query("methods-step-labels")):
        text = str(row["label"])
        labels[str(row["step"])] = text[:1].upper() + text[1:]
    return labels


def step_label(step: str, labels: Mapping[str, str] | None = None) -> str:
    """The step's label from ``labels``, else its class name split into words (``CTFEstimation``:
    ``CTF estimation``)."""
    if labels and step in labels:
        return labels[step]
    local = step.rsplit("#", 1)[-1] or "processing step"
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", local).split()
    text = " ".join(
        word if word.isupper() or any(c.isdigit() for c in word) else word.lower() for word in words
    )
    return text[:1].upper() + text[1:]


def _is_true(run: RunNode, name: str) -> bool:
    return any(parameter.name == name and parameter.value is True for parameter in run.parameters)


def _run_sentence(
    run: RunNode,
    template: StepSentence | None,
    values: dict[str, str],
    labels: Mapping[str, str],
) -> str:
    if template is None:
        shown = [p for p in run.parameters if p.significant and p.name not in _HIDDEN_PARAMETERS]
        text = f"{step_label(run.step, labels)} was run with {values['software']}"
        settings = [f"{p.name} = {values[p.name]}" for p in shown if p.name in values]
        if settings:
            text += " (" + ", ".join(settings) + ")"
        return text + "."
    openings = (_fill(opening, values) for opening in template.openings)
    text = next((opening for opening in openings if opening is not None), step_label(run.step, labels))
    used: set[str] = set()
    parts = []
    for clause in template.clauses:
        if clause.when is not None and not _is_true(run, clause.when):
            continue
        filled = _fill(clause.text, values)
        names = set(_FIELD.findall(clause.text))
        # Two clauses naming the same value (a range and its upper bound): keep only the first that fits.
        if filled is None or (names and names <= used):
            continue
        used |= names
        parts.append(filled)
    if parts:
        text += ", " + ", ".join(parts)
    return text + "."


def methods_paragraph(
    lineage: Lineage,
    citations: Mapping[str, Citation],
    *,
    properties: Mapping[str, Mapping[str, Quantity]] | None = None,
    symbols: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    templates: Mapping[str, StepSentence] = STEP_SENTENCES,
) -> MethodsText:
    """Sentences for the runs of ``lineage`` in time order, with the references they cite.

    ``properties`` holds set-level values per entity IRI (:func:`entity_properties`); ``symbols`` unit
    symbols per unit IRI (:func:`unit_symbols`)."""
    properties = properties or {}
    symbols = symbols or {}
    cited: list[Citation] = []
    sentences = []
    for run in lineage.runs_in_order():
        values = _fields(run, properties, symbols)
        values["software"] = _software_phrase(run, citations, cited)
        text = _run_sentence(run, templates.get(run.step), values, labels or {})
        sentences.append(MethodsSentence(run.iri, run.step, text))
    return MethodsText(sentences, cited)


def methods_for(store: Store, root: str) -> MethodsText:
    """The methods paragraph of ``root`` (a map), read from ``store``."""
    upstream = lineage(store, root, "upstream")
    symbols = unit_symbols(store)
    outputs: Sequence[str] = [entity for run in upstream.runs.values() for entity, _ in run.generated]
    return methods_paragraph(
        upstream,
        software_citations(store),
        properties=entity_properties(store, outputs, symbols),
        symbols=symbols,
        labels=step_labels(store),
    )
