"""cryoSPARC ``.cs`` files: one NumPy structured array saved with ``np.save``, read and written, no pickle.

Facts used (from the files themselves and the formats' documentation):

* A ``.cs`` file is a version 1.0 (or 2.0) ``.npy`` file (NumPy NEP 1, "A simple file format for NumPy
  arrays"): the magic ``\\x93NUMPY``, two version bytes, a little-endian header length, an ASCII dict
  ``{'descr': ..., 'fortran_order': False, 'shape': (n,), }`` padded with spaces and ending in ``\\n``, then
  the rows. The dtype is a structured one whose field names are cryoSPARC's ("uid", "blob/path",
  "alignments3D/pose", ...; cryosparc-tools documentation, Dataset).
* Real files (corpus ``cryosparc_cs/``, written by cryoSPARC and cryosparc-tools) store ``uid`` and
  ``*/import_sig``, ``*_uid`` as ``<u8``, counters and indices as ``<u4``, every real number as ``<f4``, text
  as fixed-width bytes (``|S61`` paths, ``|S9`` ``ctf/type``) and vectors as sub-arrays (``blob/shape`` 2 x
  ``<u4``, ``alignments3D/pose`` 3 x ``<f4``, ``ctf/tetra_A`` 4 x ``<f4``). Older NumPy padded the header to a
  multiple of 16 bytes, newer NumPy to 64 bytes with room to grow, so the header length is kept to rewrite
  an unchanged file byte for byte.

Representation: one block, :data:`BLOCK` (``"particles"``, whatever the items are: the file does not say),
with one column per scalar field and ``k`` columns ``"field[0]" .. "field[k-1]"`` per field of ``k``
elements (``"field[i,j]"`` for 2-D sub-arrays, C order).
Real numbers become ``float64``, signed and 32-bit unsigned integers ``int64``, text ``str``;
**64-bit unsigned fields (uid) stay ``uint64``**, as their values do not fit ``int64``. The original dtype
is kept in ``fields["numpy_descr"]`` (the header's ``descr``, a Python literal) and the header length in
``fields["npy_header_length"]``: :func:`to_bytes` restores both, so an unchanged document is written back
byte for byte. Columns a document gained (or a document built from scratch) get cryoSPARC's types:
``<u8`` for names ending in ``uid`` or ``import_sig``, ``<u4`` for other non-negative integers below 2**32,
``<i8`` for other integers, ``<f4`` for real numbers and ``|S<longest + 1>`` for text (as cryoSPARC sizes
``ctf/type`` "imported" ``|S9``).

Object arrays (whose loading needs pickle) are refused with a :class:`ParseError`; nothing here ever calls
``np.load(allow_pickle=True)``.
"""

from __future__ import annotations

import ast
import io
import re
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipion_kg.converters.parallel import in_two_threads
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "FORMAT_IRI", "parse", "read", "to_bytes", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_CryoSPARCCS"
BLOCK = "particles"

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 24  # the header of a 4-class refinement is ~4 kB; refuse absurd ones
_ELEMENT = re.compile(r"^(?P<field>.+)\[(?P<index>\d+(?:,\d+)*)\]$")
_U8_SUFFIXES = ("uid", "import_sig")


def read(path: Path) -> RawDocument:
    """Read a ``.cs`` file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the bytes of a ``.cs`` file (a structured ``.npy`` array)."""
    if isinstance(data, str):
        raise ParseError(f"{source}: a cryoSPARC .cs file is binary; pass its bytes, not text")
    if not data.startswith(_MAGIC):
        raise ParseError(f"{source}: not a NumPy .npy file (no \\x93NUMPY magic at byte 0)")
    stream = io.BytesIO(data)
    try:
        major, minor = np.lib.format.read_magic(stream)
        if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {major}.{minor}")
        if (major, minor) == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=_MAX_HEADER)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=_MAX_HEADER)
    except (ValueError, SyntaxError, struct.error, EOFError) as error:
        raise ParseError(f"{source}: byte 0: the .npy header is damaged or truncated ({error})") from None
    offset = stream.tell()
    if dtype.hasobject:
        raise ParseError(
            f"{source}: the array holds Python objects (dtype {dtype}); loading it would need pickle, "
            "which is refused: re-save the dataset with fixed-width string fields"
        )
    if dtype.names is None:
        raise ParseError(f"{source}: the .npy array is not a structured (named-field) array: dtype {dtype}")
    if len(shape) != 1:
        raise ParseError(f"{source}: a .cs dataset is 1-D, this array has shape {shape}")
    n_rows = shape[0]
    needed = offset + n_rows * dtype.itemsize
    if len(data) < needed:
        complete = (len(data) - offset) // dtype.itemsize if dtype.itemsize else n_rows
        raise ParseError(
            f"{source}: truncated: the header announces {n_rows} rows of {dtype.itemsize} bytes "
            f"({needed} bytes in all) but the file has {len(data)} bytes; row {complete + 1} is incomplete"
        )
    if len(data) > needed:
        raise ParseError(f"{source}: {len(data) - needed} bytes after the last of the {n_rows} rows")
    array = np.frombuffer(data, dtype=dtype, count=n_rows, offset=offset)
    # (label, strided values, dtype) of every column; sub-arrays give one column per element.
    pieces: list[tuple[str, npt.NDArray[np.generic], np.dtype[np.generic]]] = []
    for name in dtype.names:
        field_dtype = dtype.fields[name][0] if dtype.fields else dtype
        values = array[name]
        if field_dtype.subdtype is None:
            pieces.append((name, values, field_dtype))
            continue
        base, sub_shape = field_dtype.subdtype
        flat = values.reshape(n_rows, int(np.prod(sub_shape)))
        for position, index in enumerate(np.ndindex(*sub_shape)):
            pieces.append((f"{name}[{','.join(str(i) for i in index)}]", flat[:, position], base))
    converted = in_two_threads(lambda piece: _to_column(piece[1], piece[2], source, piece[0]), pieces, n_rows)
    block = RawBlock(BLOCK, {label: values for (label, _, _), values in zip(pieces, converted, strict=True)})
    fields = {
        "numpy_descr": repr(np.lib.format.dtype_to_descr(dtype)),
        "npy_header_length": str(offset),
    }
    return RawDocument(FORMAT_IRI, {BLOCK: block}, fields=fields, version=f"{major}.{minor}")


def _to_column(
    values: npt.NDArray[np.generic], dtype: np.dtype[np.generic], source: str, label: str
) -> Column:
    kind = dtype.kind
    if kind == "f":
        return values.astype(np.float64)
    if kind in "ib" or (kind == "u" and dtype.itemsize < 8):
        return values.astype(np.int64)
    if kind == "u":
        return values.astype(np.uint64)
    if kind == "S":
        ascii_text = _widen_ascii(values)
        if ascii_text is not None:
            return ascii_text
        try:
            return values.astype(str)
        except UnicodeDecodeError:
            return np.char.decode(values.astype(np.bytes_), "utf-8", errors="replace")
    if kind == "U":
        return values.astype(str)
    raise ParseError(f"{source}: field {label!r}: dtype {dtype} is not supported in a .cs dataset")


def _widen_ascii(values: npt.NDArray[np.generic]) -> Column | None:
    """Fixed-width ASCII bytes as text (the same characters, 1 byte to 4 each); None if not ASCII."""
    width = values.dtype.itemsize
    raw = np.ascontiguousarray(values).view(np.uint8)
    if width == 0 or (raw.size and raw.max() >= 0x80):
        return None
    text: Column = raw.astype(np.uint32).view(f"<U{width}").reshape(values.shape)
    return text


def to_bytes(document: RawDocument) -> bytes:
    """The ``.npy`` bytes of the document's single block (original dtype and header kept when known)."""
    return b"".join(to_chunks(document))


def to_chunks(document: RawDocument) -> list[bytes | memoryview]:
    """The ``.npy`` bytes as two pieces, the header and the rows (the rows are not copied again)."""
    if len(document.blocks) != 1:
        raise ConversionError(
            f"a cryoSPARC .cs file holds exactly one table; the document has {len(document.blocks)} "
            f"({', '.join(document.blocks) or 'none'})"
        )
    block = next(iter(document.blocks.values()))
    original = _original_dtype(document)
    groups = _group_columns(block)
    # Text is encoded once, up front: its byte width decides the field's dtype.
    columns = {label: _encode_text(values) for label, values in block.columns.items()}
    field_dtypes: list[tuple[str, np.dtype[np.generic]]] = []
    for name, labels, sub_shape in groups:
        values = [columns[label] for label in labels]
        field_dtypes.append((name, _field_dtype(name, values, sub_shape, original)))
    dtype = np.dtype(field_dtypes)
    # Every byte of a packed dtype is written below; only padding (a kept original layout) needs zeros.
    packed = dtype.itemsize == sum(int(dtype[name].itemsize) for name in dtype.names or ())
    array = (np.empty if packed else np.zeros)(block.n_rows, dtype=dtype)
    # (strided destination, label, element dtype) of every column; the fields are disjoint bytes of the rows.
    targets: list[tuple[npt.NDArray[np.generic], str, np.dtype[np.generic]]] = []
    for (name, labels, sub_shape), (_, field_dtype) in zip(groups, field_dtypes, strict=True):
        base = field_dtype.subdtype[0] if field_dtype.subdtype else field_dtype
        if not sub_shape:
            targets.append((array[name], labels[0], base))
            continue
        destination = array[name].reshape(block.n_rows, int(np.prod(sub_shape)))
        targets.extend((destination[:, position], label, base) for position, label in enumerate(labels))

    def fill(target: tuple[npt.NDArray[np.generic], str, np.dtype[np.generic]]) -> None:
        destination, label, base = target
        destination[...] = _cast(columns[label], base, label)

    in_two_threads(fill, targets, block.n_rows)
    return [_header(dtype, block.n_rows, document), array.view(np.uint8).data]


def write(document: RawDocument, path: Path) -> None:
    """Write the document as a ``.cs`` file, atomically."""
    atomic_write_bytes(path, to_chunks(document))


def _original_dtype(document: RawDocument) -> dict[str, np.dtype[np.generic]]:
    text = document.fields.get("numpy_descr")
    if not text:
        return {}
    try:
        dtype = np.lib.format.descr_to_dtype(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError) as error:
        raise ConversionError(f"fields['numpy_descr'] is not a NumPy dtype description: {error}") from None
    return {name: dtype.fields[name][0] for name in dtype.names or ()} if dtype.fields else {}


def _group_columns(block: RawBlock) -> list[tuple[str, list[str], tuple[int, ...]]]:
    """Columns grouped into fields: (field name, its column labels in C order, sub-array shape)."""
    order: list[str] = []
    members: dict[str, dict[tuple[int, ...], str]] = {}
    for label in block.columns:
        match = _ELEMENT.match(label)
        index: tuple[int, ...] = ()
        if match is None:
            field = label
        else:
            field, index = match["field"], tuple(int(i) for i in match["index"].split(","))
        if field not in members:
            order.append(field)
            members[field] = {}
        elif () in members[field] or not index:
            raise ConversionError(f"column {label!r}: field {field!r} is both a scalar and a vector")
        members[field][index] = label
    groups: list[tuple[str, list[str], tuple[int, ...]]] = []
    for field in order:
        indices = members[field]
        if () in indices:
            groups.append((field, [indices[()]], ()))
            continue
        ranks = {len(index) for index in indices}
        if len(ranks) != 1:
            raise ConversionError(f"field {field!r}: its columns mix index ranks {sorted(ranks)}")
        shape = tuple(max(index[d] for index in indices) + 1 for d in range(ranks.pop()))
        expected = list(np.ndindex(*shape))
        missing = [index for index in expected if index not in indices]
        if missing:
            label = f"{field}[{','.join(str(i) for i in missing[0])}]"
            raise ConversionError(f"field {field!r}: column {label!r} is missing")
        groups.append((field, [indices[index] for index in expected], shape))
    return groups


def _field_dtype(
    name: str,
    values: list[Column],
    sub_shape: tuple[int, ...],
    original: dict[str, np.dtype[np.generic]],
) -> np.dtype[np.generic]:
    known = original.get(name)
    if known is not None and (known.subdtype[1] if known.subdtype else ()) == sub_shape:
        base = known.subdtype[0] if known.subdtype else known
        if base.kind == "S":
            # Text may have grown since the file was read: widen rather than truncate.
            base = np.dtype(f"S{max([base.itemsize] + [column.dtype.itemsize for column in values])}")
        return np.dtype((base, sub_shape)) if sub_shape else base
    base = _new_dtype(name, values)
    return np.dtype((base, sub_shape)) if sub_shape else base


def _new_dtype(name: str, values: list[Column]) -> np.dtype[np.generic]:
    kinds = {column.dtype.kind for column in values}
    if "S" in kinds:
        # cryoSPARC sizes text fields one byte longer than the longest value ("imported" is |S9).
        return np.dtype(f"S{max(column.dtype.itemsize for column in values) + 1}")
    if kinds <= {"i", "u", "b"}:
        if name.endswith(_U8_SUFFIXES):
            return np.dtype("<u8")
        low = min((int(column.min()) for column in values if len(column)), default=0)
        high = max((int(column.max()) for column in values if len(column)), default=0)
        if low >= 0:
            return np.dtype("<u4") if high < 2**32 else np.dtype("<u8")
        return np.dtype("<i8")
    return np.dtype("<f4")


def _encode_text(values: Column) -> Column:
    """Text columns as UTF-8 bytes (a plain cast when the text is ASCII, the usual case)."""
    if values.dtype.kind not in "UO":
        return values
    text = values.astype(str, copy=False)
    chars = max(1, text.dtype.itemsize // 4)
    code_points = np.ascontiguousarray(text).view(np.uint32)
    if code_points.size == 0 or code_points.max() < 0x80:
        # ASCII: "U" and "S" hold the same characters, 4 bytes and 1 byte each (numpy's cast: ~10x slower).
        return code_points.astype(np.uint8).view(f"S{chars}").reshape(text.shape)
    return np.char.encode(text, "utf-8")


def _cast(values: Column, dtype: np.dtype[np.generic], label: str) -> npt.NDArray[np.generic]:
    if dtype.kind == "S":
        if values.dtype.kind != "S":
            raise ConversionError(f"column {label!r}: numbers cannot be stored in the text field {dtype}")
        return values
    if values.dtype.kind == "S":
        raise ConversionError(f"column {label!r}: text values cannot be stored in a {dtype} field")
    if dtype.kind in "iu" and len(values):
        numbers = np.asarray(values, dtype=np.float64) if values.dtype.kind == "f" else None
        if numbers is not None and not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
            raise ConversionError(f"column {label!r}: non-integer values cannot be stored in a {dtype} field")
        info = np.iinfo(dtype.str)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            raise ConversionError(f"column {label!r}: values {low}..{high} do not fit a {dtype} field")
    cast: npt.NDArray[np.generic] = values.astype(dtype)
    return cast


def _header(dtype: np.dtype[np.generic], n_rows: int, document: RawDocument) -> bytes:
    """The .npy header, padded to the original length when it still fits (byte-identical rewrite)."""
    text = (
        "{'descr': "
        + repr(np.lib.format.dtype_to_descr(dtype))
        + ", 'fortran_order': False, 'shape': "
        + repr((n_rows,))
        + ", }"
    ).encode("latin-1")
    kept = document.fields.get("npy_header_length", "")
    version = document.version if document.version in ("1.0", "2.0") else None
    if kept.isdigit() and version is not None:
        prefix = 10 if version == "1.0" else 12
        room = int(kept) - prefix - len(text) - 1
        if room >= 0 and (version == "2.0" or int(kept) - prefix < 65536):
            return _assemble(text + b" " * room + b"\n", version)
    # NumPy's current layout: room for the row count to grow, then 1 to 64 spaces to end on a multiple of 64.
    text += b" " * (21 - len(repr(n_rows)))
    version = "1.0" if len(text) + 1 + 64 < 65536 else "2.0"
    prefix = 10 if version == "1.0" else 12
    padding = 64 - (prefix + len(text) + 1) % 64
    return _assemble(text + b" " * padding + b"\n", version)


def _assemble(header: bytes, version: str) -> bytes:
    if version == "1.0":
        return _MAGIC + b"\x01\x00" + struct.pack("<H", len(header)) + header
    return _MAGIC + b"\x02\x00" + struct.pack("<I", len(header)) + header
