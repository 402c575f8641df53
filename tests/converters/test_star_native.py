"""The native STAR kernels against Python's own rules: number parsing and formatting, typing, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters import star, star_native
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ParseError

from .star_paths import python_writer, reader_path

needs_kernels = pytest.mark.skipif(
    not star_native.available(), reason="the native STAR kernels are not built (pip install -e . builds them)"
)


def test_kernels_are_built_where_required() -> None:
    # CI sets SCIPION_KG_REQUIRE_NATIVE: there a missing compiler must fail, not fall back silently.
    if not os.environ.get("SCIPION_KG_REQUIRE_NATIVE"):
        pytest.skip("SCIPION_KG_REQUIRE_NATIVE is not set")
    assert star_native.available()


def loop(tokens: list[str], copies: int = 1) -> bytes:
    """A loop whose first column holds ``tokens`` (repeated), the second the row number."""
    rows = [f"{token} {index}" for index, token in enumerate(tokens * copies)]
    return ("data_t\nloop_\n_rlnA #1\n_rlnB #2\n" + "\n".join(rows) + "\n").encode("utf-8")


def read_both(data: bytes) -> tuple[Any, Any]:
    """Column A through the native kernels and through the exact tokenizer."""
    with reader_path(fast=True):
        native = star.parse(data).block("t").columns["rlnA"]
    with reader_path(fast=False):
        exact = star.parse(data).block("t").columns["rlnA"]
    return native, exact


@needs_kernels
@pytest.mark.parametrize(
    "tokens",
    [
        ["1", "-2", "007", "9223372036854775807"],  # int64, leading zeros
        ["1", "9223372036854775808"],  # beyond int64: floats, as numpy reads them
        ["+1", "2"],  # a plus sign: from_chars refuses it, numpy reads an integer
        ["1_000", "2"],  # Python's digit separator: numpy reads 1000
        ["1e5", ".5", "5.", "-.5e-3", "1E-2"],
        ["nan", "NaN", "-nan", "inf", "-Infinity", "INF"],
        ["nan(1)", "2"],  # from_chars reads nan(chars), float() does not: words
        ["0x10", "1"],  # hexadecimal is not a number in STAR
        ["1e", "2"],
        ["0.1000000000000000055511151231257827021181583404541015625", "2.2250738585072011e-308"],
        ["True", "False"],
        ["Movies/é.mrc", "x"],  # UTF-8 words
        ["'two words'", '"x y"'],  # quotes: the kernels hand the loop to the exact tokenizer
        ["a#b", "c"],  # a '#' inside a word is not a comment
    ],
)
def test_tokens_typed_as_the_exact_reader_types_them(tokens: list[str]) -> None:
    native, exact = read_both(loop(tokens, copies=3))
    assert native.dtype == exact.dtype, tokens
    if native.dtype.kind == "f":
        np.testing.assert_array_equal(native, exact)
        assert (np.signbit(native) == np.signbit(exact)).all()
    else:
        assert native.tolist() == exact.tolist()


@needs_kernels
@settings(max_examples=200, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=1, max_size=40),
    point=st.integers(0, 40),
    exponent=st.one_of(st.none(), st.integers(-330, 330)),
    negative=st.booleans(),
)
def test_decimal_parsing_is_correctly_rounded(
    digits: str, point: int, exponent: int | None, negative: bool
) -> None:
    point = min(point, len(digits))
    token = ("-" if negative else "") + digits[:point] + "." + digits[point:]
    if exponent is not None:
        token += f"e{exponent}"
    native, exact = read_both(loop([token, "0.5"]))
    assert native.dtype == np.float64
    assert native[0] == float(token) == exact[0]


@needs_kernels
@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(width=64), min_size=1, max_size=30))
def test_floats_are_written_as_python_repr(values: list[float]) -> None:
    document = RawDocument(star.FORMAT_IRI, {"t": RawBlock("t", {"x": np.array(values, dtype=np.float64)})})
    rows = star.to_string(document).split("_x #1\n")[1].split("\n")[:-1]
    assert [row.strip() for row in rows] == [repr(value) for value in values]


@needs_kernels
def test_bad_rows_in_a_large_loop_are_named_by_line() -> None:
    rows = [f"{index}.5 {index}" for index in range(20_000)]
    good = ("data_t\nloop_\n_rlnA #1\n_rlnB #2\n" + "\n".join(rows) + "\n").encode()
    assert star.parse(good).block("t").n_rows == 20_000
    # Row 12,345 is line 12,350 (four lines of header before the first row).
    too_many = good.replace(b"\n12345.5 12345\n", b"\n12345.5 12345 3\n")
    with pytest.raises(ParseError, match=r"^big.star: line 12350: expected 2 values .* found 3$"):
        star.parse(too_many, "big.star")
    not_utf8 = good.replace(b"\n12345.5 12345\n", b"\n\xff2345.5 12345\n")
    with pytest.raises(ParseError, match=r"^big.star: line 12350: .*UTF-8"):
        star.parse(not_utf8, "big.star")


@needs_kernels
def test_values_that_need_quotes_are_quoted_in_a_large_loop() -> None:
    rows = 60_000
    words = np.array(["plain"] * rows, dtype="<U9")
    words[[7, 59_999]] = ["two words", ""]
    names = np.array(["Movies/mic.mrc"] * rows, dtype="<U14")
    names[100] = "Movies/é.mrc"  # not ASCII: the column is padded by characters, like the others
    document = RawDocument(
        star.FORMAT_IRI,
        {"t": RawBlock("t", {"w": words, "n": names, "x": np.linspace(0, 1, rows), "i": np.arange(rows)})},
    )
    text = star.to_string(document)
    again = star.parse(text).block("t")
    assert again.columns["w"][[0, 7, 59_999]].tolist() == ["plain", "two words", ""]
    assert again.columns["n"][100] == "Movies/é.mrc"
    np.testing.assert_array_equal(again.columns["x"], np.linspace(0, 1, rows))
    assert again.columns["i"].tolist() == list(range(rows))
    assert '"two words"' in text and '""' in text


@needs_kernels
def test_a_large_loop_is_written_in_pieces_in_order(tmp_path: Path) -> None:
    rows = 120_003  # several pieces of unequal size
    rng = np.random.default_rng(5)
    columns = {
        "rlnAngleRot": rng.uniform(-180, 180, rows),
        "rlnClassNumber": rng.integers(1, 9, rows),
        "rlnImageName": np.char.add(np.arange(1, rows + 1).astype(str), "@Particles/stack.mrcs"),
    }
    document = RawDocument(star.FORMAT_IRI, {"particles": RawBlock("particles", columns)}, version="30001")
    pieces = list(star.to_chunks(document))
    assert len(pieces) > 3
    text = b"".join(pieces)
    star.write(document, tmp_path / "big.star")
    assert (tmp_path / "big.star").read_bytes() == text
    again = star.read(tmp_path / "big.star").block("particles")
    np.testing.assert_array_equal(again.columns["rlnAngleRot"], columns["rlnAngleRot"])
    assert again.columns["rlnClassNumber"].tolist() == columns["rlnClassNumber"].tolist()
    assert again.columns["rlnImageName"].tolist() == columns["rlnImageName"].tolist()
    # The same bytes as the arrow-based writer of an install without the kernels.
    with python_writer():
        assert star.format_star(document, star.RELION) == text


@needs_kernels
def test_each_block_of_rows_is_aligned_to_its_own_widest_values() -> None:
    # A long value in the second block widens that block's column only; both writers agree.
    block_rows = star_native.ALIGNED_ROWS
    values = np.full(block_rows + 10, 1.5)
    values[block_rows + 3] = -123456.25
    document = RawDocument(star.FORMAT_IRI, {"t": RawBlock("t", {"x": values, "i": np.arange(values.size)})})
    rows = star.to_string(document).split("_i #2\n")[1].split("\n")[:-1]
    assert rows[0] == "1.5    0"  # the first block's row numbers run to 4095
    assert rows[block_rows - 1] == f"1.5 {block_rows - 1}"
    assert rows[block_rows] == f"       1.5 {block_rows}"
    assert rows[block_rows + 3] == f"-123456.25 {block_rows + 3}"
    with python_writer():
        assert star.to_string(document).split("_i #2\n")[1].split("\n")[:-1] == rows


_TEXT_BYTES = st.sampled_from(
    ["1 2", "  3 4", "\t", "", "_rlnX", "# c", ";", "data_b", "loop_", "x data_", "\r"]
)


@needs_kernels
@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_TEXT_BYTES, min_size=1, max_size=12), blanks=st.sampled_from(["", " ", "\t\r", "\v"]))
def test_the_native_scan_ends_value_runs_where_the_pattern_does(lines: list[str], blanks: str) -> None:
    raw = ("1 2\n" + "\n".join(blanks + line for line in lines) + "\n").encode()
    native = star_native.scan_values(raw, 0, len(raw) // 2)
    assert native is not None
    match = star._REGION_END.search(raw, 0)
    end = match.start() if match else len(raw)
    assert (native.end, native.breaks) == (end, raw.count(b"\n", 0, end))
    if native.middle >= 0:
        assert raw[native.middle] == ord("\n") and len(raw) // 2 <= native.middle < end
        assert native.breaks_before_middle == raw.count(b"\n", 0, native.middle)
    else:
        assert raw.find(b"\n", len(raw) // 2, end) < 0
