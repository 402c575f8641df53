"""A deposition as deterministic JSON: every item with its value and evidence (for reports, the viewer
and the description of imported EMDB entries)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .model import Deposition

__all__ = ["deposition_json", "deposition_to_dict"]


def deposition_to_dict(deposition: Deposition) -> dict[str, Any]:
    """``{"method", "entry_id", "categories": {category: [{item: {"value", "evidence"}}]}}``."""
    categories: dict[str, list[dict[str, Any]]] = {}
    for category in sorted(deposition.categories):
        categories[category] = [
            {
                item: {
                    "value": row[item].value,
                    "evidence": {key: value for key, value in asdict(row[item].evidence).items() if value},
                }
                for item in sorted(row)
            }
            for row in deposition.categories[category]
        ]
    return {"method": deposition.method, "entry_id": deposition.entry_id, "categories": categories}


def deposition_json(deposition: Deposition) -> bytes:
    return (json.dumps(deposition_to_dict(deposition), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
