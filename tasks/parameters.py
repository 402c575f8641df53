"""Declared parameters of a processing step: type, default, unit, and whether they change the result.

The constraints a value must meet (range, allowed values) are SHACL, in ``ontology/shapes/steps.ttl``:
:func:`validate_parameters` checks every step of a workflow against its shape in one pySHACL run before
Luigi starts anything. The declarations here only say how to read a value and what to record with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import RDF, XSD

from scipion_kg.errors import PipelineError
from scipion_kg.namespaces import expand
from scipion_kg.recorder import Parameter

__all__ = [
    "PARAMETER",
    "ParameterSpec",
    "parameter_graph",
    "recorded_parameters",
    "resolve_parameters",
    "validate_parameters",
]

# Each step parameter is an RDF property in this namespace, so a step's SHACL shape can constrain it.
PARAMETER = Namespace("https://w3id.org/scipion-kg/ontology/parameter#")

Value = float | int | str | bool | list[float] | list[int]
_KINDS = {"float": float, "int": int, "str": str, "bool": bool}


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: its name, type ("float", "int", "str", "bool", "floats", "ints"), default, QUDT unit,
    whether it changes the result (insignificant ones, such as thread counts, do not enter the run's
    identity) and a sentence for ``--help``."""

    name: str
    kind: str
    default: Value | None
    unit: str | None = None
    significant: bool = True
    help: str = ""

    def coerce(self, value: Any, step: str) -> Value:
        """``value`` as this parameter's type, or a PipelineError naming the step and parameter."""
        try:
            if self.kind in ("floats", "ints"):
                items = value if isinstance(value, (list, tuple)) else str(value).split(",")
                cast = float if self.kind == "floats" else int
                return [cast(item) for item in items]
            if self.kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if self.kind == "int" and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            converted: Value = _KINDS[self.kind](value)
            return converted
        except (TypeError, ValueError) as error:
            raise PipelineError(
                f"step {step}: parameter {self.name}={value!r} is not {_DESCRIPTION[self.kind]}"
            ) from error


_DESCRIPTION = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "floats": "a list of numbers",
    "ints": "a list of integers",
}


def resolve_parameters(
    specs: Sequence[ParameterSpec], given: Mapping[str, Any], step: str
) -> dict[str, Value | None]:
    """Defaults filled in, values typed; an unknown or missing parameter is an error naming it."""
    known = {spec.name: spec for spec in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise PipelineError(
            f"step {step}: unknown parameter {', '.join(unknown)}; "
            f"this step takes {', '.join(sorted(known)) or 'no parameters'}"
        )
    resolved: dict[str, Value | None] = {}
    for spec in specs:
        if spec.name in given and given[spec.name] is not None:
            resolved[spec.name] = spec.coerce(given[spec.name], step)
        elif spec.default is None:
            resolved[spec.name] = None
        else:
            resolved[spec.name] = spec.default
    return resolved


def recorded_parameters(
    specs: Sequence[ParameterSpec], values: Mapping[str, Value | None]
) -> list[Parameter]:
    """The parameters as the recorder takes them (unset optional ones are left out)."""
    return [
        Parameter(spec.name, values[spec.name], spec.unit, spec.significant)  # type: ignore[arg-type]
        for spec in specs
        if values.get(spec.name) is not None
    ]


def _literal(value: Value) -> Literal:
    if isinstance(value, bool):
        return Literal(value, datatype=XSD.boolean)
    if isinstance(value, int):
        return Literal(value, datatype=XSD.integer)
    if isinstance(value, float):
        return Literal(value, datatype=XSD.double)
    # A plain literal: RDF 1.1 makes it xsd:string, and sh:in lists of plain strings match it.
    return Literal(str(value))


def parameter_graph(steps: Mapping[str, tuple[str, Mapping[str, Value | None]]]) -> Graph:
    """One node per step (typed with its step class) holding its parameters as ``parameter:`` properties.

    ``steps`` maps a step id to (step class IRI, parameter values); list values become one triple per item.
    """
    graph = Graph()
    for step_id, (step_class, values) in steps.items():
        node = URIRef(f"urn:scipion-kg:workflow-step:{step_id}")
        graph.add((node, RDF.type, URIRef(expand(step_class))))
        for name, value in values.items():
            if value is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                graph.add((node, PARAMETER[name], _literal(item)))
    return graph


def validate_parameters(steps: Mapping[str, tuple[str, Mapping[str, Value | None]]]) -> None:
    """Check every step's parameters against the SHACL shapes of ``shapes/steps.ttl`` in one run."""
    from pyshacl import validate

    from scipion_kg.vocabulary import ontology_dir

    shapes = Graph().parse(ontology_dir() / "shapes" / "steps.ttl", format="turtle")
    data = parameter_graph(steps)
    conforms, results, _ = validate(data, shacl_graph=shapes, advanced=True, allow_warnings=True)
    if conforms:
        return
    messages = []
    sh = Namespace("http://www.w3.org/ns/shacl#")
    assert isinstance(results, Graph)
    for result in results.subjects(RDF.type, sh.ValidationResult):
        focus = str(results.value(result, sh.focusNode)).rsplit(":", 1)[-1]
        path = results.value(result, sh.resultPath)
        name = str(path).rsplit("#", 1)[-1] if path is not None else "?"
        value = results.value(result, sh.value)
        message = results.value(result, sh.resultMessage)
        shown = f"={value}" if value is not None else ""
        messages.append(f"step {focus}: parameter {name}{shown}: {message}")
    raise PipelineError("invalid parameters:\n  " + "\n  ".join(sorted(set(messages))))
