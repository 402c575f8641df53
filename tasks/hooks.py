"""Provenance and progress for every step task, in one place (DESIGN.md decision 7).

:func:`recorded` wraps a step's backend call in a recorder run: it resolves the input files, records the
parameters with their units, the backend's software name and version, the command line, user, host and
times, hashes inputs and outputs, and writes the bundle atomically and last. A failed backend registers no
output and its bundle says why. After each run the bundle is ingested into the project's store when the
store's write lock is free (another worker may hold it: the pipeline ingests every bundle at the end).

Luigi's START / SUCCESS / FAILURE events drive the progress display (:class:`ProgressReporter`).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import luigi

from scipion_kg.errors import ProcessingError, ProjectLockedError, ScipionKGError
from scipion_kg.ingest import ingest_bundles
from scipion_kg.project import Project
from scipion_kg.recorder import Recorder
from scipion_kg.vocabulary import vocabulary

from .step import StepContext, StepTask

__all__ = ["ProgressReporter", "ingest_quietly", "recorded"]


@contextmanager
def recorded(task: StepTask) -> Iterator[StepContext]:
    """The step's context inside an open recorder run (see the module docstring)."""
    files = task.input_files()
    if files is None:
        raise ProcessingError(f"step {task.step_id}: an upstream step has not produced its outputs")
    for role, paths in files.items():
        for path in paths:
            if not path.is_file():
                raise ProcessingError(f"step {task.step_id}: input {role!r} file {path} does not exist")
    recorder = Recorder(task.project)
    with recorder.run(
        task.step_class,
        inputs=task.recorder_inputs(files),
        parameters=task.recorded_parameters(),
        software=task.backend.software(task.parameters),
        command_line=_command_line(task),
    ) as run:
        context = StepContext(
            step_id=task.step_id,
            step_name=task.name,
            project=task.project,
            run=run,
            parameters=dict(task.parameters),
            inputs=files,
            backend=task.spec["backend"],
            output_ports={port.role: port for port in task.output_ports},
            progress=ProgressReporter.current().step_progress(task.step_id),
        )
        yield context
        missing = [
            port.role
            for port in task.output_ports
            if not port.optional and port.role not in run.declared_roles()
        ]
        if missing:
            raise ProcessingError(
                f"step {task.step_id}: backend {context.backend} produced no {', '.join(missing)}"
            )
    if run.bundle_path is not None:
        ingest_quietly(task.project, [run.bundle_path])


def _command_line(task: StepTask) -> str:
    return f"{shlex.join(sys.argv)}  # step {task.step_id} ({task.name}, backend {task.spec['backend']})"


def ingest_quietly(project: Project, bundles: list[Path], attempts: int = 5) -> bool:
    """Ingest ``bundles`` if the store's write lock can be had; False if another process kept it."""
    for attempt in range(attempts):
        try:
            with project.open_store(write=True) as store:
                ingest_bundles(store, project, bundles, vocabulary())
            return True
        except ProjectLockedError:
            time.sleep(0.2 * (attempt + 1))
    return False


class ProgressReporter:
    """Prints one line per step start and end, and a progress counter within long steps.

    On a terminal the counter rewrites its line; in a log file it prints at most every 10 %."""

    _current: ProgressReporter | None = None

    def __init__(
        self,
        total_steps: int = 0,
        stream: TextIO | None = None,
        quiet: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.say = say
        self.started: dict[str, float] = {}
        self.finished = 0
        self.failures: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    @classmethod
    def current(cls) -> ProgressReporter:
        if cls._current is None:
            cls._current = ProgressReporter(quiet=True)
        return cls._current

    def __enter__(self) -> ProgressReporter:
        ProgressReporter._current = self
        return self

    def __exit__(self, *_: object) -> None:
        ProgressReporter._current = None

    def _say(self, text: str) -> None:
        if self.quiet:
            return
        if self.say is not None:
            self.say(text)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, task: StepTask) -> None:
        self.started[task.step_id] = time.monotonic()
        self._say(f"[{self.finished + 1}/{self.total}] {task.step_id}: {task.name} ({task.spec['backend']})")

    def success(self, task: StepTask) -> None:
        elapsed = time.monotonic() - self.started.get(task.step_id, time.monotonic())
        self.durations[task.step_id] = elapsed
        self.finished += 1
        if self._is_terminal():
            self.stream.write("\r\033[K")
        self._say(f"      {task.step_id} done in {elapsed:.1f} s")

    def failure(self, task: StepTask, error: BaseException) -> None:
        self.failures[task.step_id] = str(error) if isinstance(error, ScipionKGError) else repr(error)
        if self._is_terminal():
            self.stream.write("\r\033[K")
        self._say(f"      {task.step_id} FAILED: {self.failures[task.step_id]}")

    def _is_terminal(self) -> bool:
        return not self.quiet and self.say is None and self.stream.isatty()

    def step_progress(self, step_id: str) -> Callable[[int, int], None]:
        last = [-1]

        def report(done: int, total: int) -> None:
            if self.quiet or total <= 0:
                return
            if self._is_terminal():
                self.stream.write(f"\r      {step_id}: {done}/{total}")
                self.stream.flush()
                return
            decile = (10 * done) // total
            if decile > last[0]:
                last[0] = decile
                self._say(f"      {step_id}: {done}/{total}")

        return report


@StepTask.event_handler(luigi.Event.START)  # type: ignore[untyped-decorator,no-untyped-call]
def _on_start(task: StepTask) -> None:
    ProgressReporter.current().start(task)


@StepTask.event_handler(luigi.Event.SUCCESS)  # type: ignore[untyped-decorator,no-untyped-call]
def _on_success(task: StepTask) -> None:
    ProgressReporter.current().success(task)


@StepTask.event_handler(luigi.Event.FAILURE)  # type: ignore[untyped-decorator,no-untyped-call]
def _on_failure(task: StepTask, error: BaseException) -> None:
    ProgressReporter.current().failure(task, error)
