"""EMAN2 list files (``.lst``): the fast ``#LSX`` layout and the older ``#LST`` one.

Layout (cryoem/eman2 ``libpyEM/EMAN2.py`` [9025b12], class ``LSXFile``, and ``save_lst_params`` /
``load_lst_params``):

* ``#LSX`` files start with three lines: ``#LSX``, one whole-file comment line (``# ...``; ``#keys: a;b``
  in legacy files) and ``# <n>``, the length of every following line including its newline. Each record
  is ``<image number>\\t<image file>[\\t<metadata>]`` padded with blanks to that length. The image number is
  the 0-based index in the image file (``idx`` in ``load_lst_params``, the file is ``src``). The metadata is
  a JSON object written with ``json.dumps(sort_keys=True, separators=(',', ':'))``; EMAN2 objects in it
  are objects with a ``__class__`` member: a ``Transform`` is ``{"__class__":"Transform","matrix":[12
  numbers]}`` (``libpyEM/EMAN2jsondb.py`` ``transform_to_jsondict``), e.g. under ``xform.projection``.
* ``#LST`` files (converted to ``#LSX`` by EMAN2 on first write) have the ``#LST`` line, then records without
  padding.

Representation: block :data:`BLOCK`, one row per record, columns ``idx`` (int) and ``src`` (str) then the
metadata flattened: a JSON member is a column named by its key (``score``, ``class``), an object's members
are joined with ``/`` (``xform.projection/__class__``, EMAN2 keys contain dots but no slashes) and list
items get ``[i]`` (``xform.projection/matrix[0]`` .. ``[11]``). JSON numbers give ``int64``/``float64``
columns (``float64`` with NaN where a record lacks the key), strings ``str`` (``""`` where absent), booleans
0/1, null is absent. Integer columns that some records lack (``class``) become ``float64`` with NaN and
are listed, one per line, in ``fields["integer_columns"]``, so that the writer gives JSON integers back.
A metadata field that is not a JSON object (legacy ``Transform({...})`` text, a ``#keys:`` value list) is
kept verbatim in the column ``lst_comment``, EMAN2's own name for such text.
``version`` is ``"LSX"`` or ``"LST"``; ``fields["comment"]`` is the whole-file comment line(s) as written.

The writer gives the keys in column order (EMAN2 sorts its own; order does not matter to readers) and pads
every record to the length it announces.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, decode_text, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "FORMAT_IRI", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_EMAN2List"
BLOCK = "particles"

_COMMENT_COLUMN = "lst_comment"
_DEFAULT_COMMENT = "# written by scipion-kg: every line after the next has the length the next line gives"
_SEGMENT = re.compile(r"^(?P<key>[^\[]*)(?P<indices>(?:\[\d+\])*)$")
_MISSING = object()


def read(path: Path) -> RawDocument:
    """Read an EMAN2 ``.lst`` file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of an EMAN2 ``#LSX`` or ``#LST`` file."""
    text = decode_text(data, source)
    lines = text.split("\n")
    magic = lines[0].rstrip("\r")
    if magic not in ("#LSX", "#LST"):
        raise ParseError(f"{source}: line 1: expected '#LSX' or '#LST', found {magic[:20]!r}")
    version = magic[1:]
    comments: list[str] = []
    first = 1
    if version == "LSX":
        if len(lines) < 3 or not lines[2].startswith("#"):
            raise ParseError(
                f"{source}: line 3: an #LSX file needs a comment line then a '# <line length>' line"
            )
        try:
            int(lines[2][1:])
        except ValueError:
            raise ParseError(f"{source}: line 3: {lines[2][:30]!r} is not '# <line length>'") from None
        comments.append(lines[1].rstrip("\r"))
        first = 3
    else:
        while first < len(lines) and lines[first].startswith("#"):
            comments.append(lines[first].rstrip("\r"))
            first += 1
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines[first:], start=first + 1):
        record = line.strip()
        if not record:
            continue
        records.append(_record(record, source, number))
        numbers.append(number)
    columns, integers = _columns(records)
    block = RawBlock(BLOCK, columns, lines=np.array(numbers, dtype=np.int64))
    fields = {"comment": "\n".join(comments)} if comments else {}
    if integers:
        fields["integer_columns"] = "\n".join(integers)
    return RawDocument(FORMAT_IRI, {BLOCK: block}, fields=fields, version=version)


def _record(record: str, source: str, number: int) -> dict[str, Any]:
    parts = record.split("\t")
    if len(parts) not in (2, 3):
        raise ParseError(
            f"{source}: line {number}: {len(parts)} tab-separated fields; a record is "
            "'<image number><TAB><image file>[<TAB><metadata>]'"
        )
    try:
        flat: dict[str, Any] = {"idx": int(parts[0]), "src": parts[1]}
    except ValueError:
        raise ParseError(
            f"{source}: line {number}, column idx: {parts[0]!r} is not an image number"
        ) from None
    if len(parts) == 3 and parts[2].strip():
        metadata = parts[2].strip()
        if metadata.startswith("{"):
            try:
                value = json.loads(metadata)
            except json.JSONDecodeError as error:
                raise ParseError(
                    f"{source}: line {number}, column metadata: not valid JSON at character {error.pos + 1} "
                    f"({error.msg}); the file may be truncated"
                ) from None
            _flatten(value, "", flat)
        else:
            flat[_COMMENT_COLUMN] = metadata
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}/{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif value is not None:
        out[prefix] = int(value) if isinstance(value, bool) else value


def _columns(records: list[dict[str, Any]]) -> tuple[dict[str, Column], list[str]]:
    """The typed columns, and the integer columns that became float because some records lack them."""
    order: dict[str, None] = {"idx": None, "src": None}
    for record in records:
        order.update(dict.fromkeys(record))
    columns: dict[str, Column] = {}
    integers: list[str] = []
    for name in order:
        values = [record.get(name, _MISSING) for record in records]
        present = [value for value in values if value is not _MISSING]
        whole = bool(present) and all(isinstance(value, int) for value in present)
        if whole and len(present) == len(values):
            columns[name] = np.array(present, dtype=np.int64)
        elif present and all(isinstance(value, int | float) for value in present):
            columns[name] = np.array(
                [math.nan if v is _MISSING else float(v) for v in values], dtype=np.float64
            )
            if whole:
                integers.append(name)
        else:
            columns[name] = np.array(["" if v is _MISSING else str(v) for v in values], dtype=str)
    return columns, integers


def to_string(document: RawDocument) -> str:
    """The text of an EMAN2 list file (``#LSX`` unless the document came from an ``#LST`` file)."""
    if len(document.blocks) != 1:
        raise ConversionError(
            f"an EMAN2 list holds exactly one table; the document has {len(document.blocks)} "
            f"({', '.join(document.blocks) or 'none'})"
        )
    block = next(iter(document.blocks.values()))
    for name in ("idx", "src"):
        if name not in block.columns:
            raise ConversionError(f"an EMAN2 list needs the columns 'idx' and 'src'; {name!r} is missing")
    if block.columns["idx"].dtype.kind not in "iu":
        raise ConversionError(f"column 'idx': image numbers are integers, not {block.columns['idx'].dtype}")
    metadata = [name for name in block.columns if name not in ("idx", "src")]
    paths = _parse_paths(metadata)
    integers = set(document.fields.get("integer_columns", "").split("\n"))
    values = {name: _json_values(block.columns[name], name in integers) for name in block.columns}
    records = []
    for row in range(block.n_rows):
        source_file = str(values["src"][row])
        if "\t" in source_file or "\n" in source_file:
            raise ConversionError(f"{block.where(row)}: image file {source_file!r} contains a tab or newline")
        record = f"{values['idx'][row]}\t{source_file}"
        tail = _metadata(values, metadata, paths, row, block)
        records.append(record + ("\t" + tail if tail else ""))
    version = document.version if document.version in ("LSX", "LST") else "LSX"
    comment = document.fields.get("comment", _DEFAULT_COMMENT if version == "LSX" else "")
    if version == "LST":
        head = "#LST\n" + "".join(f"{line}\n" for line in comment.split("\n") if line)
        return head + "".join(f"{record}\n" for record in records)
    if "\n" in comment or not comment.startswith("#"):
        raise ConversionError("fields['comment'] of an #LSX file is one line starting with '#'")
    length = max((len(record) for record in records), default=0) + 1
    return f"#LSX\n{comment}\n# {length}\n" + "".join(f"{record:<{length - 1}}\n" for record in records)


def write(document: RawDocument, path: Path) -> None:
    """Write an EMAN2 list file, atomically."""
    atomic_write_bytes(path, to_string(document).encode("utf-8"))


def _json_values(column: Column, integer: bool) -> list[Any]:
    """Python values for JSON; an integer column kept as float (absent values are NaN) gives integers back."""
    values: list[Any] = column.tolist()
    if integer and column.dtype.kind == "f":
        return [value if math.isnan(value) or value != round(value) else int(value) for value in values]
    return values


def _parse_paths(names: list[str]) -> dict[str, list[tuple[str, list[int]]]]:
    """Column name -> its path: (key, list indices) per level (``a/b[2]`` -> [("a", []), ("b", [2])])."""
    paths = {}
    for name in names:
        if name == _COMMENT_COLUMN:
            continue
        levels = []
        for segment in name.split("/"):
            match = _SEGMENT.match(segment)
            if match is None or not match["key"]:
                raise ConversionError(f"column {name!r} is not a metadata path (key/key[i]...)")
            levels.append((match["key"], [int(i) for i in re.findall(r"\d+", match["indices"])]))
        paths[name] = levels
    return paths


def _metadata(
    values: dict[str, list[Any]],
    names: list[str],
    paths: dict[str, list[tuple[str, list[int]]]],
    row: int,
    block: RawBlock,
) -> str:
    tree: dict[str, Any] = {}
    comment = ""
    for name in names:
        value = values[name][row]
        if (isinstance(value, float) and math.isnan(value)) or value == "":
            continue
        if name == _COMMENT_COLUMN:
            comment = str(value)
            continue
        _insert(tree, paths[name], value, name)
    if comment and tree:
        raise ConversionError(
            f"{block.where(row)}: a record has either JSON metadata or an lst_comment, not both"
        )
    if comment:
        if "\t" in comment or "\n" in comment:
            raise ConversionError(f"{block.where(row)}: lst_comment contains a tab or newline")
        return comment
    return json.dumps(_lists(tree), separators=(",", ":")) if tree else ""


def _insert(tree: dict[str, Any], levels: list[tuple[str, list[int]]], value: Any, name: str) -> None:
    node: Any = tree
    steps: list[str | int] = []
    for key, indices in levels:
        steps.append(key)
        steps.extend(indices)
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        # Lists are built as {index: item} dicts and turned into lists at the end.
        if following is None:
            if step in node:
                raise ConversionError(f"column {name!r}: its path is also used by another column")
            node[step] = value
        else:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                raise ConversionError(f"column {name!r}: its path goes through another column's value")
            node = child


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(key, int) for key in node):
        if sorted(node) != list(range(len(node))):
            raise ConversionError(f"list items {sorted(node)} are not numbered 0..{len(node) - 1}")
        return [_lists(node[index]) for index in range(len(node))]
    return {key: _lists(item) for key, item in node.items()}
