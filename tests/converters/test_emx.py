"""EMX 1.0 XML: the real corpus files (Xmipp's EMX test files), round trips, hostile XML refused, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters import emx
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_same_documents

# (file, {block: (rows, {column: values per row})}, {unit key: unit}), read from the files by eye.
CASES: list[tuple[str, dict[str, tuple[int, dict[str, list[Any]]]], dict[str, str]]] = [
    (
        "xmipp_EMXread.emx",
        {
            "micrographs": (
                2,
                {
                    "fileName": ["mic", "mic"],
                    "index": [1, 2],
                    "acceleratingVoltage": [100.0, 200.0],
                    "defocusU": [1000.0, math.nan],
                    "pixelSpacing.X": [5.6, math.nan],
                    "defocusUAngle": [math.nan, 135.0],
                },
            ),
            "particles": (
                1,
                {
                    "fileName": ["parti"],
                    "boxSize.X": [11],
                    "boxSize.Y": [33],
                    "pixelSpacing.Y": [55.7],
                    "transformationMatrix.t11": [11.1],
                    "transformationMatrix.t24": [24.1],
                    "transformationMatrix.t34": [34.1],
                    "micrograph.fileName": ["mic"],
                    "micrograph.index": [1],
                },
            ),
        },
        {
            "micrographs/defocusU@unit": "nm",
            "micrographs/defocusUAngle@unit": "deg",
            "particles/boxSize.X@unit": "px",
            "particles/transformationMatrix.t14@unit": "A",
        },
    ),
    (
        "xmipp_EMXwrite.emx",
        {
            "micrographs": (2, {"index": [1, 2], "defocusU": [1000.0, 1000.0], "pixelSpacing.Y": [5.7, 5.7]}),
            "particles": (
                1,
                {
                    "fileName": ["part"],
                    "index": [1],
                    "defocusU": [1000.1],
                    "pixelSpacing.X": [5.66],
                    "transformationMatrix.t22": [22.0],
                    "transformationMatrix.t34": [34.0],
                    "micrograph.index": [2],
                },
            ),
        },
        {
            "micrographs/acceleratingVoltage@unit": "kV",
            "particles/pixelSpacing.X@unit": "A/px",
            "particles/transformationMatrix.t14@unit": "px",
        },
    ),
]


def corpus(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "emx" / name


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert_same_documents(left, right, rtol=1e-9, equal_nan=True, version=True)


@pytest.mark.parametrize(("name", "blocks", "units"), CASES, ids=[case[0] for case in CASES])
def test_real_file_values(
    shared_data: Path,
    name: str,
    blocks: dict[str, tuple[int, dict[str, list[Any]]]],
    units: dict[str, str],
) -> None:
    document = emx.read(corpus(shared_data, name))
    assert document.format_iri == emx.FORMAT_IRI
    assert document.version == "1.0"
    assert list(document.blocks) == list(blocks)
    for block_name, (rows, columns) in blocks.items():
        block = document.block(block_name)
        assert block.n_rows == rows
        assert list(block.columns)[:2] == ["fileName", "index"]
        assert block.columns["index"].dtype == np.int64
        for label, expected in columns.items():
            np.testing.assert_array_equal(block.columns[label], np.array(expected), err_msg=label)
    for key, unit in units.items():
        assert document.fields[key] == unit
    assert emx.unit_key("micrographs", "defocusU") == "micrographs/defocusU@unit"


def test_column_order_and_lines(shared_data: Path) -> None:
    document = emx.read(corpus(shared_data, "xmipp_EMXwrite.emx"))
    particles = document.block("particles")
    matrix = [f"transformationMatrix.t{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3, 4)]
    assert list(particles.columns) == [
        "fileName",
        "index",
        "defocusU",
        "pixelSpacing.X",
        "pixelSpacing.Y",
        *matrix,
        "micrograph.fileName",
        "micrograph.index",
    ]
    assert particles.line_of(0) == 33
    micrographs = document.block("micrographs")
    assert (micrographs.line_of(0), micrographs.line_of(1)) == (17, 25)


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_round_trip(shared_data: Path, tmp_path: Path, name: str) -> None:
    document = emx.read(corpus(shared_data, name))
    text = emx.to_string(document)
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<EMX version=\"1.0\">\n")
    assert_same(document, emx.parse(text))
    target = tmp_path / name
    emx.write(document, target)
    assert_same(document, emx.read(target))


def test_writer_nests_paths_and_units() -> None:
    columns = {
        "fileName": np.array(["stack.mrcs", "stack.mrcs"]),
        "index": np.array([1, 2]),
        "centerCoord.X": np.array([100.5, math.nan]),
        "defocusU": np.array([1500.0, 1600.25]),
        "micrograph.fileName": np.array(["mic1.mrc", ""]),
    }
    document = RawDocument(
        emx.FORMAT_IRI,
        {"particles": RawBlock("particles", columns)},
        fields={"particles/defocusU@unit": "nm", "particles/centerCoord.X@unit": "px"},
        version="1.0",
    )
    text = emx.to_string(document)
    assert '<particle fileName="stack.mrcs" index="1">' in text
    assert '<centerCoord>\n      <X unit="px">100.5</X>\n    </centerCoord>' in text
    assert '<defocusU unit="nm">1600.25</defocusU>' in text
    assert '<micrograph fileName="mic1.mrc"/>' in text
    assert text.count("<centerCoord>") == 1  # absent in the second particle
    assert_same(document, emx.parse(text))


# Hostile XML: every variant must be refused before any entity is expanded or any file is read.
XXE = """<?xml version="1.0"?>
<!DOCTYPE EMX [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<EMX version="1.0"><micrograph fileName="&xxe;" index="1"/></EMX>
"""
LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE EMX [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<EMX version="1.0"><micrograph fileName="&lol3;" index="1"/></EMX>
"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE EMX SYSTEM "http://example.org/emx.dtd">
<EMX version="1.0"/>
"""


@pytest.mark.parametrize("text", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
def test_hostile_xml_is_refused(text: str) -> None:
    with pytest.raises(ParseError, match=r"evil\.emx: line 2: refused: DTDForbidden"):
        emx.parse(text, source="evil.emx")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '<EMX version="1.0">\n<micrograph fileName="m" index="1">\n<defocusU unit="nm">10',
            r"line 3: not well-formed XML",
        ),
        (
            '<EMX version="1.0">\n<micrograph fileName="m" index="1">\n<defocusU>1O00</defocusU>\n'
            "</micrograph>\n</EMX>",
            r"line 3: element defocusU: '1O00' is not a number",
        ),
        (
            '<EMX version="1.0">\n<particle fileName="p" index="one"/>\n</EMX>',
            r"line 2: attribute index: 'one' is not an integer index",
        ),
        (
            '<EMX version="1.0">\n<particle fileName="p" index="1">\n<defocusU>1</defocusU>\n'
            "<defocusU>2</defocusU>\n</particle>\n</EMX>",
            r"line 4: particles: defocusU is given twice in one element",
        ),
        (
            '<EMX version="1.0">\n<particle fileName="p" index="1"><defocusU unit="nm">1</defocusU>'
            '</particle>\n<particle fileName="p" index="2"><defocusU unit="um">1</defocusU></particle>'
            "\n</EMX>",
            r"line 3: element defocusU: unit 'um', but line 2 gives 'nm' for it",
        ),
        ("<STAR/>", r"line 1: the root element is <STAR>, expected <EMX>"),
        ("", r"line 1: not well-formed XML"),
    ],
    ids=["truncated", "non-numeric", "bad-index", "repeated-field", "mixed-units", "wrong-root", "empty"],
)
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=rf"bad\.emx: {message}"):
        emx.parse(text, source="bad.emx")


def test_writer_errors() -> None:
    block = RawBlock("particles", {"index": np.array([1]), "defocusU": np.array(["far"])})
    with pytest.raises(ConversionError, match="column 'defocusU': EMX element values are numbers"):
        emx.to_string(RawDocument(emx.FORMAT_IRI, {"particles": block}))
    with pytest.raises(ConversionError, match="EMX blocks are named by their element plus 's'"):
        emx.to_string(RawDocument(emx.FORMAT_IRI, {"2d": RawBlock("2d", {})}))
