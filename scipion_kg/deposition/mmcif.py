"""The deposition model as PDBx/mmCIF text, and its validation against the PDBx dictionary.

Rendering: one data block named after the entry id, an ``_entry.id`` (the parent of every ``entry_id``),
then every category of the model in name order with its items in name order; a category of one row is
written as item-value pairs, longer ones as a loop. Integers are written without a decimal point, floats
in positional notation with the fewest digits that read back exactly, booleans as YES/NO (the PDBx
spelling of ``*_applied`` flags), absent items of a row as ``?``; strings are quoted by gemmi.

Validation uses gemmi's DDL2 validator. gemmi reports value errors (enumeration, type, regular
expression) with a line number and counts only those as failures; it also prints unknown tags and
missing mandatory items and category keys. :func:`mmcif_report` returns as errors the value errors,
unknown tags and (unless ``require_mandatory=False``) missing mandatory items and keys; unknown tags of
items newer than the dictionary are returned apart, as notes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from gemmi import cif

from ..errors import DepositionError
from .model import Deposition, FieldValue

__all__ = ["NEWER_ITEMS", "mmcif_report", "render_mmcif", "validate_mmcif"]

# Items and categories EMDB's XML schema 3.0.11 added after PDBx dictionary v5.362 (the one OneDep
# tools and Debian ship); a dictionary of that version reports them as unknown tags.
NEWER_ITEMS = (
    "_em_motion_correction.",
    "_em_imaging.objective_aperture",
    "_em_imaging.microscope_serial_number",
    "_em_imaging.microscope_version",
)

_WRITE_OPTIONS = cif.WriteOptions()
_WRITE_OPTIONS.prefer_pairs = True
_WRITE_OPTIONS.align_pairs = 33
_WRITE_OPTIONS.align_loops = 30

_UNKNOWN_TAG = re.compile(r"unknown tag (_\S+)|category not in the dictionary: (\S+)")
_SOURCE = "<mmCIF>"
_VALUE_ERROR = re.compile(re.escape(_SOURCE) + r":(\d+) (\[[^\]]*\] )(.*)", re.DOTALL)


def _cif_value(value: FieldValue | None, where: str) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DepositionError(f"{where} is {value}; mmCIF needs a finite number")
        if value.is_integer():
            return str(int(value))
        return np.format_float_positional(value, unique=True, trim="-")
    text = str(value)
    if not text.strip():
        return "?"
    return str(cif.quote(text))


def _block_name(entry_id: str) -> str:
    name = re.sub(r"\s+", "_", entry_id.strip())
    return name or "entry"


def render_mmcif(deposition: Deposition) -> str:
    """``deposition`` as mmCIF text (deterministic: same model, same bytes)."""
    document = cif.Document()
    block = document.add_new_block(_block_name(deposition.entry_id))
    if "entry" not in deposition.categories:
        block.set_pair("_entry.id", _cif_value(deposition.entry_id, "_entry.id"))
    for category in sorted(deposition.categories):
        rows = deposition.categories[category]
        if not rows:
            continue
        items = sorted({item for row in rows for item in row})
        columns: dict[str, list[str]] = {}
        for item in items:
            columns[item] = [
                _cif_value(row[item].value if item in row else None, f"_{category}.{item} (row {index + 1})")
                for index, row in enumerate(rows)
            ]
        block.set_mmcif_category(f"_{category}.", columns, raw=True)
    return str(document.as_string(_WRITE_OPTIONS))


def _is_newer(tag: str) -> bool:
    lowered = tag.lower()
    return any(lowered == item or (item.endswith(".") and lowered.startswith(item)) for item in NEWER_ITEMS)


def mmcif_report(
    text: str, dictionary: Path, *, source: str = "mmCIF", require_mandatory: bool = True
) -> tuple[list[str], list[str]]:
    """(errors, notes) of ``text`` against the PDBx ``dictionary`` (a .dic or .dic.gz file).

    ``notes`` are the unknown tags of items newer than the dictionary (:data:`NEWER_ITEMS`).
    ``require_mandatory=False`` gives gemmi's own verdict: missing mandatory items and category keys
    are then not errors. ``source`` names the text in the messages.
    """
    try:
        document = cif.read_string(text)
    except (ValueError, RuntimeError) as error:
        raise DepositionError(f"{source} is not valid CIF syntax: {error}") from error
    try:
        dictionary_document = cif.read(str(dictionary))
    except (ValueError, RuntimeError, OSError) as error:
        raise DepositionError(
            f"the PDBx dictionary {dictionary} cannot be read ({error}); give an mmcif_pdbx .dic or .dic.gz"
        ) from error
    document.source = _SOURCE
    messages: list[str] = []
    validator = cif.Ddl(
        logger=messages.append,
        print_unknown_tags=True,
        use_regex=True,
        use_context=False,
        use_linked_groups=False,
        use_mandatory=True,
        use_unique_keys=True,
    )
    validator.read_ddl(dictionary_document)
    validator.validate_cif(document)
    errors: list[str] = []
    notes: list[str] = []
    lines = text.splitlines()
    for message in messages:
        shown = _readable(message, lines, source)
        unknown = _UNKNOWN_TAG.search(message)
        if unknown is not None:
            tag = unknown.group(1) or f"_{unknown.group(2)}."
            (notes if _is_newer(tag) else errors).append(shown)
        elif _VALUE_ERROR.match(message):
            errors.append(shown)  # a value error (enumeration, type, regular expression, range)
        elif require_mandatory:
            errors.append(shown)  # missing mandatory item or category key, duplicated key
    return errors, notes


def _readable(message: str, lines: list[str], source: str) -> str:
    """One line per message; a value error of a single item also names the item (gemmi omits it)."""
    found = _VALUE_ERROR.match(message)
    if found is None:
        return " ".join(message.split())
    line_number, block, detail = int(found.group(1)), found.group(2), found.group(3)
    detail = re.sub(r"\s*\n\s*", ", ", detail.strip()).replace(":,", ":")
    if not detail.startswith("_") and 0 < line_number <= len(lines):
        words = lines[line_number - 1].split()
        if words and words[0].startswith("_"):
            detail = f"{words[0]}: {detail}"
    return f"{source}:{line_number} {block}{detail}"


def validate_mmcif(text: str, dictionary: Path) -> list[str]:
    """The errors of ``text`` against the PDBx ``dictionary`` (see :func:`mmcif_report`)."""
    return mmcif_report(text, dictionary)[0]
