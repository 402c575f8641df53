"""Registering files that already exist (``scipion-kg import``) through one import activity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import RecordError
from .formats import require_format
from .namespaces import SKG, expand
from .recorder import Parameter, Recorder, RunContext, Software
from .version import __version__

__all__ = ["import_files"]


def import_files(
    recorder: Recorder,
    paths: Sequence[Path],
    *,
    data_class: str | None = None,
    format: str | None = None,
) -> RunContext:
    """Record one skg:Import run that generated ``paths`` (registered in place, never copied).

    Everything is checked before anything is recorded: a missing or unrecognised file stops the import
    and leaves the store as it was.
    """
    if not paths:
        raise RecordError("nothing to import: give at least one file")
    vocabulary = recorder.vocabulary
    planned: list[tuple[Path, str, str]] = []
    for path in paths:
        if not path.is_file():
            raise RecordError(f"{path}: no such file")
        if format is not None:
            format_iri = recorder.check_format(format)
            holds = None
        else:
            declaration = require_format(path, vocabulary)
            format_iri, holds = declaration.iri, declaration.data_class
        kind = recorder.check_data_class(data_class or holds or SKG + "DataFile")
        planned.append((path, format_iri, kind))
    digests = [recorder.project.hash_cache.digest(path) for path, _, _ in planned]
    parameters = [
        Parameter("paths", [recorder.project.relative_path(path) for path, _, _ in planned]),
        Parameter("sha256", [digest.sha256 for digest in digests]),
    ]
    if data_class:
        parameters.append(Parameter("data_class", expand(data_class)))
    with recorder.run(
        "skg:Import",
        parameters=parameters,
        software=[Software("scipion-kg", __version__, algorithm="register files in place")],
    ) as run:
        for path, format_iri, kind in planned:
            run.add_output(path, "imported", kind, format_iri)
    return run
