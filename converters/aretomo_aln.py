"""AreTomo alignment files (.aln): header comments, the global alignment table and local alignments.

Layout, from AreTomo's writer (czimaginginstitute/AreTomo3 ``AreTomo/MrcUtil/CSaveAlignFile.cpp``
[b58f844]) and teamtomo/alnfile ``src/alnfile/reader.py`` [31950e3]:

    # AreTomo Alignment / Priims bprmMn
    # RawSize = 4096 4096 61                       "# %s = %d %d %d"
    # NumPatches = 0                               "# %s = %d"
    # DarkFrame =     0    0   -68.00              "# %s =  %4d %4d %8.2f", one per dark image
    # AlphaOffset =    -7.00                       "# %s = %8.2f"
    # BetaOffset =     0.00
    # Thickness = 2050                             "# %s = %d"
    # SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
        1   -95.4040    1.00000      9.220    103.933     1.00  ...  "%5d  %9.4f  %9.5f  %9.3f  %9.3f
                                                              %7.2f  %7.2f  %7.2f  %7.2f  %8.2f"
    # Local Alignment
       0   0 -1537.16  -1363.14     -6.93    -36.22   1.0   "%4d %3d %8.2f  %8.2f  %8.2f  %8.2f  %4.1f"

The document holds: ``fields`` ``title`` (the first comment line without ``# ``) and every other
``# Key = Value`` header line in file order (values as written, stripped); block ``global`` with the
columns of the ``# SEC ...`` header line; block ``dark_frames`` (``dark_idx``, ``sec_idx``, ``tilt``:
AreTomo's GetDarkIdx, GetDarkSec, GetDarkTilt) when the file lists dark images; block ``local`` (the
unlabelled local-alignment rows, named as alnfile names them: ``sec_idx``, ``patch_idx``, ``center_x``,
``center_y``, ``shift_x``, ``shift_y``, ``is_reliable``) when present. Writing keeps AreTomo's column
widths and decimals, adding decimals only where the values carry more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["DARK_COLUMNS", "FORMAT_IRI", "LOCAL_COLUMNS", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_AreTomoAlignment"

DARK_COLUMNS = ("dark_idx", "sec_idx", "tilt")
LOCAL_COLUMNS = ("sec_idx", "patch_idx", "center_x", "center_y", "shift_x", "shift_y", "is_reliable")

# label -> (separator before, width, least decimals, most decimals); decimals 0 = integer column.
_GLOBAL_LAYOUT = {
    "SEC": ("", 5, 0, 0),
    "ROT": ("  ", 9, 4, 8),
    "GMAG": ("  ", 9, 5, 8),
    "TX": ("  ", 9, 3, 6),
    "TY": ("  ", 9, 3, 6),
    "SMEAN": ("  ", 7, 2, 6),
    "SFIT": ("  ", 7, 2, 6),
    "SCALE": ("  ", 7, 2, 6),
    "BASE": ("  ", 7, 2, 6),
    "TILT": ("  ", 8, 2, 6),
}
_OTHER_LAYOUT = ("  ", 9, 2, 8)
_LOCAL_LAYOUT = [
    ("", 4, 0, 0),
    (" ", 3, 0, 0),
    (" ", 8, 2, 6),
    ("  ", 8, 2, 6),
    ("  ", 8, 2, 6),
    ("  ", 8, 2, 6),
    ("  ", 4, 1, 6),
]
_DARK_LAYOUT = [("  ", 4, 0, 0), (" ", 4, 0, 0), (" ", 8, 2, 6)]
_GLOBAL_HEADER = (
    "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"
)
_PADDED = {"AlphaOffset": 8, "BetaOffset": 8}  # "%8.2f" values
_LOCAL_MARK = "Local Alignment"


def read(path: Path) -> RawDocument:
    """Read an AreTomo .aln file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of an .aln file."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    fields: dict[str, str] = {}
    tables: dict[str, tuple[list[str], list[list[str]], list[int]]] = {}
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comment = stripped[1:].strip()
            if comment.split()[:1] == ["SEC"]:
                section = "global"
                tables["global"] = (comment.split(), [], [])
            elif comment.startswith(_LOCAL_MARK):
                section = "local"
                tables["local"] = (list(LOCAL_COLUMNS), [], [])
            elif section is not None:
                raise ParseError(f"{source}: line {number}: unexpected comment {stripped!r} inside a table")
            elif "=" in comment:
                key, value = (part.strip() for part in comment.split("=", 1))
                if key == "DarkFrame":
                    _add_row(
                        tables.setdefault("dark_frames", (list(DARK_COLUMNS), [], [])), value, number, source
                    )
                elif key in fields:
                    raise ParseError(f"{source}: line {number}: header field {key} given twice")
                else:
                    fields[key] = value
            elif not fields:
                fields["title"] = comment
            else:
                raise ParseError(f"{source}: line {number}: expected '# Key = Value', found {stripped!r}")
            continue
        if section is None:
            raise ParseError(f"{source}: line {number}: data before the '# SEC ROT ...' header line")
        _add_row(tables[section], stripped, number, source)
    if "global" not in tables:
        raise ParseError(
            f"{source}: no '# SEC ROT GMAG TX TY ...' header line (truncated or not an .aln file)"
        )
    blocks: dict[str, RawBlock] = {}
    for name in ("dark_frames", "global", "local"):
        if name in tables:
            labels, rows, lines = tables[name]
            columns = {label: infer_column([row[i] for row in rows]) for i, label in enumerate(labels)}
            blocks[name] = RawBlock(name, columns, np.asarray(lines, dtype=np.int64))
    return RawDocument(FORMAT_IRI, blocks, fields)


def _add_row(
    table: tuple[list[str], list[list[str]], list[int]], text: str, number: int, source: str
) -> None:
    labels, rows, lines = table
    tokens = text.split()
    if len(tokens) != len(labels):
        raise ParseError(
            f"{source}: line {number}: expected {len(labels)} values ({' '.join(labels)}), "
            f"found {len(tokens)}"
        )
    for label, token in zip(labels, tokens, strict=True):
        try:
            float(token)
        except ValueError:
            raise ParseError(f"{source}: line {number}, column {label}: {token!r} is not a number") from None
    rows.append(tokens)
    lines.append(number)


def to_string(document: RawDocument) -> str:
    """The text of an .aln file in AreTomo's layout."""
    name = str(document.source) if document.source is not None else "document"
    if "global" not in document.blocks:
        raise ConversionError(f"{name}: no block 'global' to write")
    out = [f"# {document.fields.get('title', 'AreTomo Alignment / Priims bprmMn')}"]
    dark = document.blocks.get("dark_frames")
    dark_lines = _rows(dark, list(DARK_COLUMNS), _DARK_LAYOUT, name) if dark is not None else []
    for key, value in document.fields.items():
        if key == "title":
            continue
        if dark_lines and key not in ("RawSize", "NumPatches"):
            out += [f"# DarkFrame ={line}" for line in dark_lines]
            dark_lines = []
        out.append(f"# {key} = {value.rjust(_PADDED.get(key, 0))}")
    out += [f"# DarkFrame ={line}" for line in dark_lines]
    block = document.blocks["global"]
    labels = list(block.columns)
    if labels == list(_GLOBAL_LAYOUT):
        out.append(_GLOBAL_HEADER)
    else:
        out.append("# " + " ".join(labels))
    out += _rows(block, labels, [_GLOBAL_LAYOUT.get(label, _OTHER_LAYOUT) for label in labels], name)
    local = document.blocks.get("local")
    if local is not None:
        out.append(f"# {_LOCAL_MARK}")
        out += _rows(local, list(LOCAL_COLUMNS), _LOCAL_LAYOUT, name)
    return "\n".join(out) + "\n"


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` to ``path`` atomically."""
    atomic_write_bytes(Path(path), to_string(document).encode())


def _rows(
    block: RawBlock, labels: list[str], layout: list[tuple[str, int, int, int]], name: str
) -> list[str]:
    missing = [label for label in labels if label not in block.columns]
    if missing:
        raise ConversionError(f"{name}: block {block.name!r} lacks column(s) {', '.join(missing)}")
    cells = [
        _cells(
            block.columns[label], separator, width, least, most, f"{name}: block {block.name}, column {label}"
        )
        for label, (separator, width, least, most) in zip(labels, layout, strict=True)
    ]
    return ["".join(row) for row in zip(*cells, strict=True)]


def _cells(values: Column, separator: str, width: int, least: int, most: int, where: str) -> list[str]:
    if values.size == 0:
        return []
    if values.dtype.kind in "iu":
        texts = [f"{int(value):{width}d}" for value in values]
    elif values.dtype.kind == "f":
        digits = least if least else 1
        finite = [float(value) for value in values if np.isfinite(value)]
        while digits < most and not all(float(f"{value:.{digits}f}") == value for value in finite):
            digits += 1
        texts = [f"{float(value):{width}.{digits}f}" for value in values]
    else:
        raise ConversionError(f"{where}: text values cannot be written to an .aln file")
    # A value wider than its field still needs a blank before it.
    return [separator + text if separator or text.startswith(" ") else " " + text for text in texts]
