"""Workflows: steps, their parameters and how their inputs are wired, checked before anything runs and
then run by Luigi (local scheduler by default, or a running ``luigid``).

A workflow file (YAML or JSON)::

    steps:
      - id: movies
        step: import_movies
        inputs: {movies: {files: ["data/*.mrc"]}, mdoc: {files: ["data/*.mdoc"]}}
        parameters: {spherical_aberration: 2.7, amplitude_contrast: 0.1}
      - id: motion
        step: motion_correction
        inputs: {movies: movies}          # the output of step 'movies' with the same role
        backend: relion                   # default: builtin
      - id: ctf
        step: ctf_estimation
        inputs: {micrographs: motion.micrographs}   # step.output

Checks, in order, each naming the step and what is wrong: unknown steps, roles, backends and parameters;
cycles; inputs wired to outputs of another data class; parameter values against the steps' SHACL shapes;
missing programs of the chosen backends; the steps' own input checks (unreadable or truncated MRC
headers, a missing pixel size or voltage, a box larger than the micrographs...).
"""

from __future__ import annotations

import glob
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import luigi

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.bundle import BUNDLE_FILE
from scipion_kg.errors import PipelineError
from scipion_kg.hashing import hash_bytes
from scipion_kg.namespaces import expand
from scipion_kg.project import Project
from scipion_kg.run_summary import RunSummary
from scipion_kg.vocabulary import vocabulary

from .hooks import ProgressReporter, ingest_quietly
from .parameters import Value, resolve_parameters, validate_parameters
from .registry import step_task_class
from .step import StepTask, clear_completion_cache

__all__ = [
    "StepOutcome",
    "Workflow",
    "WorkflowResult",
    "WorkflowStep",
    "check_workflow",
    "load_workflow",
    "parse_workflow",
    "run_workflow",
]


@dataclass
class WorkflowStep:
    id: str
    step: str
    backend: str = "builtin"
    parameters: dict[str, Value | None] = field(default_factory=dict)
    # role -> {"step": id, "output": role} or {"files": [project-relative or absolute paths]}
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def task_class(self) -> type[StepTask]:
        return step_task_class(self.step)


@dataclass
class Workflow:
    project: Project
    steps: dict[str, WorkflowStep]
    source: str = "<workflow>"

    def to_json(self) -> dict[str, Any]:
        return {
            "project": str(self.project.root),
            "steps": {
                s.id: {"step": s.step, "backend": s.backend, "parameters": s.parameters, "inputs": s.inputs}
                for s in self.steps.values()
            },
        }


@dataclass(frozen=True)
class StepOutcome:
    step_id: str
    step: str
    backend: str
    status: str  # "done", "failed" or "not run"
    run: RunSummary | None
    seconds: float | None
    error: str | None = None


@dataclass
class WorkflowResult:
    workflow_file: Path
    outcomes: dict[str, StepOutcome]
    seconds: float
    scheduling_seconds: float

    @property
    def succeeded(self) -> bool:
        return all(o.status == "done" for o in self.outcomes.values())

    def output(self, step_id: str, role: str) -> Path:
        """The file of output ``role`` of step ``step_id`` (the first one if the port carries many)."""
        outcome = self.outcomes[step_id]
        if outcome.run is None or not outcome.run.outputs(role):
            raise PipelineError(f"step {step_id} has no output {role!r}")
        return Path(outcome.run.outputs(role)[0].path)


def load_workflow(path: Path, project: Project) -> Workflow:
    """Read a workflow file (``.yaml``/``.yml`` or ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineError(f"{path}: cannot read the workflow file: {error}") from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as error:  # yaml.YAMLError is not a ValueError: caught below
        raise PipelineError(f"{path}: not valid JSON: {error}") from error
    except Exception as error:
        raise PipelineError(f"{path}: not valid YAML: {error}") from error
    return parse_workflow(data, project, str(path), base=path.parent)


def parse_workflow(
    data: Any, project: Project, source: str = "<workflow>", base: Path | None = None
) -> Workflow:
    """A workflow from its parsed form; file inputs are resolved against ``base`` and glob-expanded."""
    base = base or Path.cwd()
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise PipelineError(f"{source}: a workflow is a mapping with a non-empty list 'steps'")
    steps: dict[str, WorkflowStep] = {}
    for index, raw in enumerate(data["steps"], start=1):
        where = f"{source}: step {index}"
        if not isinstance(raw, dict):
            raise PipelineError(f"{where}: each step is a mapping with 'id' and 'step'")
        unknown = sorted(set(raw) - {"id", "step", "backend", "parameters", "inputs"})
        if unknown:
            raise PipelineError(
                f"{where}: unknown key {', '.join(unknown)} (id, step, backend, parameters, inputs)"
            )
        step_id = str(raw.get("id") or raw.get("step") or "")
        if not step_id or not step_id.replace("_", "").replace("-", "").isalnum():
            raise PipelineError(f"{where}: 'id' must be letters, digits, '-' or '_', got {step_id!r}")
        if step_id in steps:
            raise PipelineError(f"{where}: id {step_id!r} is used twice")
        name = str(raw.get("step", ""))
        task = step_task_class(name)
        backend = str(raw.get("backend", "builtin"))
        if backend not in task.backend_names():
            raise PipelineError(
                f"{where} ({step_id}): backend {backend!r} is not available for {name}; "
                f"choose one of {', '.join(task.backend_names())}"
            )
        parameters = raw.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise PipelineError(f"{where} ({step_id}): 'parameters' must be a mapping")
        resolved = resolve_parameters(task.parameter_specs, parameters, step_id)
        inputs = _parse_inputs(raw.get("inputs") or {}, step_id, task, steps, project, base, where)
        steps[step_id] = WorkflowStep(step_id, name, backend, resolved, inputs)
    return Workflow(project, steps, source)


def _parse_inputs(
    raw: Any,
    step_id: str,
    task: type[StepTask],
    earlier: Mapping[str, WorkflowStep],
    project: Project,
    base: Path,
    where: str,
) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise PipelineError(f"{where} ({step_id}): 'inputs' must be a mapping of role to source")
    ports = {port.role: port for port in task.input_ports}
    inputs: dict[str, dict[str, Any]] = {}
    for role, source in raw.items():
        if role not in ports:
            raise PipelineError(
                f"{where} ({step_id}): {task.name} has no input {role!r}; "
                f"inputs: {', '.join(ports) or 'none'}"
            )
        if isinstance(source, dict) and "files" in source:
            patterns = source["files"] if isinstance(source["files"], list) else [source["files"]]
            files: list[str] = []
            for pattern in patterns:
                path = Path(str(pattern))
                path = path if path.is_absolute() else base / path
                matches = sorted(glob.glob(str(path))) if glob.has_magic(str(path)) else [str(path)]
                if not matches:
                    raise PipelineError(f"{where} ({step_id}): input {role!r}: no file matches {pattern}")
                for match in matches:
                    if not Path(match).is_file():
                        raise PipelineError(f"{where} ({step_id}): input {role!r}: {match} is not a file")
                    files.append(project.relative_path(Path(match)))
            if len(files) > 1 and not ports[role].many:
                raise PipelineError(f"{where} ({step_id}): input {role!r} takes one file, got {len(files)}")
            inputs[role] = {"files": files}
            continue
        if not isinstance(source, str):
            raise PipelineError(
                f"{where} ({step_id}): input {role!r} must be 'step', 'step.output' or {{files: [...]}}"
            )
        upstream_id, _, output = source.partition(".")
        if upstream_id not in earlier:
            raise PipelineError(
                f"{where} ({step_id}): input {role!r} refers to step {upstream_id!r}, "
                "which is not defined before it (steps must be listed in order, without cycles)"
            )
        inputs[role] = {"step": upstream_id, "output": output or role}
    for port in task.input_ports:
        if port.role not in inputs and not port.optional:
            raise PipelineError(f"{where} ({step_id}): {task.name} needs input {port.role!r}")
    return inputs


def check_workflow(workflow: Workflow) -> None:
    """Everything that can be checked before running (see the module docstring)."""
    vocab = vocabulary()
    parameter_sets: dict[str, tuple[str, Mapping[str, Value | None]]] = {}
    for step in workflow.steps.values():
        task = step.task_class
        parameter_sets[step.id] = (task.step_class, step.parameters)
        for role, source in step.inputs.items():
            if "step" not in source:
                continue
            upstream = workflow.steps[source["step"]]
            produced = {port.role: port for port in upstream.task_class.output_ports}
            if source["output"] not in produced:
                raise PipelineError(
                    f"step {step.id}: input {role!r} wants output {source['output']!r} "
                    f"of step {upstream.id}, "
                    f"but {upstream.step} produces {', '.join(produced)}"
                )
            wanted = next(p for p in task.input_ports if p.role == role).data_class
            given = produced[source["output"]].data_class
            if not vocab.is_subclass(expand(given), expand(wanted)):
                raise PipelineError(
                    f"step {step.id}: input {role!r} needs {wanted}, but output {source['output']!r} of "
                    f"step {upstream.id} ({upstream.step}) is {given}"
                )
    validate_parameters(parameter_sets)
    for step in workflow.steps.values():
        for program in step.task_class.backend_named(step.backend).programs:
            if shutil.which(program) is None:
                raise PipelineError(
                    f"step {step.id} (backend {step.backend}): the program {program} is not on PATH; "
                    f"install it or choose the builtin backend"
                )
    facts: dict[str, dict[str, Any]] = {}
    for step in workflow.steps.values():
        upstream_facts: dict[str, Any] = {}
        for source in step.inputs.values():
            if "step" in source:
                upstream_facts.update(facts.get(source["step"], {}))
        files = {
            role: [workflow.project.resolve_path(p) for p in source["files"]]
            for role, source in step.inputs.items()
            if "files" in source
        }
        facts[step.id] = step.task_class.check_inputs(step.id, step.parameters, files, upstream_facts)


def compile_workflow(workflow: Workflow) -> Path:
    """Write the checked workflow where every worker can read it; named by its content hash."""
    data = json.dumps(workflow.to_json(), indent=1, sort_keys=True).encode("utf-8")
    path = workflow.project.control_dir / "workflows" / f"{hash_bytes(data)[:16]}.json"
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def run_workflow(
    workflow: Workflow,
    *,
    workers: int = 1,
    scheduler_url: str | None = None,
    reporter: ProgressReporter | None = None,
    targets: Sequence[str] | None = None,
) -> WorkflowResult:
    """Check, compile and run ``workflow``; every step's run is recorded and ingested."""
    started = time.monotonic()
    clear_completion_cache()
    check_workflow(workflow)
    workflow_file = compile_workflow(workflow)
    wanted = list(targets) if targets else _sinks(workflow)
    tasks = [workflow.steps[s].task_class.of(str(workflow_file), s) for s in wanted]
    reporter = reporter or ProgressReporter(len(workflow.steps))
    reporter.total = len(workflow.steps)
    logging.getLogger("luigi-interface").setLevel(logging.WARNING)
    logging.getLogger("luigi").setLevel(logging.WARNING)
    with reporter:
        scheduled = time.monotonic()
        options: dict[str, Any] = {"workers": workers, "log_level": "WARNING"}
        if scheduler_url:
            options["scheduler_url"] = scheduler_url
        else:
            options["local_scheduler"] = True
        luigi.build(tasks, detailed_summary=False, **options)  # type: ignore[no-untyped-call]
    outcomes: dict[str, StepOutcome] = {}
    bundles: list[Path] = []
    for step in workflow.steps.values():
        task = step.task_class.of(str(workflow_file), step.id)
        summary = task.finished_run()
        bundles += _bundle_of(task)
        error = reporter.failures.get(step.id)
        status = "done" if summary is not None else ("failed" if error else "not run")
        outcomes[step.id] = StepOutcome(
            step.id, step.step, step.backend, status, summary, reporter.durations.get(step.id), error
        )
    # Only this workflow's bundles (a failed step's included): a project may hold thousands of runs.
    ingest_quietly(workflow.project, bundles, attempts=50)
    total = time.monotonic() - started
    return WorkflowResult(workflow_file, outcomes, total, scheduled - started)


def _bundle_of(task: StepTask) -> list[Path]:
    """The bundle of the run ``task`` makes with its current inputs, if it was written."""
    files = task.input_files()
    if files is None:
        return []
    bundle = task.plan(files).directory / BUNDLE_FILE
    return [bundle] if bundle.is_file() else []


def _sinks(workflow: Workflow) -> list[str]:
    used = {
        source["step"]
        for step in workflow.steps.values()
        for source in step.inputs.values()
        if "step" in source
    }
    return [step_id for step_id in workflow.steps if step_id not in used]
