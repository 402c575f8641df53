"""Xmipp metadata (.xmd): the STAR syntax of :mod:`scipion_kg.converters.star` with Xmipp's layout.

Xmipp 3 (I2PC/xmippCore ``core/metadata_vec.cpp`` [8c51212], ``MetaDataVec::write``) starts the file with
the line ``# XMIPP_STAR_1 *`` (``METADATA_XMIPP_STAR`` in ``core/xmipp_filename.h``, by which Xmipp
recognises the format), then the metadata comment as ``#`` lines, then per block ``data_<name>``,
``loop_`` and one `` _label`` line per column (no ``#N`` index, a leading blank) or, for a one-row block,
`` _label value`` pairs; no blank lines, no version line. Labels have no ``rln`` prefix (``_angleRot``,
``_shiftX``, ``_image``). Vector values are quoted with ``'`` (``' 1.0 2.0 3.0 '``); an empty ``loop_``
with no labels is a block with no table (corpus ``xmipp_ref_c1_exp_sampling.xmd``, ``data_neighbors``).

The marker line is not a version: ``RawDocument.version`` stays None, and the writer always puts the
marker first. Comment lines after the marker are ``fields["comment_1"]`` ...
"""

from __future__ import annotations

from pathlib import Path

from scipion_kg.converters.raw import RawDocument, read_with
from scipion_kg.converters.star import StarDialect, format_star, parse_star

from scipion_kg.atomic import atomic_write_bytes

__all__ = ["FORMAT_IRI", "MARKER", "XMIPP", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_XmippMetadata"
MARKER = "# XMIPP_STAR_1 *"
XMIPP = StarDialect(
    FORMAT_IRI,
    marker=MARKER,
    number_labels=False,
    version_lines=False,
    indent=" ",
    quote="'",
    blank_lines=False,
)


def read(path: Path) -> RawDocument:
    """Read an Xmipp metadata file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of an Xmipp metadata file."""
    return parse_star(data, source, XMIPP)


def to_string(document: RawDocument) -> str:
    """The text of ``document`` laid out as Xmipp writes metadata."""
    return format_star(document, XMIPP).decode("utf-8")


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` as an Xmipp metadata file, atomically."""
    atomic_write_bytes(path, format_star(document, XMIPP))
