"""Raw documents <-> canonical tables, driven only by the declared conventions (conventions.py).

Reading applies, per declaration: units (qudt:conversionMultiplier), index bases, the image locator
``index@path``, fractional positions, the rotation encoding (geometry.py), the shift unit and sign (pixels
through the pixel size of the row's optics group), the defocus encoding, and per-row optics values grouped
into optics groups. Writing applies the inverse. Nothing here names a package.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ConversionError, ParseError

from . import geometry
from .canonical import CANONICAL_COLUMNS, Table
from .conventions import PIXEL, UNIT, ColumnRule, Convention, canonical_unit, unit_factor
from .raw import Column, RawBlock, RawDocument

__all__ = [
    "OPTION_NAMES",
    "ConversionOptions",
    "LossReport",
    "from_canonical",
    "to_canonical",
    "written_table",
]

DEG = UNIT + "DEG"
RAD = UNIT + "RAD"
ANGSTROM = UNIT + "ANGSTROM"
FloatArray = npt.NDArray[np.float64]

# The command-line option that supplies a set-level value a source may lack.
OPTION_NAMES = {
    "pixel_size": "--pixel-size",
    "voltage": "--voltage",
    "spherical_aberration": "--cs",
    "amplitude_contrast": "--amplitude-contrast",
    "image_size": "--box-size",
    "micrograph_size": "--micrograph-size",
}
OPTICS_COLUMNS = ("pixel_size", "voltage", "spherical_aberration", "amplitude_contrast", "image_size")


@dataclass
class ConversionOptions:
    """Values the user supplies where a source lacks them (never overriding what a file says)."""

    pixel_size: float | None = None
    voltage: float | None = None
    spherical_aberration: float | None = None
    amplitude_contrast: float | None = None
    image_size: int | None = None
    micrograph_size: tuple[int, int] | None = None  # (nx, ny)

    def value(self, column: str) -> float | None:
        found = getattr(self, column, None)
        return float(found) if isinstance(found, int | float) else None


@dataclass
class LossReport:
    """What the target convention cannot hold: reported, never silent."""

    columns: list[str] = field(default_factory=list)  # canonical columns not written
    extras: list[str] = field(default_factory=list)  # source-specific columns not written

    @property
    def lossless(self) -> bool:
        return not self.columns and not self.extras

    def __str__(self) -> str:
        parts = []
        if self.columns:
            parts.append("columns the target cannot hold: " + ", ".join(self.columns))
        if self.extras:
            parts.append("source-specific columns dropped: " + ", ".join(self.extras))
        return "; ".join(parts) or "nothing lost"


# --- reading ---------------------------------------------------------------------------------------


def _source(document: RawDocument) -> str:
    return str(document.source) if document.source is not None else "<document>"


_ELEMENT = re.compile(r"(.+)\[(\d+)\]")


def _get(block: RawBlock, label: str) -> Column | None:
    """A column by label; ``name[i]`` also addresses column i of a 2-D column ``name``."""
    if label in block.columns:
        return block.columns[label]
    match = _ELEMENT.fullmatch(label)
    if match:
        values = block.columns.get(match.group(1))
        index = int(match.group(2))
        if values is not None and values.ndim == 2 and index < values.shape[1]:
            return values[:, index]
    return None


def _base_label(label: str) -> str:
    """``field`` for ``field[2]`` (one column of a 2-D column); other labels as they are."""
    match = _ELEMENT.fullmatch(label)
    return match.group(1) if match else label


def _as_float(values: Column, label: str, block: RawBlock, document: RawDocument) -> FloatArray:
    if values.dtype.kind in "iufb":
        return values.astype(np.float64, copy=False)
    for row, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            raise ParseError(
                f"{_source(document)}: {block.where(row)}, column {label}: {str(value)!r} is not a number"
            ) from None
    return values.astype(np.float64)


def _as_int(values: Column, label: str, block: RawBlock, document: RawDocument) -> npt.NDArray[np.int64]:
    floats = _as_float(values, label, block, document)
    bad = np.flatnonzero(~np.isfinite(floats) | (floats != np.round(floats)))
    if bad.size:
        row = int(bad[0])
        raise ParseError(
            f"{_source(document)}: {block.where(row)}, column {label}: {str(values[row])!r} is not an integer"
        )
    return floats.astype(np.int64)


def _complete(block: RawBlock, labels: tuple[str, ...], what: str, document: RawDocument) -> bool:
    """True when every label is present, False when none is; a partial set is an error."""
    present = [label for label in labels if _get(block, label) is not None]
    if present and len(present) < len(labels):
        missing = [label for label in labels if label not in present]
        raise ParseError(
            f"{_source(document)}: block {block.name or '(unnamed)'} has the {what} column(s) "
            f"{', '.join(present)} but not {', '.join(missing)}"
        )
    return bool(present)


def _main_block(document: RawDocument, convention: Convention) -> RawBlock:
    if convention.main_block in document.blocks:
        return document.blocks[convention.main_block]
    known = convention.labels()
    loops = [b for b in document if b.is_loop and b.name != convention.optics_block]
    if not loops:
        raise ParseError(f"{_source(document)}: no table of rows found")
    return max(loops, key=lambda b: (len(known & {*b.columns, *map(_base_label, known)}), b.n_rows))


def _convert_rule(
    rule: ColumnRule, values: Column, block: RawBlock, document: RawDocument
) -> npt.NDArray[np.generic]:
    dtype = CANONICAL_COLUMNS[rule.column].dtype
    if dtype == "str":
        return values.astype(str, copy=False)  # a copy of a million paths costs ~0.1 s
    numbers = _as_float(values, rule.label, block, document)
    if rule.unit is not None and rule.unit != PIXEL:
        numbers = numbers * unit_factor(rule.unit, canonical_unit(rule.column))
    for other, operation in ((rule.scaled_by, np.multiply), (rule.divided_by, np.divide)):
        if other is None:
            continue
        found = _get(block, other)
        if found is None:
            raise ParseError(
                f"{_source(document)}: column {rule.label} needs column {other}, which is missing"
            )
        numbers = operation(numbers, _as_float(found, other, block, document))
    if dtype == "int":
        if rule.index_base == 0:
            numbers = numbers + 1
        return _as_int(numbers, rule.label, block, document)
    return numbers


def _split_locator(
    values: Column, label: str, block: RawBlock, document: RawDocument
) -> tuple[Column | None, Column, int]:
    """(1-based indices or None when no row has one, stack paths, zero-padding width) of ``index@path``."""
    fast = _split_fixed_locator(values)
    if fast is not None:
        return fast
    # str.partition over a list is ~10x faster than numpy.char.partition on a million rows.
    parts = [str(item).partition("@") for item in values.tolist()]
    missing = [row for row, part in enumerate(parts) if not part[1]]
    if len(missing) == len(parts):
        return None, values.astype(str), 0  # one image per file (subtomograms, single images)
    if missing:
        row = missing[0]
        raise ParseError(
            f"{_source(document)}: {block.where(row)}, column {label}: {str(values[row])!r} has no index@ "
            "while other rows do"
        )
    heads = np.array([part[0] for part in parts])
    try:
        indices = heads.astype(np.int64)
    except ValueError:
        row = next(i for i, v in enumerate(heads) if not v.strip().lstrip("+-").isdigit())
        raise ParseError(
            f"{_source(document)}: {block.where(row)}, column {label}: {str(values[row])!r} is not index@path"
        ) from None
    return indices, np.array([part[2] for part in parts]), len(parts[0][0]) if parts else 0


def _split_fixed_locator(values: Column) -> tuple[Column, Column, int] | None:
    """The common case vectorised: every row has ``@`` at the same place after zero-padded digits
    (``000123@stack.mrcs``). Works on the fixed-width code points of the numpy string array."""
    if values.dtype.kind != "U" or len(values) == 0 or values.dtype.itemsize == 0:
        return None
    width = values.dtype.itemsize // 4
    codes = np.ascontiguousarray(values).view(np.uint32).reshape(len(values), width)
    at = int(np.argmax(codes[0] == ord("@")))
    if at == 0 or codes[0, at] != ord("@") or not (codes[:, at] == ord("@")).all():
        return None
    digits = codes[:, :at].astype(np.int64) - ord("0")
    if ((digits < 0) | (digits > 9)).any():
        return None
    indices = digits @ (10 ** np.arange(at - 1, -1, -1, dtype=np.int64))
    names = np.ascontiguousarray(codes[:, at + 1 :]).view(f"<U{width - at - 1}").reshape(len(values))
    return indices, names, at


def _check_rotation_matrices(
    entries: FloatArray, convention: Convention, block: RawBlock, document: RawDocument
) -> None:
    """Every row's nine entries must form a rotation (orthonormal, determinant +1)."""
    matrices = entries.reshape(-1, 3, 3)
    error = np.abs(matrices @ np.transpose(matrices, (0, 2, 1)) - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero((error > 1e-3) | (np.linalg.det(matrices) <= 0))
    if bad.size:
        row = int(bad[0])
        raise ParseError(
            f"{_source(document)}: {block.where(row)}: columns {convention.rotation_labels[0]}.. "
            f"do not form a rotation matrix (rows must be orthonormal with determinant +1): "
            f"{matrices[row].round(4).tolist()}"
        )


def _group_optics(per_row: dict[str, FloatArray]) -> tuple[npt.NDArray[np.int64], dict[str, FloatArray]]:
    """Rows with equal optics values form one group (1-based, in order of first appearance)."""
    names = sorted(per_row)
    stacked = np.column_stack([np.nan_to_num(per_row[name], nan=-1e300) for name in names])
    if len(stacked) and (stacked == stacked[0]).all():  # one group, the usual case: no sort needed
        return np.ones(len(stacked), dtype=np.int64), {name: per_row[name][:1] for name in names}
    _, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    groups = rank[inverse.reshape(-1)] + 1
    optics = {name: per_row[name][first[order]] for name in names}
    return groups.astype(np.int64), optics


def to_canonical(
    document: RawDocument, convention: Convention, options: ConversionOptions | None = None
) -> Table:
    """The canonical table of ``document`` read with ``convention``."""
    options = options or ConversionOptions()
    block = _main_block(document, convention)
    n = block.n_rows
    columns: dict[str, npt.NDArray[np.generic]] = {}
    per_row_optics: dict[str, FloatArray] = {}
    used: set[str] = set()
    layout: dict[str, object] = {"main_block": block.name, "version": document.version}

    for rule in convention.rules:
        if rule.block is not None:
            continue
        values = _get(block, rule.label)
        if values is None:
            continue
        used.add(_base_label(rule.label))
        for other in (rule.scaled_by, rule.divided_by):
            if other:
                used.add(_base_label(other))
        if rule.column in columns or rule.column in per_row_optics:
            continue  # a second label for the same quantity (blob/shape[1])
        converted = _convert_rule(rule, values, block, document)
        if rule.per_row_optics:
            per_row_optics[rule.column] = converted.astype(np.float64)
        else:
            columns[rule.column] = converted

    if convention.image_locator and (values := _get(block, convention.image_locator)) is not None:
        used.add(convention.image_locator)
        indices, columns["image_name"], layout["locator_width"] = _split_locator(
            values, convention.image_locator, block, document
        )
        if indices is not None:
            columns["image_index"] = indices

    if _complete(block, convention.rotation_labels, "rotation", document):
        angles = np.column_stack(
            [_as_float(_get(block, label), label, block, document) for label in convention.rotation_labels]  # type: ignore[arg-type]
        )
        used.update(_base_label(label) for label in convention.rotation_labels)
        if not np.isfinite(angles).all():
            row = int(np.flatnonzero(~np.isfinite(angles).all(axis=1))[0])
            raise ParseError(
                f"{_source(document)}: {block.where(row)}: the rotation has a NaN or infinite angle"
            )
        if convention.rotation_encoding == geometry.MATRIX:
            _check_rotation_matrices(angles, convention, block, document)
        radians = angles * unit_factor(convention.angle_unit, RAD)
        pivot = geometry.to_pivot(
            convention.rotation_encoding or "", radians, convention.euler_sequence, convention.transposed
        )
        columns["angle_rot"], columns["angle_tilt"], columns["angle_psi"] = (
            pivot[:, 0],
            pivot[:, 1],
            pivot[:, 2],
        )

    if _complete(block, convention.defocus_labels, "defocus", document):
        first, second, angle = (
            _as_float(_get(block, label), label, block, document)  # type: ignore[arg-type]
            for label in convention.defocus_labels
        )
        used.update(convention.defocus_labels)
        to_angstrom = unit_factor(convention.defocus_unit, ANGSTROM)
        angle_deg = (
            angle * unit_factor(convention.defocus_angle_unit, DEG) + convention.astigmatism_angle_offset
        )
        if convention.defocus_encoding == "DefocusMeanDifference":
            half = convention.defocus_difference_sign * second / 2
            first, second = first + half, first - half
        columns["defocus_u"], columns["defocus_v"] = first * to_angstrom, second * to_angstrom
        columns["defocus_angle"] = angle_deg

    tilt_shift: FloatArray | None = None
    if _complete(block, convention.tilt_alignment_labels, "tilt alignment", document):
        alignment = [
            _as_float(_get(block, label), label, block, document)  # type: ignore[arg-type]
            for label in convention.tilt_alignment_labels
        ]
        used.update(convention.tilt_alignment_labels)
        rotation, magnification, tilt_shift = _tilt_alignment_in(convention, alignment)
        columns["axis_rotation"], columns["magnification"] = rotation, magnification

    table = Table(
        kind=convention.table_kind, source_format=document.format_iri, source_convention=convention.iri
    )
    optics = _read_optics(document, convention, table, per_row_optics, columns, n, options)

    if _complete(block, convention.shift_labels[:2], "shift", document):
        present = [label for label in convention.shift_labels if _get(block, label) is not None]
        used.update(_base_label(label) for label in present)
        try:
            pixel = _pixel_size_per_row(
                convention.shift_unit, columns, optics, options, n, "read the shifts of"
            )
        except ConversionError:
            # No pixel size anywhere: the shifts stay in pixels until a target needs Å (then it asks).
            pixel = np.ones(n)
            layout["origin_pixels"] = True
        for axis, label in zip("xyz", present, strict=False):
            values = _as_float(_get(block, label), label, block, document)  # type: ignore[arg-type]
            factor = pixel if convention.shift_unit == PIXEL else unit_factor(convention.shift_unit, ANGSTROM)
            columns[f"origin_{axis}"] = convention.shift_sign * values * factor

    if tilt_shift is not None:
        # Specimen shifts are pixels in every tilt-alignment format; Å need the pixel size.
        pixel_size = options.pixel_size or table.metadata.pixel_size
        if pixel_size is None:
            layout["shift_pixels"] = True
        columns["shift_x"] = tilt_shift[:, 0] * (pixel_size or 1.0)
        columns["shift_y"] = tilt_shift[:, 1] * (pixel_size or 1.0)

    table.columns = columns
    table.extras = {label: values for label, values in block.columns.items() if label not in used}
    layout["labels"] = list(block.columns)
    # Blocks the convention gives no meaning to (EMX micrographs, RELION 5 per-file blocks) are kept
    # whole so that writing back in the same convention reproduces the file.
    layout["other_blocks"] = [b for b in document if b is not block and b.name != convention.optics_block]
    layout["block_order"] = list(document.blocks)
    layout["fields"] = dict(document.fields)
    table.layout = {**table.layout, **layout}  # _read_optics recorded the optics block's layout
    return table


def _read_optics(
    document: RawDocument,
    convention: Convention,
    table: Table,
    per_row: dict[str, FloatArray],
    columns: dict[str, npt.NDArray[np.generic]],
    n: int,
    options: ConversionOptions,
) -> Table | None:
    optics_columns: dict[str, npt.NDArray[np.generic]] = {}
    if convention.optics_block and convention.optics_block in document.blocks:
        block = document.blocks[convention.optics_block]
        for rule in convention.rules:
            if rule.block == convention.optics_block and (values := _get(block, rule.label)) is not None:
                optics_columns[rule.column] = _convert_rule(rule, values, block, document)
        if "optics_group" in optics_columns and "optics_group" in columns:
            declared = set(np.asarray(optics_columns["optics_group"]).tolist())
            used_groups = np.asarray(columns["optics_group"])
            undeclared = np.flatnonzero(~np.isin(used_groups, list(declared)))
            if undeclared.size:
                row = int(undeclared[0])
                raise ParseError(
                    f"{_source(document)}: row {row + 1} uses optics group {used_groups[row]}, which the "
                    f"{convention.optics_block} block does not declare (it declares {sorted(declared)})"
                )
        table.layout["optics_labels"] = list(block.columns)
        table.layout["optics_extras"] = {
            label: values
            for label, values in block.columns.items()
            if label not in {rule.label for rule in convention.rules if rule.block == convention.optics_block}
        }
    elif per_row:
        groups, grouped = _group_optics(per_row)
        columns.setdefault("optics_group", groups)
        optics_columns = {"optics_group": np.arange(1, len(next(iter(grouped.values()))) + 1), **grouped}
    supplied = {name: options.value(name) for name in OPTICS_COLUMNS if options.value(name) is not None}
    if not optics_columns and supplied:
        optics_columns = {"optics_group": np.array([1])}
        columns.setdefault("optics_group", np.ones(n, dtype=np.int64))
    if not optics_columns:
        return None
    group_count = len(optics_columns["optics_group"]) if "optics_group" in optics_columns else 1
    for name, value in supplied.items():
        if name not in optics_columns:
            optics_columns[name] = np.full(group_count, value)
    if "image_size" in optics_columns:
        optics_columns["image_size"] = np.asarray(optics_columns["image_size"]).astype(np.int64)
    optics = Table(kind="optics", columns=optics_columns)
    table.related["optics"] = optics
    return optics


def _pixel_size_per_row(
    unit: str | None,
    columns: dict[str, npt.NDArray[np.generic]],
    optics: Table | None,
    options: ConversionOptions,
    n: int,
    action: str,
) -> FloatArray:
    if unit != PIXEL:
        return np.ones(n)
    if optics is not None and "pixel_size" in optics.columns:
        groups = np.asarray(columns.get("optics_group", np.ones(n, dtype=np.int64)))
        return _per_group(optics, "pixel_size", groups)
    if options.pixel_size is not None:
        return np.full(n, options.pixel_size)
    raise ConversionError(
        f"the pixel size is needed to {action} this table (pixels <-> Å): pass --pixel-size"
    )


def _tilt_alignment_in(
    convention: Convention, values: list[FloatArray]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(axis rotation in degrees, magnification, specimen shift (n, 2) in pixels) of each view."""
    if convention.tilt_alignment_encoding == "AffineTransformAlignment":
        a11, a12, a21, a22, dx, dy = values
        determinant = a11 * a22 - a12 * a21
        magnification = np.sqrt(np.abs(determinant))
        rotation = np.degrees(np.arctan2(a21, a11))
        # The specimen shift is -M^-1 d (docs/conventions §1, IMOD and AreTomo).
        shift_x = -(a22 * dx - a12 * dy) / determinant
        shift_y = -(-a21 * dx + a11 * dy) / determinant
        return rotation, magnification, np.column_stack([shift_x, shift_y])
    rotation, magnification, shift_x, shift_y = values
    return rotation, magnification, np.column_stack([shift_x, shift_y])


def _tilt_alignment_out(convention: Convention, table: Table, pixel_size: float) -> dict[str, FloatArray]:
    rotation = np.asarray(table.columns["axis_rotation"], dtype=np.float64)
    magnification = np.asarray(table.columns.get("magnification", np.ones(len(rotation))), dtype=np.float64)
    shift_x = np.asarray(table.columns["shift_x"], dtype=np.float64) / pixel_size
    shift_y = np.asarray(table.columns["shift_y"], dtype=np.float64) / pixel_size
    labels = convention.tilt_alignment_labels
    if convention.tilt_alignment_encoding == "AffineTransformAlignment":
        radians = np.radians(rotation)
        a11, a12 = magnification * np.cos(radians), -magnification * np.sin(radians)
        a21, a22 = magnification * np.sin(radians), magnification * np.cos(radians)
        dx = -(a11 * shift_x + a12 * shift_y)
        dy = -(a21 * shift_x + a22 * shift_y)
        return dict(zip(labels, (a11, a12, a21, a22, dx, dy), strict=True))
    return dict(zip(labels, (rotation, magnification, shift_x, shift_y), strict=True))


# --- writing ---------------------------------------------------------------------------------------


def _per_group(optics: Table, column: str, groups: npt.NDArray[np.generic]) -> FloatArray:
    """The optics value of each row's group (vectorised lookup)."""
    values = np.asarray(optics.columns[column], dtype=np.float64)
    if len(values) == 1:
        return np.full(len(groups), values[0])
    declared = np.asarray(optics.columns["optics_group"])
    numbers = np.asarray(groups)
    if declared.dtype.kind in "iu" and numbers.dtype.kind in "iu" and len(numbers) and declared.min() >= 0:
        # Group numbers are small integers: a lookup table is ~3x faster than a sorted search.
        lookup = np.full(int(declared.max()) + 2, -1, dtype=np.int64)
        lookup[declared] = np.arange(len(declared))
        slots = lookup[np.clip(numbers, -1, len(lookup) - 1)]  # -1 and too large land on the -1 entries
        if (slots < 0).any():
            group = numbers[np.flatnonzero(slots < 0)[0]]
            raise ConversionError(
                f"optics group {group} is used by a row but not declared in the optics table"
            )
        per_row: FloatArray = values[slots]
        return per_row
    order = np.argsort(declared)
    position = np.clip(np.searchsorted(declared[order], groups), 0, len(declared) - 1)
    unknown = declared[order][position] != groups
    if unknown.any():
        group = numbers[np.flatnonzero(unknown)[0]]
        raise ConversionError(f"optics group {group} is used by a row but not declared in the optics table")
    return values[order][position]


def _optics_per_row(table: Table, column: str) -> FloatArray | None:
    optics = table.related.get("optics")
    if optics is None or column not in optics.columns:
        return None
    groups = np.asarray(table.columns.get("optics_group", np.ones(table.n_rows, dtype=np.int64)))
    return _per_group(optics, column, groups)


def written_table(table: Table, loss: LossReport, options: ConversionOptions | None = None) -> Table:
    """The canonical content of a conversion's output: the table completed from the options, without
    the columns the target could not hold (what the written file says, for validating the output)."""
    filled = _fill_optics(table, options or ConversionOptions())
    kept = {name: values for name, values in filled.columns.items() if name not in set(loss.columns)}
    optics = filled.related.get("optics")
    related = dict(filled.related)
    if optics is not None:
        lost = {entry.removeprefix("optics ") for entry in loss.columns if entry.startswith("optics ")}
        related["optics"] = Table(
            kind="optics", columns={k: v for k, v in optics.columns.items() if k not in lost}
        )
    return Table(kind=table.kind, columns=kept, metadata=filled.metadata, related=related)


def _fill_optics(table: Table, options: ConversionOptions) -> Table:
    """The table with an optics table completed from the options (never overriding the table)."""
    supplied = {name: options.value(name) for name in OPTICS_COLUMNS if options.value(name) is not None}
    if not supplied:
        return table
    optics = table.related.get("optics")
    columns = dict(optics.columns) if optics is not None else {"optics_group": np.array([1])}
    groups = len(columns["optics_group"])
    for name, value in supplied.items():
        columns.setdefault(name, np.full(groups, value))
    main = dict(table.columns)
    main.setdefault("optics_group", np.ones(table.n_rows, dtype=np.int64))
    return Table(
        kind=table.kind, columns=main, extras=table.extras, metadata=table.metadata,
        related={**table.related, "optics": Table(kind="optics", columns=columns)},
        source_format=table.source_format, source_convention=table.source_convention, layout=table.layout,
    )  # fmt: skip


def _back(rule: ColumnRule, values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    dtype = CANONICAL_COLUMNS[rule.column].dtype
    if dtype == "str":
        return values
    if dtype == "int":
        ints = np.asarray(values, dtype=np.int64)
        return ints - 1 if rule.index_base == 0 else ints
    numbers = np.asarray(values, dtype=np.float64)
    if rule.unit is not None and rule.unit != PIXEL:
        numbers = numbers / unit_factor(rule.unit, canonical_unit(rule.column))
    return numbers


def _join_locators(indices: npt.NDArray[np.generic], names: npt.NDArray[np.str_], width: int) -> Column:
    """``index@name`` with the index zero-padded to ``width`` (just ``name`` where the index is 0)."""
    numbers = np.asarray(indices, dtype=np.int64)
    if width and len(numbers) and names.dtype.itemsize and (numbers > 0).all() and numbers.max() < 10**width:
        # The common case on fixed-width code points: digits, "@" and the name side by side, then one view
        # as a string array (trailing NULs of shorter names end them); ~20x faster than numpy.char.add.
        name_width = names.dtype.itemsize // 4
        codes = np.empty((len(numbers), width + 1 + name_width), dtype=np.uint32)
        powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
        codes[:, :width] = (numbers[:, None] // powers) % 10 + ord("0")
        codes[:, width] = ord("@")
        codes[:, width + 1 :] = np.ascontiguousarray(names).view(np.uint32).reshape(len(numbers), name_width)
        return codes.view(f"<U{width + 1 + name_width}").reshape(len(numbers))
    prefix = np.char.zfill(numbers.astype(str), width) if width else numbers.astype(str)
    return np.where(numbers > 0, np.char.add(np.char.add(prefix, "@"), names), names)


def from_canonical(
    table: Table, convention: Convention, options: ConversionOptions | None = None
) -> tuple[RawDocument, LossReport]:
    """The raw document of ``table`` in ``convention``, and what it could not hold."""
    options = options or ConversionOptions()
    table = _fill_optics(table, options)
    n = table.n_rows
    same = table.source_convention == convention.iri
    out: dict[str, npt.NDArray[np.generic]] = {}
    written: set[str] = set()

    for column in convention.requires_columns if not same else ():
        # Written back in its own convention, a file keeps whatever it lacked.
        if column not in table.columns and _optics_per_row(table, column) is None:
            option = OPTION_NAMES.get(column, column)
            raise ConversionError(
                f"{convention.label} needs the {column.replace('_', ' ')}, "
                f"which the source lacks: pass {option}"
            )

    if convention.image_locator and table.has("image_name"):
        width = int(str(table.layout.get("locator_width", 6))) if same else 6
        indices = np.asarray(table.columns.get("image_index", np.zeros(n, dtype=np.int64)))
        names = np.asarray(table.columns["image_name"]).astype(str, copy=False)
        out[convention.image_locator] = _join_locators(indices, names, width)
        written.update({"image_name", "image_index"})

    if convention.rotation_labels and table.has("angle_rot", "angle_tilt", "angle_psi"):
        pivot = np.column_stack(
            [np.asarray(table.columns[c], dtype=np.float64) for c in ("angle_rot", "angle_tilt", "angle_psi")]
        )
        values = geometry.from_pivot(
            convention.rotation_encoding or "", pivot, convention.euler_sequence, convention.transposed
        )
        values = values / unit_factor(convention.angle_unit, RAD)
        for index, label in enumerate(convention.rotation_labels):
            out[label] = values[:, index]
        written.update({"angle_rot", "angle_tilt", "angle_psi"})

    if convention.shift_labels and table.has("origin_x", "origin_y"):
        if table.layout.get("origin_pixels"):
            # The shifts were never converted from pixels (the source had no pixel size).
            if convention.shift_unit == PIXEL:
                pixel = np.ones(n)
            elif options.pixel_size is not None:
                table = _with_origin_scaled(table, options.pixel_size)
                pixel = np.ones(n)  # unused: the target's unit is not pixels
            else:
                raise ConversionError(
                    "the pixel size is needed to write the shifts of this table in Å: pass --pixel-size"
                )
        else:
            pixel = _pixel_size_per_row(
                convention.shift_unit,
                table.columns,
                table.related.get("optics"),
                options,
                n,
                "write the shifts of",
            )
        factor = pixel if convention.shift_unit == PIXEL else unit_factor(convention.shift_unit, ANGSTROM)
        for axis, label in zip("xyz", convention.shift_labels, strict=False):
            if f"origin_{axis}" in table.columns:
                origin = np.asarray(table.columns[f"origin_{axis}"], dtype=np.float64)
                out[label] = convention.shift_sign * origin / factor
                written.add(f"origin_{axis}")

    if convention.defocus_labels and table.has("defocus_u", "defocus_v", "defocus_angle"):
        from_angstrom = 1 / unit_factor(convention.defocus_unit, ANGSTROM)
        u = np.asarray(table.columns["defocus_u"], dtype=np.float64) * from_angstrom
        v = np.asarray(table.columns["defocus_v"], dtype=np.float64) * from_angstrom
        angle = (
            np.asarray(table.columns["defocus_angle"], dtype=np.float64) - convention.astigmatism_angle_offset
        )
        angle = angle / unit_factor(convention.defocus_angle_unit, DEG)
        if convention.defocus_encoding == "DefocusMeanDifference":
            u, v = (u + v) / 2, convention.defocus_difference_sign * (u - v)
        for label, values in zip(convention.defocus_labels, (u, v, angle), strict=True):
            out[label] = values
        written.update({"defocus_u", "defocus_v", "defocus_angle"})

    if convention.tilt_alignment_labels and table.has("axis_rotation", "shift_x", "shift_y"):
        if table.layout.get("shift_pixels"):
            pixel_size = 1.0  # the shifts never left pixels
        elif options.pixel_size or table.metadata.pixel_size:
            pixel_size = float(options.pixel_size or table.metadata.pixel_size or 1.0)
        else:
            raise ConversionError(
                "the pixel size is needed to write the view shifts in pixels: pass --pixel-size"
            )
        out.update(_tilt_alignment_out(convention, table, pixel_size))
        written.update({"axis_rotation", "magnification", "shift_x", "shift_y"})

    unscalable: list[str] = []
    for rule in convention.rules:
        if rule.block is not None or rule.label in out:
            continue
        source = table.columns.get(rule.column)
        if source is None and (rule.per_row_optics or rule.column in {"pixel_size", "image_size"}):
            source = _optics_per_row(table, rule.column)
        if source is None:
            continue
        converted: npt.NDArray[np.generic] = _back(rule, source)
        skipped = False
        for other, invert in ((rule.scaled_by, np.divide), (rule.divided_by, np.multiply)):
            if other is None:
                continue
            if rule.divisor_written is not None:
                out[other] = np.full(n, rule.divisor_written)
                converted = invert(np.asarray(converted, dtype=np.float64), rule.divisor_written)
                continue
            scale = _scale_column(table, other, options, n)
            if scale is None:
                # Fractional positions need the micrograph size: without it they are left out, and said so.
                unscalable.append(f"{rule.column} (pass --micrograph-size NX NY to keep it)")
                skipped = True
                break
            converted = invert(np.asarray(converted, dtype=np.float64), scale)
            out.setdefault(other, scale)
        if skipped:
            continue
        out[rule.label] = converted
        written.add(rule.column)

    if convention.row_id_label and convention.row_id_label not in out:
        out[convention.row_id_label] = _row_identifiers(table)
    optics_block = _write_optics(table, convention, same)
    lost = set(table.columns) - written - {"optics_group"}
    loss = LossReport(columns=sorted(lost - {u.split(" ", 1)[0] for u in unscalable}) + unscalable)
    holds = {rule.column for rule in convention.rules}
    optics = table.related.get("optics")
    if optics is not None:
        loss.columns += [
            f"optics {name}" for name in sorted(optics.columns) if name not in holds | {"optics_group"}
        ]
    if "optics_group" in table.columns and any(
        r.column == "optics_group" for r in convention.rules if r.block is None
    ):
        rule = next(r for r in convention.rules if r.column == "optics_group" and r.block is None)
        out.setdefault(rule.label, _back(rule, table.columns["optics_group"]))
    if same:
        for label, extra in table.extras.items():
            out.setdefault(label, extra)
        order = [label for label in table.layout.get("labels", []) if label in out]
        out = {label: out[label] for label in [*order, *(label for label in out if label not in order)]}
    else:
        loss.extras = sorted(table.extras)

    blocks: dict[str, RawBlock] = {}
    if optics_block is not None:
        blocks[optics_block.name] = optics_block
    if same:
        for other in table.layout.get("other_blocks", []):
            blocks[other.name] = other
    main_name = str(table.layout.get("main_block", convention.main_block)) if same else convention.main_block
    blocks[main_name] = RawBlock(main_name, dict(out))
    version = convention.write_version
    fields: dict[str, str] = {}
    if same:
        version = str(table.layout.get("version") or "") or convention.write_version
        fields = dict(table.layout.get("fields", {}))
        order = [name for name in table.layout.get("block_order", []) if name in blocks]
        blocks = {name: blocks[name] for name in [*order, *(n for n in blocks if n not in order)]}
    return RawDocument(format_iri=convention.format_iri, blocks=blocks, fields=fields, version=version), loss


def _row_identifiers(table: Table) -> npt.NDArray[np.uint64]:
    """Deterministic 64-bit row identifiers (splitmix64 of the row number and the image names' hash)."""
    names = table.columns.get("image_name")
    seed = np.uint64(
        int.from_bytes(
            hashlib.sha256("\n".join(map(str, names[:1000] if names is not None else [])).encode()).digest()[
                :8
            ],
            "little",
        )
    )
    with np.errstate(over="ignore"):
        z = np.arange(table.n_rows, dtype=np.uint64) + seed
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _with_origin_scaled(table: Table, pixel_size: float) -> Table:
    """A copy of ``table`` whose pixel origins are turned into Å with ``pixel_size``."""
    columns = dict(table.columns)
    for axis in "xyz":
        if f"origin_{axis}" in columns:
            columns[f"origin_{axis}"] = np.asarray(columns[f"origin_{axis}"], dtype=np.float64) * pixel_size
    layout = {key: value for key, value in table.layout.items() if key != "origin_pixels"}
    return Table(
        kind=table.kind, columns=columns, extras=table.extras, metadata=table.metadata, related=table.related,
        source_format=table.source_format, source_convention=table.source_convention, layout=layout,
    )  # fmt: skip


def _scale_column(table: Table, label: str, options: ConversionOptions, n: int) -> FloatArray | None:
    if label in table.extras:
        return np.asarray(table.extras[label], dtype=np.float64)
    size = table.metadata.micrograph_size or options.micrograph_size
    if size is None:
        return None
    index = label.rsplit("[", 1)[-1].rstrip("]")
    # Fractional positions are scaled by the shape as the package stores it, [ny, nx].
    return np.full(n, float(size[1] if index == "0" else size[0]))


def _write_optics(table: Table, convention: Convention, same: bool) -> RawBlock | None:
    if not convention.optics_block:
        return None
    optics = table.related.get("optics")
    if optics is None:
        return None
    columns: dict[str, Column] = {}
    for rule in convention.rules:
        if (
            rule.block == convention.optics_block
            and rule.column in optics.columns
            and rule.label not in columns
        ):
            columns[rule.label] = _back(rule, optics.columns[rule.column])
    if "optics_group_name" not in optics.columns:
        name_rule = next(
            (
                r
                for r in convention.rules
                if r.block == convention.optics_block and r.column == "optics_group_name"
            ),
            None,
        )
        if name_rule is not None:
            groups = np.asarray(optics.columns["optics_group"])
            columns[name_rule.label] = np.array([f"opticsGroup{g}" for g in groups.tolist()])
    if same:
        extras = table.layout.get("optics_extras", {})
        for label, values in extras.items():
            columns.setdefault(label, values)
        order = [label for label in table.layout.get("optics_labels", []) if label in columns]
        columns = {
            label: columns[label] for label in [*order, *(label for label in columns if label not in order)]
        }
    return RawBlock(convention.optics_block, columns)
