"""Comparisons of raw documents shared by the syntax-module tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipion_kg.converters.raw import RawDocument


def assert_close(actual: Any, expected: Any, **options: Any) -> None:
    """np.testing.assert_allclose on float64 views (raw columns are typed as generic arrays)."""
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), **options
    )


def assert_same_documents(
    left: RawDocument, right: RawDocument, *, rtol: float, equal_nan: bool = False, version: bool = False
) -> None:
    """Same blocks, fields, labels in order and dtypes; floats within ``rtol``, everything else equal."""
    assert list(left.blocks) == list(right.blocks)
    assert left.fields == right.fields
    if version:
        assert left.version == right.version
    for name, block in left.blocks.items():
        other = right.blocks[name]
        assert list(block.columns) == list(other.columns), name
        for label, values in block.columns.items():
            assert values.dtype == other.columns[label].dtype, label
            if values.dtype.kind == "f":
                assert_close(other.columns[label], values, rtol=rtol, equal_nan=equal_nan)
            else:
                np.testing.assert_array_equal(other.columns[label], values, err_msg=label)
