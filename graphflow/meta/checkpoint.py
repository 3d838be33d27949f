"""Self-describing training checkpoints, written atomically and checked on load.

One ``.npz`` file: the arrays (``protocol/<name>``, ``optimizer/<name>``, ``init/<key>``) and a
JSON header (``__meta__``: graphflow version, experiment spec, learner spec, graph spec, training
state, and a SHA-256 checksum over the arrays). It is written to a temporary file in the same
folder, flushed and renamed into place, so that a crash leaves the previous checkpoint intact.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "c.npz"
>>> save_checkpoint(path, {"protocol/a": np.ones(2, np.float32)}, {"step": 3})
>>> arrays, meta = load_checkpoint(path)
>>> meta["step"], arrays["protocol/a"].tolist()
(3, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError

META_KEY = "__meta__"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from graphflow import __version__

    header = dict(meta, graphflow_version=__version__, checksum=checksum(arrays))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{META_KEY: np.array(json.dumps(header))})
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint; a clear error when it is missing, truncated or altered."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != META_KEY}
            if META_KEY not in data.files:
                raise GraphflowError(f"{path}: not a graphflow checkpoint (no {META_KEY} header)")
            meta = json.loads(str(data[META_KEY]))
    except FileNotFoundError:
        raise GraphflowError(f"{path}: no such checkpoint") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # truncated or corrupted: zip CRC errors
        raise GraphflowError(f"{path}: unreadable checkpoint ({err})") from None
    if meta.get("checksum") != checksum(arrays):
        raise GraphflowError(f"{path}: checksum mismatch: the file was altered or truncated")
    return arrays, meta
