"""Streamed SHA-256 of files, cached by (path, size, mtime) so a 10 GB stack is read once.

The cache is a small SQLite database: several processes (Luigi workers, the viewer) may share it, and a
stale row can never be returned because the key includes the file's size and modification time in ns.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileDigest", "HashCache", "hash_bytes", "hash_file"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What identifies a file's content: its SHA-256 and size in bytes."""

    sha256: str
    size: int


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stream_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


class HashCache:
    """SHA-256 cache keyed by (absolute path, size, mtime_ns); ``hits``/``misses`` count its use."""

    def __init__(self, database: Path | None) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(database, timeout=30, check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
            # A lost cache row costs one re-hash, so commits need not wait for the disk.
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
                " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
            )
            self._connection.commit()

    def digest(self, path: Path) -> FileDigest:
        """Hash ``path`` unless the cache holds a digest for the same path, size and mtime."""
        resolved = path.resolve()
        stat = resolved.stat()
        key = str(resolved)
        if self._connection is not None:
            with self._lock:
                row = self._connection.execute(
                    "SELECT sha256 FROM digests WHERE path = ? AND size = ? AND mtime_ns = ?",
                    (key, stat.st_size, stat.st_mtime_ns),
                ).fetchone()
            if row is not None:
                self.hits += 1
                return FileDigest(row[0], stat.st_size)
        self.misses += 1
        sha = _stream_sha256(resolved)
        # The file may have changed while it was read: only cache what was stable throughout.
        after = resolved.stat()
        if self._connection is not None and (after.st_size, after.st_mtime_ns) == (
            stat.st_size,
            stat.st_mtime_ns,
        ):
            with self._lock:
                self._connection.execute(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)",
                    (key, stat.st_size, stat.st_mtime_ns, sha),
                )
                self._connection.commit()
        return FileDigest(sha, stat.st_size)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def hash_file(path: str | os.PathLike[str], cache: HashCache | None = None) -> FileDigest:
    """SHA-256 and size of a file, through ``cache`` when given."""
    return (cache or HashCache(None)).digest(Path(path))
