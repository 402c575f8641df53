"""``index@path`` image locators written by the vectorised path equal numpy.char's zero-padded joins."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters.mapping import _join_locators


def _expected(indices: list[int], names: list[str], width: int) -> list[str]:
    pairs = zip(indices, names, strict=True)
    return [f"{index:0{width}d}@{name}" if index > 0 else name for index, name in pairs]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**7), st.text(st.characters(blacklist_characters="\x00"), max_size=12)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 8),
)
def test_locators_equal_the_formatted_strings(rows: list[tuple[int, str]], width: int) -> None:
    indices = [index for index, _ in rows]
    names = [name for _, name in rows]
    joined = _join_locators(np.array(indices), np.array(names, dtype=str), width)
    if width == 0:
        assert joined.tolist() == [f"{i}@{n}" if i > 0 else n for i, n in rows]
    else:
        assert joined.tolist() == _expected(indices, names, width)
