"""JSON-lines logs: one record a line, appended as they come, read back even after a crash.

A process killed while appending leaves a torn last line: :func:`read_records` drops it with a
warning (everything before it is intact), while a damaged line anywhere else is an error naming
the file and line. :func:`rewrite_records` replaces the whole log atomically.

>>> import tempfile
>>> from pathlib import Path
>>> log = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> append_record(log, {"step": 1})
>>> _ = log.open("a").write('{"step": 2, "meta')   # a kill in the middle of a line
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     read_records(log), "torn last line" in str(caught[0].message)
([{'step': 1}], True)
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from graphflow.errors import GraphflowError
from graphflow.io.atomic import atomic_write_text
from graphflow.io.faults import kill_point


def to_json_line(record: dict) -> str:
    """``record`` as one JSON line; NaN and infinities become null (JSON has none)."""
    return json.dumps(finite_or_none(record), allow_nan=False) + "\n"


def finite_or_none(value):
    """``value`` ready for JSON: every non-finite float replaced by None, through dicts, lists and
    tuples; arrays and array scalars (anything with ``tolist``: numpy, CuPy) become nested lists of
    Python numbers first.

    >>> import numpy as np
    >>> finite_or_none({"loss": [0.5, float("nan")], "curve": np.array([[1.5, np.inf]]), "n": np.int64(3)})
    {'loss': [0.5, None], 'curve': [[1.5, None]], 'n': 3}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if hasattr(value, "tolist"):  # this layer knows no array module: any array converts itself
        return finite_or_none(value.tolist())
    return value


def append_record(path: str | Path, record: dict) -> None:
    """Append ``record`` as one line and flush it to the disk."""
    line = to_json_line(record).encode()
    with open(path, "ab") as f:
        half = len(line) // 2
        f.write(line[:half])
        f.flush()
        kill_point("log-append")
        f.write(line[half:])
        f.flush()
        os.fsync(f.fileno())


def read_records(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """The records of a JSON-lines log, in order (a torn last line is dropped with a warning)."""
    return [rec for _, rec in numbered_records(path, missing_ok)]


def numbered_records(path: str | Path, missing_ok: bool = False) -> list[tuple[int, dict]]:
    """``(line number, record)`` of every record of a JSON-lines log (see :func:`read_records`)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if missing_ok:
            return []
        raise GraphflowError(f"{path}: no such log file") from None
    except UnicodeDecodeError:
        raise GraphflowError(f"{path}: not a text file (a log has one JSON object a line)") from None
    except OSError as err:
        raise GraphflowError(f"{path}: cannot read the log ({err.strerror or err})") from None
    lines = text.split("\n")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as err:
            if n == len(lines):  # no newline after it: the write was cut short
                warnings.warn(f"{path}:{n}: ignoring a torn last line (a write that did not finish)",
                              stacklevel=3)
                break
            raise GraphflowError(f"{path}:{n}: not a JSON line ({getattr(err, 'msg', err)})") from None
        if not isinstance(rec, dict):
            raise GraphflowError(f"{path}:{n}: not a JSON object (a log line is a record such as "
                                 f'{{"step": 1, "meta_loss": 0.1}})')
        records.append((n, rec))
    return records


def rewrite_records(path: str | Path, records: list[dict]) -> None:
    """Replace the log with ``records``, atomically (a kill leaves the old log or the new one)."""
    atomic_write_text(path, "".join(to_json_line(r) for r in records), point="log-rewrite")
