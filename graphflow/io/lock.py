"""An exclusive lock on a folder, so that two processes never write one run.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with FolderLock(folder):
...     try:
...         FolderLock(folder).acquire()
...     except Exception as err:
...         print(type(err).__name__, "in use by pid" in str(err))
GraphflowError True
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from graphflow.errors import GraphflowError

LOCK_NAME = ".lock"


class FolderLock:
    """``flock`` on ``<folder>/.lock`` holding the owner's pid; released (and the file removed) on exit.

    The operating system drops the lock when its process dies, so a killed run never leaves its
    folder locked.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise GraphflowError(f"{self.folder}: cannot lock the folder ({err.strerror})") from None
                raise GraphflowError(f"{self.folder} is in use by pid {self._owner()}") from None
            try:  # the holder before us may have removed the file after we opened it: lock the file there now
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _owner(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
