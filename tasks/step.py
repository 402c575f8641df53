"""The base of every processing step: a thin Luigi task with declared inputs, outputs, parameters and
backends (DESIGN.md decision 7).

A step task is identified by the compiled workflow file and its step id; everything else (its parameters,
its backend, where its inputs come from) is read from that file, so Luigi's task ids stay short and the
same workflow gives the same tasks on every worker host. Provenance is not recorded here: the event
handlers of :mod:`.hooks` open the run before :meth:`StepTask.run` and close it after.

A step is complete when the bundle of the run its current inputs and parameters would make exists and
says the run succeeded with exactly those input hashes, not merely when files exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import luigi

from scipion_kg.bundle import BUNDLE_FILE
from scipion_kg.errors import PipelineError, ProcessingError, ScipionKGError
from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, RunContext, RunPlan, Software
from scipion_kg.run_summary import RunSummary, read_run_summary

from .parameters import ParameterSpec, Value, recorded_parameters

__all__ = ["Backend", "Port", "StepContext", "StepTask", "clear_completion_cache", "project_at"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Port:
    """A declared input or output: its role, ontology data class, and whether it may be absent.

    ``many``: the port carries several files (e.g. the raw movies of an import, or the micrograph files
    listed in a micrograph set)."""

    role: str
    data_class: str
    optional: bool = False
    many: bool = False
    help: str = ""


@dataclass(frozen=True)
class Backend:
    """One way to run a step: a function of the step context, the software it runs (name and version,
    as recorded) and the executables it needs on PATH (checked before anything runs)."""

    name: str
    run: Callable[[StepContext], None]
    software: Callable[[Mapping[str, Value | None]], list[Software]]
    programs: tuple[str, ...] = ()
    help: str = ""


@dataclass
class StepContext:
    """What a backend sees: its run directory, parameters, input files by role, and how to declare
    outputs and report progress."""

    step_id: str
    step_name: str
    project: Project
    run: RunContext
    parameters: dict[str, Value | None]
    inputs: dict[str, list[Path]]
    backend: str
    output_ports: dict[str, Port]
    progress: Progress = field(default=lambda done, total: None)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.run.directory

    def input(self, role: str) -> Path:
        """The single file of input ``role``."""
        files = self.inputs.get(role, [])
        if len(files) != 1:
            raise ProcessingError(f"step {self.step_id}: input {role!r} needs one file, got {len(files)}")
        return files[0]

    def optional_input(self, role: str) -> Path | None:
        files = self.inputs.get(role, [])
        return files[0] if files else None

    def value(self, name: str) -> Any:
        return self.parameters[name]

    def add_output(
        self, path: Path, role: str, properties: Mapping[str, str | int | float | bool] | None = None
    ) -> None:
        """Declare an output file of a declared port (its data class comes from the port)."""
        port = self.output_ports.get(role)
        if port is None:
            raise ProcessingError(
                f"step {self.step_id}: {role!r} is not an output of {self.step_name} "
                f"(outputs: {', '.join(self.output_ports)})"
            )
        self.run.add_output(path, role, port.data_class, properties=properties)

    def relative(self, path: Path) -> str:
        """``path`` relative to the project root, as written into STAR files (RELION's convention)."""
        return self.project.relative_path(path)


@lru_cache(maxsize=8)
def project_at(root: str) -> Project:
    """One Project object per root and process (its hash cache is an open SQLite connection)."""
    return Project.find(Path(root))


# Successful runs found by :meth:`StepTask.finished_run`, per (compiled workflow, step id); cleared at
# the start of every workflow run, since inputs may change between runs.
_FINISHED: dict[tuple[str, str], RunSummary] = {}


def clear_completion_cache() -> None:
    _FINISHED.clear()


@lru_cache(maxsize=32)
def _workflow(path: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PipelineError(f"{path}: cannot read the compiled workflow: {error}") from error
    return data


class StepTask(luigi.Task):
    """Base of the step tasks; subclasses declare the class attributes below and nothing else."""

    workflow_file = luigi.Parameter()
    step_id = luigi.Parameter()

    name: ClassVar[str] = ""
    step_class: ClassVar[str] = ""
    input_ports: ClassVar[tuple[Port, ...]] = ()
    output_ports: ClassVar[tuple[Port, ...]] = ()
    parameter_specs: ClassVar[tuple[ParameterSpec, ...]] = ()
    backends: ClassVar[tuple[Backend, ...]] = ()

    @classmethod
    def of(cls, workflow_file: str, step_id: str) -> StepTask:
        """The task of step ``step_id`` of a compiled workflow (Luigi caches one instance per pair)."""
        # Luigi builds the constructor from the Parameter attributes at run time; mypy cannot see it.
        task: StepTask = cls(workflow_file=workflow_file, step_id=step_id)  # type: ignore[call-arg]
        return task

    # Set while the task runs.
    context: StepContext | None = None

    # -- what the compiled workflow says about this step ------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        step: dict[str, Any] = _workflow(self.workflow_file)["steps"][self.step_id]
        return step

    @property
    def project(self) -> Project:
        return project_at(_workflow(self.workflow_file)["project"])

    @property
    def parameters(self) -> dict[str, Value | None]:
        values: dict[str, Value | None] = self.spec["parameters"]
        return values

    @property
    def backend(self) -> Backend:
        return self.backend_named(self.spec["backend"])

    @classmethod
    def backend_names(cls) -> list[str]:
        return [backend.name for backend in cls.backends]

    @classmethod
    def backend_named(cls, name: str) -> Backend:
        for backend in cls.backends:
            if backend.name == name:
                return backend
        raise PipelineError(
            f"backend {name!r} is not available for {cls.name}; "
            f"choose one of {', '.join(cls.backend_names())}"
        )

    def requires(self) -> list[StepTask]:
        from .registry import step_task_class

        upstream = []
        seen = set()
        for source in self.spec["inputs"].values():
            if "step" in source and source["step"] not in seen:
                seen.add(source["step"])
                step = _workflow(self.workflow_file)["steps"][source["step"]]
                upstream.append(step_task_class(step["step"]).of(self.workflow_file, source["step"]))
        return upstream

    @classmethod
    def check_inputs(
        cls,
        step_id: str,
        parameters: Mapping[str, Value | None],
        files: Mapping[str, list[Path]],
        upstream: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Checks a step can make before anything runs (file headers, sizes against parameters...).

        ``upstream`` holds the facts earlier steps established (``pixel_size``, ``micrograph_size``...);
        the facts returned are what later steps may check against."""
        return dict(upstream)

    # -- identity and completeness ----------------------------------------------------------------------
    def input_files(self) -> dict[str, list[Path]] | None:
        """Input files by role, or None while an upstream step has not produced its outputs."""
        from .registry import step_task_class

        files: dict[str, list[Path]] = {}
        steps = _workflow(self.workflow_file)["steps"]
        for role, source in self.spec["inputs"].items():
            if "files" in source:
                files[role] = [self.project.resolve_path(p) for p in source["files"]]
                continue
            upstream = step_task_class(steps[source["step"]]["step"]).of(self.workflow_file, source["step"])
            summary = upstream.finished_run()
            if summary is None:
                return None
            files[role] = [self.project.resolve_path(f.path) for f in summary.outputs(source["output"])]
        return files

    def recorder_inputs(self, files: Mapping[str, Sequence[Path]]) -> list[Input]:
        ports = {port.role: port for port in self.input_ports}
        return [Input(path, role, ports[role].data_class) for role, paths in files.items() for path in paths]

    def recorded_parameters(self) -> list[Parameter]:
        """The parameters as recorded; the backend is one of them, so the same step run by RELION and
        by the built-in code are two different runs."""
        backend = Parameter("backend", self.spec["backend"])
        return [*recorded_parameters(self.parameter_specs, self.parameters), backend]

    def plan(self, files: Mapping[str, Sequence[Path]]) -> RunPlan:
        recorder = Recorder(self.project)
        return recorder.plan(
            self.step_class,
            inputs=self.recorder_inputs(files),
            parameters=self.recorded_parameters(),
        )

    def finished_run(self) -> RunSummary | None:
        """The summary of this step's successful run for its current inputs, or None.

        A positive answer is remembered until the next workflow run starts (keyed by the compiled workflow
        and step), so the completeness checks of a chain do not re-hash and re-read every upstream bundle
        at each level."""
        key = (str(self.workflow_file), str(self.step_id))
        known = _FINISHED.get(key)
        if known is not None:
            return known
        summary = self._finished_run()
        if summary is not None:
            _FINISHED[key] = summary
        return summary

    def _finished_run(self) -> RunSummary | None:
        files = self.input_files()
        if files is None:
            return None
        try:
            plan = self.plan(files)
        except (ScipionKGError, OSError):
            return None
        bundle = plan.directory / BUNDLE_FILE
        if not bundle.is_file():
            return None
        summary = read_run_summary(bundle)
        if not summary.succeeded:
            return None
        recorded = sorted((f.role, f.sha256) for f in summary.used)
        current = sorted((e.role, e.sha256) for e in plan.used)
        if recorded != current:
            return None
        for output in summary.generated:
            if not self.project.resolve_path(output.path).is_file():
                return None
        return summary

    def complete(self) -> bool:
        return self.finished_run() is not None

    def run(self) -> None:
        from .hooks import recorded

        with recorded(self) as context:
            self.context = context
            try:
                self.backend.run(context)
            finally:
                self.context = None
