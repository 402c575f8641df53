"""Read back what one run bundle says: status, inputs and outputs by role, with their hashes and paths.

Luigi's completeness check and the wiring between steps read bundle files directly (not the store), so a
step's state is known on any host that sees the project directory, whatever the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .bundle import BUNDLE_FILE
from .errors import BundleError
from .namespaces import ID, PROV, SKG

__all__ = ["RunFile", "RunSummary", "read_run_summary"]

_ROLE_PREFIX = ID + "role/"


@dataclass(frozen=True)
class RunFile:
    """A file a run used or generated: its role, project-relative path and SHA-256."""

    role: str
    path: str
    sha256: str


@dataclass
class RunSummary:
    run: str
    status: str  # "Succeeded", "Failed" or "Running"
    used: list[RunFile] = field(default_factory=list)
    generated: list[RunFile] = field(default_factory=list)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    def outputs(self, role: str) -> list[RunFile]:
        return [item for item in self.generated if item.role == role]


def read_run_summary(path: Path) -> RunSummary:
    """The summary of the bundle at ``path`` (a bundle file or a run directory holding one)."""
    bundle = path / BUNDLE_FILE if path.is_dir() else path
    try:
        quads = list(ox.parse(bundle.read_bytes(), format=ox.RdfFormat.TURTLE))
    except OSError as error:
        raise BundleError(f"{bundle}: cannot read the bundle: {error}") from error
    except SyntaxError as error:
        raise BundleError(f"{bundle}: not a valid Turtle bundle: {error}") from error
    by_subject: dict[str, dict[str, list[str]]] = {}
    for quad in quads:
        properties = by_subject.setdefault(str(quad.subject.value), {})
        properties.setdefault(quad.predicate.value, []).append(str(quad.object.value))
    runs = [s for s, p in by_subject.items() if PROV + "Activity" in p.get(_TYPE, [])]
    if len(runs) != 1:
        raise BundleError(f"{bundle}: expected one activity, found {len(runs)}")
    run = runs[0]
    status = by_subject[run].get(SKG + "runStatus", [SKG + "Running"])[0].rsplit("#", 1)[-1]
    messages = by_subject[run].get(SKG + "errorMessage") or []
    error_message = messages[0] if messages else None

    def files(link: str, entity_key: str) -> list[RunFile]:
        found = []
        for node in by_subject[run].get(link, []):
            details = by_subject.get(node, {})
            entity = (details.get(entity_key) or [""])[0]
            role = (details.get(PROV + "hadRole") or [""])[0].removeprefix(_ROLE_PREFIX)
            described = by_subject.get(entity, {})
            found.append(
                RunFile(
                    role,
                    (described.get(SKG + "filePath") or [""])[0],
                    (described.get(SKG + "sha256") or [""])[0],
                )
            )
        return sorted(found, key=lambda f: (f.role, f.path))

    used = files(PROV + "qualifiedUsage", PROV + "entity")
    generated = []
    for properties in by_subject.values():
        if run in properties.get(PROV + "wasGeneratedBy", []):
            # Files are content-addressed: two outputs with the same bytes (a selection that kept every
            # particle) are one entity generated in two roles, and each role is listed.
            roles = {
                role
                for generation in properties.get(PROV + "qualifiedGeneration") or []
                if run in by_subject.get(generation, {}).get(PROV + "activity", [run])
                for role in by_subject.get(generation, {}).get(PROV + "hadRole") or []
            }
            for role in sorted(roles) or [""]:
                generated.append(
                    RunFile(
                        role.removeprefix(_ROLE_PREFIX),
                        (properties.get(SKG + "filePath") or [""])[0],
                        (properties.get(SKG + "sha256") or [""])[0],
                    )
                )
    generated.sort(key=lambda f: (f.role, f.path))
    return RunSummary(run, status, used, generated, error_message)


_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
