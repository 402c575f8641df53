"""Two entities' histories side by side: the upstream runs aligned step by step, and where they diverge.

Each lineage's runs are put in chain order (root-most first: a run comes after the runs that made its
inputs, ties broken by start time) and the two sequences of step classes are aligned. For each aligned
pair the inputs, software, significant parameters and outputs are compared; the first difference along the
chain is the most upstream divergence.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

from .lineage import Lineage, RunNode, lineage
from .methods_text import Quantity, format_quantity, step_label, step_labels, unit_symbols
from .namespaces import sha256_of_entity_iri
from .store import Store

__all__ = ["AlignedStep", "ComparedValue", "HistoryComparison", "compare_histories", "run_chain_order"]

ValueKind = Literal["step", "input", "software", "parameter", "output"]
_SHOWN_HASHES = 3


@dataclass(frozen=True)
class ComparedValue:
    """One line of the side-by-side view; ``differs`` only for differences that change the result."""

    kind: ValueKind
    name: str
    a: str | None
    b: str | None
    differs: bool


@dataclass
class AlignedStep:
    step: str
    label: str
    a: RunNode | None
    b: RunNode | None
    values: list[ComparedValue] = field(default_factory=list)

    @property
    def differences(self) -> list[ComparedValue]:
        return [value for value in self.values if value.differs]


@dataclass
class HistoryComparison:
    a: str
    b: str
    steps: list[AlignedStep]

    @property
    def first_difference(self) -> tuple[AlignedStep, ComparedValue] | None:
        for step in self.steps:
            if step.differences:
                return step, step.differences[0]
        return None

    @property
    def summary(self) -> str:
        first = self.first_difference
        if first is None:
            return f"The histories do not differ: no difference in {len(self.steps)} aligned steps."
        step, value = first
        if value.kind == "step":
            side = "A" if step.a is not None else "B"
            return f"The histories first differ at {step.label}: only history {side} has this step."
        what = value.name if value.kind in ("parameter", "software") else f"{value.kind} {value.name}"
        return (
            f"The histories first differ at {step.label}: {what} {value.a or 'none'} vs {value.b or 'none'}"
        )


def run_chain_order(history: Lineage) -> list[RunNode]:
    """The runs of ``history``, each after the runs that made its inputs (then by start time)."""
    depth: dict[str, int] = {}

    def depth_of(run: RunNode, visiting: frozenset[str]) -> int:
        if run.iri in depth:
            return depth[run.iri]
        parents = [
            history.runs[maker]
            for entity, _ in run.used
            if entity in history.entities
            for maker in history.entities[entity].generated_by
            if maker in history.runs and maker not in visiting
        ]
        value = 1 + max((depth_of(parent, visiting | {run.iri}) for parent in parents), default=-1)
        depth[run.iri] = value
        return value

    return sorted(history.runs.values(), key=lambda run: (depth_of(run, frozenset()), run.started, run.iri))


def _hashes(history: Lineage, entities: list[tuple[str, str | None]], role: str) -> tuple[str, ...]:
    found = []
    for iri, entity_role in entities:
        if (entity_role or "input") != role:
            continue
        node = history.entities.get(iri)
        found.append((node.sha256 if node and node.sha256 else None) or sha256_of_entity_iri(iri) or iri)
    return tuple(sorted(found))


def _show_hashes(hashes: tuple[str, ...]) -> str | None:
    if not hashes:
        return None
    shown = ", ".join(f"sha256 {digest[:12]}…" for digest in hashes[:_SHOWN_HASHES])
    return shown if len(hashes) <= _SHOWN_HASHES else f"{shown} ({len(hashes)} files)"


def _software(run: RunNode | None) -> str | None:
    if run is None:
        return None
    names = sorted(
        f"{s['name']} {s['version']}" + (f" [{s['algorithm']}]" if s.get("algorithm") else "")
        for s in run.software
    )
    return "; ".join(names) or None


def _roles(entities: list[tuple[str, str | None]]) -> set[str]:
    return {role or "input" for _, role in entities}


def _compare_entities(
    kind: ValueKind, step: AlignedStep, history_a: Lineage, history_b: Lineage
) -> list[ComparedValue]:
    attribute = "used" if kind == "input" else "generated"
    a_entities = getattr(step.a, attribute) if step.a else []
    b_entities = getattr(step.b, attribute) if step.b else []
    values = []
    for role in sorted(_roles(a_entities) | _roles(b_entities)):
        a_hashes = _hashes(history_a, a_entities, role)
        b_hashes = _hashes(history_b, b_entities, role)
        values.append(
            ComparedValue(kind, role, _show_hashes(a_hashes), _show_hashes(b_hashes), a_hashes != b_hashes)
        )
    return values


def _compare_parameters(step: AlignedStep, symbols: dict[str, str]) -> list[ComparedValue]:
    def table(run: RunNode | None) -> dict[str, tuple[object, str, bool]]:
        if run is None:
            return {}
        return {
            p.name: (
                p.value,
                format_quantity(Quantity(p.value, symbols.get(p.unit, "") if p.unit else "")),
                p.significant,
            )
            for p in run.parameters
        }

    a_table, b_table = table(step.a), table(step.b)
    values = []
    for name in sorted(a_table.keys() | b_table.keys()):
        a_value, b_value = a_table.get(name), b_table.get(name)
        significant = any(entry is not None and entry[2] for entry in (a_value, b_value))
        differs = significant and (a_value is None or b_value is None or a_value[:2] != b_value[:2])
        values.append(
            ComparedValue(
                "parameter", name, a_value[1] if a_value else None, b_value[1] if b_value else None, differs
            )
        )
    return values


def compare_histories(store: Store, a_iri: str, b_iri: str) -> HistoryComparison:
    """The upstream histories of ``a_iri`` and ``b_iri`` aligned step by step, differences marked."""
    history_a = lineage(store, a_iri, "upstream")
    history_b = lineage(store, b_iri, "upstream")
    symbols = unit_symbols(store)
    labels = step_labels(store)
    runs_a, runs_b = run_chain_order(history_a), run_chain_order(history_b)
    matcher = difflib.SequenceMatcher(
        a=[run.step for run in runs_a], b=[run.step for run in runs_b], autojunk=False
    )
    steps: list[AlignedStep] = []
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            for run_a, run_b in zip(runs_a[a_start:a_end], runs_b[b_start:b_end], strict=True):
                steps.append(AlignedStep(run_a.step, step_label(run_a.step, labels), run_a, run_b))
            continue
        # Replaced or inserted runs stand alone: a step present on one side only.
        for run_a in runs_a[a_start:a_end]:
            steps.append(AlignedStep(run_a.step, step_label(run_a.step, labels), run_a, None))
        for run_b in runs_b[b_start:b_end]:
            steps.append(AlignedStep(run_b.step, step_label(run_b.step, labels), None, run_b))
    for step in steps:
        if step.a is None or step.b is None:
            present = step.a or step.b
            assert present is not None
            step.values.append(
                ComparedValue(
                    "step",
                    step.label,
                    step.label if step.a else None,
                    step.label if step.b else None,
                    True,
                )
            )
        step.values += _compare_entities("input", step, history_a, history_b)
        a_software, b_software = _software(step.a), _software(step.b)
        step.values.append(
            ComparedValue(
                "software",
                "software",
                a_software,
                b_software,
                step.a is not None and step.b is not None and a_software != b_software,
            )
        )
        step.values += _compare_parameters(step, symbols)
        step.values += _compare_entities("output", step, history_a, history_b)
    return HistoryComparison(a_iri, b_iri, steps)
