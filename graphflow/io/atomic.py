"""Atomic file replacement: write a temporary file in the same folder, sync it, rename it into place.

A crash at any moment leaves either the old file or the new one, never a mixture; the temporary
files a kill leaves behind are named ``<name>.<random>.tmp`` and removed by
:func:`remove_temporaries` when the folder is next used.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "a.txt"
>>> atomic_write_text(path, "one")
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('one', ['a.txt'])
"""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from graphflow.io.faults import kill_point

TEMPORARY_SUFFIX = ".tmp"

DAMAGED_FILE_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                       NotImplementedError, OverflowError, MemoryError, RecursionError, UnicodeDecodeError,
                       struct.error, zipfile.BadZipFile, zlib.error)
"""What zipfile and numpy's readers raise on a damaged ``.npz``: truncated archives, bad CRCs (a
flipped byte), unknown compression methods and sizes in damaged zip fields, bad array headers."""


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], point: str | None = None) -> None:
    """Replace ``path`` with what ``write(file)`` writes, atomically and durably.

    ``point`` names a :func:`~graphflow.io.faults.kill_point` between the synced temporary file
    and the rename (for the kill tests).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; these are ordinary files
        if point:
            kill_point(point)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)


def atomic_write_text(path: str | Path, text: str, point: str | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8), atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), point)


def remove_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that killed writers of ``names`` left in ``folder``; the paths removed."""
    folder = Path(folder)
    removed = []
    for name in names:
        for tmp in folder.glob(f"{name}.*{TEMPORARY_SUFFIX}"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed
