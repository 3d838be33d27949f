"""What to tell a user when a file cannot be opened or read, worded once for every reader.

>>> read_failure("runs/x/log.jsonl", "log file", FileNotFoundError())
'runs/x/log.jsonl: no such log file'
>>> read_failure("specs", "spec file", IsADirectoryError())
'specs: is a folder, not a spec file'
"""

from __future__ import annotations

from pathlib import Path


def read_failure(path: str | Path, what: str, err: OSError) -> str:
    """The message for the ``OSError`` that opening or reading ``path`` (a ``what``) raised."""
    if isinstance(err, FileNotFoundError):
        return f"{path}: no such {what}"
    if isinstance(err, IsADirectoryError):
        return f"{path}: is a folder, not a {what}"
    if isinstance(err, PermissionError):
        return f"{path}: permission denied (cannot read the {what})"
    return f"{path}: cannot read the {what} ({err.strerror or err})"
