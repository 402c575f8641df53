"""Streamed SHA-256 and the (path, size, mtime) cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scipion_kg.hashing as hashing
from scipion_kg.hashing import HashCache, hash_file


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3 * (1 << 20) // 2))
def test_streamed_hash_equals_hashlib(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("h") / "blob.bin"
    path.write_bytes(data)
    digest = hash_file(path)
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)


def test_cache_answers_without_reading_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stack.mrcs"
    path.write_bytes(os.urandom(3 << 20))
    cache = HashCache(tmp_path / "cache.sqlite")
    first = cache.digest(path)
    assert (cache.hits, cache.misses) == (0, 1)

    def no_reading(_: Path) -> str:
        raise AssertionError("the cached file was read again")

    monkeypatch.setattr(hashing, "_stream_sha256", no_reading)
    again = HashCache(tmp_path / "cache.sqlite").digest(path)  # a new process would see the same rows
    assert again == first


def test_cache_rehashes_when_size_or_mtime_change(tmp_path: Path) -> None:
    path = tmp_path / "map.mrc"
    path.write_bytes(b"a" * 100)
    cache = HashCache(tmp_path / "cache.sqlite")
    before = cache.digest(path)
    path.write_bytes(b"b" * 100)  # same size, new content and mtime
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = cache.digest(path)
    assert after.sha256 == hashlib.sha256(b"b" * 100).hexdigest() != before.sha256
    assert cache.misses == 2
    cache.digest(path)
    assert cache.hits == 1
