"""The deposition model: one set of PDBx/mmCIF ``em_*`` category rows, every value with its evidence.

Values are stored as mmCIF holds them (units of the PDBx dictionary: voltage in kV, defocus in nm, dose
in e/Å², lengths in Å; enumerations as the dictionary spells them). The mmCIF and EMDB XML v3 renderers
both read this model; the XML renderer converts units where EMDB's header differs (defocus in µm).

    deposition = Deposition(method="SINGLE PARTICLE")
    deposition.set("em_imaging", "accelerating_voltage", 300, Evidence.of_run(run_iri, "voltage of ..."))
    row = deposition.add_row("em_software", {"name": ..., "version": ..., "category": ...}, evidence)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import DepositionError

__all__ = ["METHODS", "Deposition", "Evidence", "EvidenceKind", "Field", "FieldValue"]

FieldValue = str | int | float | bool
EvidenceKind = Literal["run", "parameter", "file", "metadata", "header", "computed", "default", "import"]

# em_experiment.reconstruction_method -> EMDB XML structure_determination/method
METHODS = {
    "SINGLE PARTICLE": "singleParticle",
    "SUBTOMOGRAM AVERAGING": "subtomogramAveraging",
    "TOMOGRAPHY": "tomography",
    "HELICAL": "helical",
    "CRYSTALLOGRAPHY": "electronCrystallography",
}


@dataclass(frozen=True)
class Evidence:
    """Where a value came from, in plain words (``text``) and as graph links.

    ``kind``: ``run`` (a recorded run's outputs), ``parameter`` (a run's parameter), ``file`` (a file's
    content, e.g. a map header), ``metadata`` (the user's metadata file), ``header`` (an imported EMDB
    header), ``computed`` (computed by the deposition itself, e.g. FSC of the half maps), ``default``
    (a documented default the user may override), ``import``.
    """

    kind: EvidenceKind
    text: str
    run: str | None = None
    entity: str | None = None
    parameter: str | None = None
    location: str | None = None

    @classmethod
    def default(cls, text: str) -> Evidence:
        return cls("default", text)

    @classmethod
    def metadata(cls, source: str, key: str) -> Evidence:
        return cls("metadata", f"{key} in metadata file {source}", location=key)


@dataclass(frozen=True)
class Field:
    value: FieldValue
    evidence: Evidence


Row = dict[str, Field]


@dataclass
class Deposition:
    """PDBx/mmCIF ``em_*`` rows (category -> rows -> item -> Field) for one map entry."""

    method: str = "SINGLE PARTICLE"
    entry_id: str = "EMD-0000"
    categories: dict[str, list[Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DepositionError(
                f"reconstruction method {self.method!r} is not one EMDB knows; accepted: {', '.join(METHODS)}"
            )

    def rows(self, category: str) -> list[Row]:
        """The rows of ``category`` (an empty list when there are none)."""
        return self.categories.get(category, [])

    def set(self, category: str, item: str, value: FieldValue, evidence: Evidence, row: int = 0) -> None:
        """Set one item; rows up to ``row`` are created as needed."""
        rows = self.categories.setdefault(category, [])
        while len(rows) <= row:
            rows.append({})
        rows[row][item] = Field(value, evidence)

    def add_row(self, category: str, values: Mapping[str, FieldValue], evidence: Evidence) -> int:
        """Append a row whose items share one evidence; returns its index."""
        rows = self.categories.setdefault(category, [])
        rows.append({item: Field(value, evidence) for item, value in values.items()})
        return len(rows) - 1

    def get(self, category: str, item: str, row: int = 0) -> Field | None:
        rows = self.categories.get(category, [])
        return rows[row].get(item) if row < len(rows) else None

    def value(self, category: str, item: str, row: int = 0) -> FieldValue | None:
        found = self.get(category, item, row)
        return found.value if found is not None else None

    def fields(self) -> Iterator[tuple[str, int, str, Field]]:
        """Every (category, row index, item, field), categories and items in a stable order."""
        for category in sorted(self.categories):
            for index, row in enumerate(self.categories[category]):
                for item in sorted(row):
                    yield category, index, item, row[item]

    def merge(self, other: Deposition, *, overwrite: bool = False) -> None:
        """Copy ``other``'s items into this model; existing items are kept unless ``overwrite``."""
        for category, index, item, found in other.fields():
            if overwrite or self.get(category, item, index) is None:
                self.set(category, item, found.value, found.evidence, index)
