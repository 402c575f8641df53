"""The human-readable report of a deposition package (HTML): values with evidence, half-map checks,
validation results and the items a person must still supply."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from jinja2 import Environment, select_autoescape

from ..namespaces import compact
from .completeness import MissingItem
from .model import Deposition

__all__ = ["PackageFile", "ValidationLine", "render_report", "value_rows"]


@dataclass(frozen=True)
class PackageFile:
    name: str
    kind: str  # OneDep file type: vo-map, half-map, mask-map, fsc-xml, img-emdb, metadata
    sha256: str
    size: int


@dataclass(frozen=True)
class ValidationLine:
    ok: bool
    text: str


def _labels() -> dict[str, str]:
    try:
        from .mapping import load_mapping

        mapping = load_mapping()
        return {f"{item.category}.{item.name}": item.label for item in mapping.all_items()}
    except (ImportError, AttributeError):  # labels are a convenience: the report works without them
        return {}


def value_rows(deposition: Deposition) -> list[dict[str, object]]:
    """One row per filled item: label, category, item, row index, value, evidence text and links."""
    labels = _labels()
    rows: list[dict[str, object]] = []
    for category, index, item, found in deposition.fields():
        evidence = found.evidence
        rows.append(
            {
                "label": labels.get(f"{category}.{item}", item.replace("_", " ")),
                "category": category,
                "item": item,
                "row": index + 1 if len(deposition.rows(category)) > 1 else 0,
                "value": found.value,
                "evidence": evidence.text,
                "kind": evidence.kind,
                "run": compact(evidence.run) if evidence.run else None,
                "entity": compact(evidence.entity) if evidence.entity else None,
            }
        )
    return rows


def render_report(
    deposition: Deposition,
    *,
    map_path: str,
    map_sha256: str,
    resolution: str | None,
    proof_checks: list[str],
    missing: list[MissingItem],
    validation: list[ValidationLine],
    files: list[PackageFile],
) -> bytes:
    environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template_text = resources.files(__package__).joinpath("templates/report.html").read_text("utf-8")
    html = environment.from_string(template_text).render(
        map_path=map_path,
        map_sha256=map_sha256,
        method=deposition.method,
        resolution=resolution,
        proof_checks=proof_checks,
        missing=missing,
        validation=validation,
        values=value_rows(deposition),
        files=files,
    )
    return html.encode("utf-8")
