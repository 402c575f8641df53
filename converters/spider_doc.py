"""SPIDER document files: keyed lines of registers, with ``;`` comment lines.

Layout (spider-em/SPIDER ``docs/docfile.html`` [10600af], "Document Files"): lines with ``;`` in the second
column are comments or *comment keys*; the first comment is a header naming the project/data extension,
date, time and file (`` ;tst/tst   16-JUN-1999 AT 13:03:18   jnkdoc001.tst``). Every other line is
``key nreg v1 .. v_nreg``: since SPIDER 11.0 (2004) the fields are separated by at least one blank; the
older format was fixed (Fortran ``I6,I1,9G12.3``), where a 6-digit key touches its register count
(``9999996`` is key 999999 with 6 registers). Keys may repeat and lines may have different register counts.
A comment line can itself be a keyed line (`` ;-88 2 -88.000 -88.000``): SPIDER's comment keys.

SPIDER procedures often write a comment naming the registers just before the data, e.g.
`` ;KEY     PSI,    THE,    PHI,  REF#,  EXP#,  CUM.{ROT,  SX,    SY},  NPROJ, ...`` (corpus
``spider_doc/spider_apsh_ali_doc.dat``, written by ``AP SH``).

Representation:

* block :data:`BLOCK` holds the keyed lines: columns ``key`` and ``nreg`` (int) then one column per register,
  named from the last comment before the first keyed line whose words (split on blanks and commas, a
  leading ``KEY`` dropped, ``CUM.{ROT, SX, SY}`` expanded to ``CUM.ROT CUM.SX CUM.SY``, none of them a
  number) are as many as the registers; otherwise ``col_1`` ... Repeated names get ``_2``, ``_3``.
  Lines with fewer registers than the widest line have NaN in the missing registers; ``nreg`` says how many
  are real.
* block :data:`COMMENT_KEYS_BLOCK`, when the file has comment keys, holds them the same way (names from the
  comment just before the first of them).
* ``fields["title"]`` is the header comment (the text after ``;``); other comments that are neither names
  nor comment keys are ``fields["comment_1"]``, ``fields["comment_2"]`` ..., in file order.

The writer puts the title, the other comments, a names comment, the keyed lines, then the comment keys
(after their own names comment), in SPIDER's new (blank-separated) format with numbers in their shortest
exact form.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, decode_text, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "COMMENT_KEYS_BLOCK", "FORMAT_IRI", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_SPIDERDocument"
BLOCK = "doc"
COMMENT_KEYS_BLOCK = "comment_keys"

_TITLE = re.compile(r"\d{1,2}-[A-Z]{3}-\d{2,4}\s+AT\s+\d{1,2}:\d{2}")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?$")


@dataclass
class _Rows:
    keys: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    values: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def read(path: Path) -> RawDocument:
    """Read a SPIDER document file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a SPIDER document file."""
    text = decode_text(data, source)
    doc, comment_keys = _Rows(), _Rows()
    comments: list[tuple[int, str]] = []  # (line, text after ';') of comments that are not comment keys
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(";"):
            body = stripped[1:]
            keyed = _keyed(body, body)
            if keyed is None:
                comments.append((number, body))
            else:
                _append(comment_keys, keyed, number)
            continue
        keyed = _keyed(stripped, line.rstrip("\r\n"))
        if keyed is None:
            raise ParseError(f"{source}: line {number}: {_why_not_keyed(stripped)}")
        _append(doc, keyed, number)

    fields: dict[str, str] = {}
    used: set[int] = set()
    first_doc = doc.lines[0] if doc.lines else math.inf
    if comments and comments[0][0] < first_doc and _TITLE.search(comments[0][1]):
        fields["title"] = comments[0][1]
        used.add(comments[0][0])
    blocks = {BLOCK: _block(BLOCK, doc, _names(comments, used, doc, first_doc))}
    if comment_keys.lines:
        names = _names(comments, used, comment_keys, comment_keys.lines[0])
        blocks[COMMENT_KEYS_BLOCK] = _block(COMMENT_KEYS_BLOCK, comment_keys, names)
    free = [body for line, body in comments if line not in used]
    fields.update({f"comment_{index}": body for index, body in enumerate(free, start=1)})
    return RawDocument(FORMAT_IRI, blocks, fields=fields)


def _keyed(stripped: str, raw: str) -> tuple[int, int, list[str]] | None:
    """``(key, nreg, registers)`` of a keyed line (new or old fixed format); None if it is not one."""
    tokens = stripped.split()
    if len(tokens) >= 2 and _is_int(tokens[0]) and _is_int(tokens[1]):
        registers = tokens[2:]
        if int(tokens[1]) == len(registers) and all(_NUMBER.match(value) for value in registers):
            return int(tokens[0]), len(registers), _normalised(registers)
    # Pre-11.0 layout: key in columns 1-6, register count in column 7.
    head, count = raw[:6], raw[6:7]
    if _is_int(head.strip()) and count.isdigit():
        registers = raw[7:].split()
        if int(count) == len(registers) and all(_NUMBER.match(value) for value in registers):
            return int(head), len(registers), _normalised(registers)
    return None


def _normalised(registers: list[str]) -> list[str]:
    """Fortran may write ``1.0D+03``: numpy reads ``1.0E+03``."""
    return [value.replace("D", "E").replace("d", "e") for value in registers]


def _why_not_keyed(stripped: str) -> str:
    tokens = stripped.split()
    if len(tokens) < 2 or not _is_int(tokens[0]) or not _is_int(tokens[1]):
        return f"expected 'key nreg value ...' (two integers first), found {stripped[:40]!r}"
    registers = tokens[2:]
    for position, value in enumerate(registers, start=1):
        if not _NUMBER.match(value):
            return f"register {position}: {value!r} is not a number"
    return (
        f"key {tokens[0]} declares {tokens[1]} registers but the line has {len(registers)}; "
        "the file may be truncated"
    )


def _is_int(token: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\d+", token))


def _append(rows: _Rows, keyed: tuple[int, int, list[str]], line: int) -> None:
    rows.keys.append(keyed[0])
    rows.counts.append(keyed[1])
    rows.values.append(keyed[2])
    rows.lines.append(line)


def _words(body: str) -> list[str]:
    """Register names in a comment: split on blanks and commas, ``KEY`` dropped, ``P.{A, B}`` expanded."""
    words = [word for word in re.split(r"[\s,]+", body.strip()) if word]
    if words and words[0].upper().rstrip("#") == "KEY":
        words = words[1:]
    names: list[str] = []
    prefix = None
    for word in words:
        if prefix is None and "{" in word:
            prefix, _, word = word.partition("{")
        if prefix is not None:
            closing = word.endswith("}")
            names.append(prefix + word.rstrip("}"))
            if closing:
                prefix = None
        else:
            names.append(word)
    return names


def _names(comments: list[tuple[int, str]], used: set[int], rows: _Rows, before: float) -> list[str]:
    width = max(rows.counts, default=0)
    for line, body in reversed(comments):
        if line > before or line in used:
            continue
        words = _words(body)
        if len(words) == width and width and not any(_NUMBER.match(word) for word in words):
            used.add(line)
            return _unique(words)
    return [f"col_{i}" for i in range(1, width + 1)]


def _unique(words: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for word in words:
        seen[word] = seen.get(word, 0) + 1
        unique.append(word if seen[word] == 1 else f"{word}_{seen[word]}")
    return unique


def _block(name: str, rows: _Rows, registers: list[str]) -> RawBlock:
    columns: dict[str, Column] = {
        "key": np.array(rows.keys, dtype=np.int64),
        "nreg": np.array(rows.counts, dtype=np.int64),
    }
    for index, label in enumerate(registers):
        if all(count > index for count in rows.counts):
            columns[label] = infer_column([values[index] for values in rows.values])
        else:
            # Shorter lines: the registers they lack are NaN (nreg tells which are real).
            columns[label] = np.array(
                [float(values[index]) if len(values) > index else math.nan for values in rows.values]
            )
    return RawBlock(name, columns, lines=np.array(rows.lines, dtype=np.int64))


def to_string(document: RawDocument) -> str:
    """The text of a SPIDER document file (new, blank-separated format)."""
    unknown = set(document.blocks) - {BLOCK, COMMENT_KEYS_BLOCK}
    if unknown:
        raise ConversionError(
            f"a SPIDER document holds the blocks {BLOCK!r} and {COMMENT_KEYS_BLOCK!r}, not {sorted(unknown)}"
        )
    out: list[str] = []
    if "title" in document.fields:
        out.append(f" ;{document.fields['title']}\n")
    comments = sorted(
        (int(key.removeprefix("comment_")), value)
        for key, value in document.fields.items()
        if key.startswith("comment_") and key.removeprefix("comment_").isdigit()
    )
    out.extend(f" ;{value}\n" for _, value in comments)
    if BLOCK in document.blocks:
        out.extend(_block_lines(document.blocks[BLOCK], comment=False))
    if COMMENT_KEYS_BLOCK in document.blocks:
        out.extend(_block_lines(document.blocks[COMMENT_KEYS_BLOCK], comment=True))
    return "".join(out)


def write(document: RawDocument, path: Path) -> None:
    """Write a SPIDER document file, atomically."""
    atomic_write_bytes(path, to_string(document).encode("utf-8"))


def _block_lines(block: RawBlock, comment: bool) -> list[str]:
    registers = [label for label in block.columns if label not in ("key", "nreg")]
    for label in registers:
        if block.columns[label].dtype.kind not in "iuf":
            raise ConversionError(f"block {block.name!r}, column {label!r}: SPIDER registers are numbers")
        if not label or re.search(r"[\s,;{}]", label):
            raise ConversionError(
                f"block {block.name!r}: register name {label!r} cannot be written in a comment"
            )
    n_rows = block.n_rows
    keys = block.columns.get("key", np.arange(1, n_rows + 1))
    counts = block.columns.get("nreg", np.full(n_rows, len(registers)))
    lead = " ;" if comment else ""
    lines = []
    if registers:
        lines.append(" ; KEY " + " ".join(f"{label:>11}" for label in registers) + "\n")
    text = [_format_column(block.columns[label]) for label in registers]
    for row in range(n_rows):
        count = int(counts[row])
        if count > len(registers):
            raise ConversionError(
                f"block {block.name!r}, {block.where(row)}: nreg is {count} but there are {len(registers)} "
                "registers"
            )
        values = "".join(f" {text[column][row]:>11}" for column in range(count))
        lines.append(f"{lead}{int(keys[row]):>5d} {count:d}{values}\n")
    return lines


def _format_column(values: Column) -> list[str]:
    if values.dtype.kind in "iu":
        return [str(value) for value in values.tolist()]
    return [repr(value) for value in values.astype(np.float64).tolist()]
