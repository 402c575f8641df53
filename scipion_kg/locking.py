"""An exclusive, advisory write lock on a project (``fcntl.flock``), released when its holder dies."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import ProjectLockedError

__all__ = ["WriteLock"]


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
