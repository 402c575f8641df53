"""An exclusive, advisory write lock on a project (``fcntl.flock``), released when its holder dies."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import ProjectLockedError

__all__ = ["STORE_LOCK", "WriteLock", "store_access"]


class WriteLock:
    """Held while a process may write the project's embedded store.

    The kernel drops a ``flock`` when its holder exits or is killed, so a crashed writer never leaves the
    project locked; the file's text only says who holds it, for the error message.
    """

    def __init__(self, path: Path, project: Path) -> None:
        self.path = path
        self.project = project
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ProjectLockedError(
                f"project {self.project} is already open for writing ({holder}); wait for that command to "
                "finish, or open the project read-only"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv[:3])}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


STORE_LOCK = "store.lock"


@contextmanager
def store_access(path: Path, *, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """A readers-writer lock around opening the embedded store (``flock`` on ``path``).

    RocksDB, under Oxigraph, does not support a read-only instance opened while a writer rewrites its
    files: the reader can meet compacted-away files and fail or misbehave. Writers hold this lock
    exclusively while the store is open (short: an ingest, one command); the viewer holds it shared for
    one request. ``timeout`` (seconds) bounds the wait; None waits as long as it takes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        if timeout is None:
            fcntl.flock(handle.fileno(), mode)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ProjectLockedError(
                            f"the store of {path.parent.parent} is being written (waited {timeout:g} s); "
                            "try again in a moment"
                        ) from None
                    time.sleep(0.02)
        yield
    finally:
        handle.close()  # closing the descriptor releases the flock
