"""What the viewer shows of a map's deposition: a preview computed from the graph (nothing written) and
the packages already prepared for it by ``scipion-kg deposit`` (recorded deposition runs), as zip files."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from ..errors import DepositionError
from ..project import Project
from ..queries import fill_query, iri_term
from ..store import Store
from .completeness import MissingItem, missing_items
from .from_graph import fill_from_graph
from .halfmaps import HalfMapProof, prove_half_maps
from .model import Deposition

__all__ = ["DepositionPreview", "RecordedPackage", "package_zip", "preview_deposition", "recorded_packages"]


# The names `scipion-kg deposit` gives the maps it used (package.py), by their role in the deposition run.
PACKAGE_MAP_NAMES = {
    "map": "emd_0000.map",
    "half_map_1": "emd_0000_half_map_1.map",
    "half_map_2": "emd_0000_half_map_2.map",
    "mask": "emd_0000_msk_1.map",
}


@dataclass
class DepositionPreview:
    """The deposition of a map as the graph fills it, or why it cannot be deposited (``problem``)."""

    deposition: Deposition | None = None
    proof: HalfMapProof | None = None
    missing: list[MissingItem] = field(default_factory=list)
    resolution: float | None = None
    problem: str | None = None


@dataclass
class RecordedPackage:
    run: str
    started: str
    status: str
    files: list[tuple[str, str, str]] = field(default_factory=list)  # (link, role, project path)


def preview_deposition(store: Store, project: Project, map_iri: str) -> DepositionPreview:
    """Prove the half maps and fill the model; a refusal becomes ``problem`` (shown, not raised)."""
    try:
        proof = prove_half_maps(store, project, map_iri)
        filled = fill_from_graph(store, project, map_iri, proof)
    except DepositionError as error:
        return DepositionPreview(problem=str(error))
    deposition = filled.deposition
    return DepositionPreview(
        deposition, proof, missing_items(deposition), filled.sources.fsc.resolution(0.143), None
    )


def recorded_packages(store: Store, map_iri: str) -> list[RecordedPackage]:
    """The deposition runs that used ``map_iri``, newest first, with their files."""
    packages: dict[str, RecordedPackage] = {}
    chosen: dict[tuple[str, str, str], tuple[bool, str, str]] = {}
    for row in store.select(fill_query("deposition-packages", map=iri_term(map_iri))):
        run = str(row["run"])
        packages.setdefault(run, RecordedPackage(run, str(row["started"]), str(row["status"])))
        link, path = str(row["link"]), str(row["path"])
        role = str(row["role"]) if row.get("role") is not None else ""
        directory = str(row["directory"]) if row.get("directory") is not None else None
        # The same content may sit in several places; a generated file is the copy in the run's directory.
        preferred = directory is not None and path.startswith(directory.rstrip("/") + "/")
        key = (run, link, str(row["entity"]))
        if key not in chosen or (preferred and not chosen[key][0]):
            chosen[key] = (preferred, role, path)
    for (run, link, _), (_, role, path) in sorted(chosen.items()):
        packages[run].files.append((link, role, path))
    return list(packages.values())


def package_zip(project: Project, package: RecordedPackage) -> bytes:
    """The files of a recorded package as a zip (maps under their recorded names); only files inside the
    project are included, and a file missing on disk stops it with the path named."""
    root = project.root.resolve()
    buffer = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for link, role, recorded in package.files:
            path = project.resolve_path(recorded).resolve()
            if root not in path.parents:
                raise DepositionError(f"{recorded} is outside the project; it is not packaged")
            if not path.is_file():
                raise DepositionError(f"{recorded} of the deposition run is missing on disk")
            name = PACKAGE_MAP_NAMES.get(role, path.name) if link == "used" else path.name
            if name not in names:
                names.add(name)
                archive.write(path, arcname=name)
    return buffer.getvalue()
