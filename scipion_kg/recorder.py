"""The provenance recorder: the one API every task, converter and importer records a run through.

    recorder = Recorder(project, store)
    with recorder.run("skg:CTFEstimation", inputs=[Input(mics, "micrographs", "skg:MicrographSet")],
                      parameters=[Parameter("max_resolution", 5.0, "unit:ANGSTROM")],
                      software=[Software("CTFFIND", "4.1.14")]) as run:
        ...write files into run.directory...
        run.add_output(run.directory / "ctf.star", "ctf", "skg:CTFSet")

On success the recorder hashes the outputs, writes the run's PROV bundle atomically and last, then
ingests it. On any exception (Ctrl-C included) it writes a bundle that records only the failed run and its
error, registers no output, and re-raises. A process killed outright writes no bundle: nothing is recorded.
"""

from __future__ import annotations

import getpass
import json
import re
import shlex
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from .bundle import (
    BUNDLE_FILE,
    EntityRecord,
    NodeDescription,
    ParameterRecord,
    ParameterValue,
    RunRecord,
    SoftwareRecord,
    build_bundle,
    write_bundle,
)
from .errors import RecordError, ScipionKGError, UnknownTermError
from .formats import detect_format
from .hashing import hash_bytes
from .ingest import IngestReport, ingest_bundles
from .namespaces import PROV, SKG, compact, entity_iri, expand, run_iri
from .project import Project
from .store import Store
from .vocabulary import Vocabulary, vocabulary

__all__ = ["Input", "Parameter", "Recorder", "RunContext", "RunPlan", "Software", "run_signature"]

_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
PropertyValue = str | int | float | bool
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)*")


@dataclass(frozen=True)
class Parameter:
    """A typed parameter of a run; ``unit`` is a QUDT unit (``"unit:ANGSTROM"`` or a full IRI)."""

    name: str
    value: ParameterValue
    unit: str | None = None
    significant: bool = True


@dataclass(frozen=True)
class Software:
    """The program that ran: name and version (RELION's own ``--version`` string, or scipion-kg's)."""

    name: str
    version: str
    algorithm: str | None = None
    package: str | None = None


@dataclass(frozen=True)
class Input:
    """A file a run reads, with its role in the run and its ontology data class."""

    path: Path
    role: str
    data_class: str = "skg:DataFile"
    format: str | None = None


def run_signature(step: str, parameters: Sequence[Parameter], inputs: Sequence[EntityRecord]) -> str:
    """The run's identity: hash of step type, significant parameters and (role, input hash) pairs."""
    canonical = {
        "step": step,
        "parameters": sorted(
            [p.name, json.dumps(p.value, sort_keys=True), expand(p.unit) if p.unit else None]
            for p in parameters
            if p.significant
        ),
        "inputs": sorted([entity.role, entity.sha256] for entity in inputs),
    }
    return hash_bytes(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class RunPlan:
    """A run's identity before it runs: step IRI, input entities, signature, default directory."""

    step: str
    used: list[EntityRecord]
    signature: str
    directory: Path


@dataclass
class RunContext:
    """One run being recorded; add outputs with :meth:`add_output`."""

    recorder: Recorder
    iri: str
    step: str
    signature: str
    directory: Path
    used: list[EntityRecord]
    outputs: list[EntityRecord] = field(default_factory=list)
    bundle_path: Path | None = None
    ingest_report: IngestReport | None = None
    _pending: list[tuple[Path, str, str, str | None, list[tuple[str, PropertyValue]]]] = field(
        default_factory=list
    )
    _descriptions: list[NodeDescription] = field(default_factory=list)

    def add_output(
        self,
        path: Path,
        role: str,
        data_class: str = "skg:DataFile",
        format: str | None = None,
        properties: Mapping[str, PropertyValue | Sequence[PropertyValue]] | None = None,
    ) -> None:
        """Declare a file the run generated; it is hashed and registered only if the run succeeds.

        ``properties`` states set-level values about it (``{"skg:pixelSize": 1.05}``; a list gives the
        property several values); each property must be one the ontology declares.
        """
        if not _ROLE_NAME.fullmatch(role):
            raise RecordError(
                f"output role {role!r} of {path} is not a valid role name (letters, digits, _.-)"
            )
        data_class = self.recorder.check_data_class(data_class)
        checked: list[tuple[str, PropertyValue]] = []
        for name, value in (properties or {}).items():
            iri = self.recorder.check_property(name)
            values = [value] if isinstance(value, str | int | float | bool) else list(value)
            checked.extend((iri, item) for item in values)
        self._pending.append((Path(path), role, data_class, format, checked))

    def describe(
        self, name: str, node_class: str, properties: Mapping[str, PropertyValue | Sequence[PropertyValue]]
    ) -> str:
        """State facts about a node of this run that is not a file (named ``<run IRI>/<name>``), such as
        one filled field of a deposition with the run or file it came from. Recorded only if the run
        succeeds; returns the node's IRI."""
        if not _NODE_NAME.fullmatch(name):
            raise RecordError(f"node name {name!r} of run {self.iri} is not valid (letters, digits, _.-/)")
        iri = f"{self.iri}/{name}"
        node_class = self.recorder.check_data_class(node_class)
        pairs: list[tuple[str, PropertyValue]] = []
        for property_name, value in properties.items():
            predicate = self.recorder.check_property(property_name)
            values = [value] if isinstance(value, str | int | float | bool) else list(value)
            pairs.extend((predicate, item) for item in values)
        self._descriptions.append(NodeDescription(iri, node_class, tuple(pairs)))
        return iri

    def declared_roles(self) -> set[str]:
        """The roles of the outputs declared so far."""
        return {role for _, role, _, _, _ in self._pending}


class Recorder:
    """Records runs of a project; ingests each bundle into ``store`` when one is given."""

    def __init__(self, project: Project, store: Store | None = None, vocab: Vocabulary | None = None) -> None:
        self.project = project
        self.store = store
        self.vocabulary = vocab or vocabulary()
        self.user = _user_name()
        self.host = socket.gethostname()

    # -- term checks -----------------------------------------------------------------------------------
    def check_data_class(self, term: str) -> str:
        return self.vocabulary.require_class(expand(term), PROV + "Entity", "a data class")

    def check_step(self, term: str) -> str:
        return self.vocabulary.require_class(expand(term), SKG + "ProcessingStep", "a processing step")

    def check_property(self, term: str) -> str:
        iri = expand(term)
        if iri.startswith((SKG, PROV)) and iri not in self.vocabulary.declared:
            raise UnknownTermError(f"unknown ontology term {compact(iri)} used as an entity property")
        return iri

    def check_format(self, term: str) -> str:
        return self.vocabulary.require_individual(expand(term), SKG + "FileFormat", "a file format")

    def _parameters(self, parameters: Sequence[Parameter]) -> list[ParameterRecord]:
        seen: set[str] = set()
        records = []
        for parameter in parameters:
            if not _PARAMETER_NAME.fullmatch(parameter.name):
                raise RecordError(f"parameter name {parameter.name!r} is not valid (letters, digits, _.-)")
            if parameter.name in seen:
                raise RecordError(f"parameter {parameter.name!r} is given twice")
            seen.add(parameter.name)
            unit = self.vocabulary.require_unit(expand(parameter.unit)) if parameter.unit else None
            try:
                json.dumps(parameter.value)
            except (TypeError, ValueError) as error:
                raise RecordError(
                    f"parameter {parameter.name!r}: value {parameter.value!r} is not "
                    f"a number, string, boolean, list or mapping: {error}"
                ) from error
            records.append(ParameterRecord(parameter.name, parameter.value, unit, parameter.significant))
        return records

    def entity(self, path: Path, role: str, data_class: str, format: str | None) -> EntityRecord:
        """Hash a file (through the project's cache) and describe it as an entity."""
        path = Path(path)
        if not path.is_file():
            raise RecordError(f"{path}: no such file (role {role!r})")
        digest = self.project.hash_cache.digest(path)
        if format is None:
            declaration = detect_format(path, self.vocabulary)
            format_iri = declaration.iri if declaration else None
        else:
            format_iri = self.check_format(format)
        return EntityRecord(
            iri=entity_iri(digest.sha256),
            sha256=digest.sha256,
            size=digest.size,
            path=self.project.relative_path(path),
            format=format_iri,
            data_class=self.check_data_class(data_class),
            role=role,
        )

    def plan(
        self, step: str, *, inputs: Sequence[Input] = (), parameters: Sequence[Parameter] = ()
    ) -> RunPlan:
        """What :meth:`run` would record, without running: the step, input entities, signature and the
        default run directory (``runs/<Step>-<signature prefix>``). Hashes go through the project's cache."""
        step_iri = self.check_step(step)
        for item in inputs:
            if not _ROLE_NAME.fullmatch(item.role):
                raise RecordError(f"input role {item.role!r} of {item.path} is not a valid role name")
        used = [self.entity(item.path, item.role, item.data_class, item.format) for item in inputs]
        signature = run_signature(step_iri, parameters, used)
        local = step_iri.rsplit("#", 1)[-1]
        return RunPlan(step_iri, used, signature, self.project.runs_dir / f"{local}-{signature[:12]}")

    # -- recording ------------------------------------------------------------------------------------
    @contextmanager
    def run(
        self,
        step: str,
        *,
        inputs: Sequence[Input] = (),
        parameters: Sequence[Parameter] = (),
        software: Sequence[Software] = (),
        command_line: str | None = None,
        directory: Path | None = None,
    ) -> Iterator[RunContext]:
        """Record one run around the ``with`` body (see the module docstring)."""
        plan = self.plan(step, inputs=inputs, parameters=parameters)
        step_iri, used, signature = plan.step, plan.used, plan.signature
        parameter_records = self._parameters(parameters)
        iri = run_iri(signature)
        run_directory = directory or plan.directory
        run_directory.mkdir(parents=True, exist_ok=True)
        context = RunContext(self, iri, step_iri, signature, run_directory, used)
        started = datetime.now(UTC)
        template = RunRecord(
            iri=iri,
            step=step_iri,
            signature=signature,
            started=started,
            parameters=parameter_records,
            software=[
                SoftwareRecord(s.name, s.version, s.algorithm, expand(s.package) if s.package else None)
                for s in software
            ],
            user=self.user,
            host=self.host,
            directory=self.project.relative_path(run_directory),
            command_line=command_line if command_line is not None else shlex.join(sys.argv),
            used=used,
            status=SKG + "Running",
            ended=started,
            generated=[],
        )
        try:
            yield context
            generated = [
                replace(self.entity(path, role, data_class, fmt), properties=tuple(sorted(props)))
                for path, role, data_class, fmt, props in context._pending
            ]
        except BaseException as error:
            message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self._finish(
                context, replace(template, status=SKG + "Failed", ended=datetime.now(UTC), error=message)
            )
            raise
        context.outputs = generated
        self._finish(
            context,
            replace(
                template,
                status=SKG + "Succeeded",
                ended=datetime.now(UTC),
                generated=generated,
                descriptions=tuple(context._descriptions),
            ),
        )

    def _finish(self, context: RunContext, record: RunRecord) -> None:
        bundle_path = context.directory / BUNDLE_FILE
        write_bundle(bundle_path, build_bundle(record))
        context.bundle_path = bundle_path
        if self.store is not None:
            try:
                context.ingest_report = ingest_bundles(
                    self.store, self.project, [bundle_path], self.vocabulary
                )
            except ScipionKGError as error:
                raise RecordError(
                    f"run {compact(record.iri)} was written to {bundle_path} "
                    f"but could not be ingested: {error}"
                ) from error


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
