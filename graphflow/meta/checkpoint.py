"""Self-describing training checkpoints, written atomically and checked on load.

One ``.npz`` file: the arrays (``protocol/<name>``, ``optimizer/<name>``, ``init/<key>``) and a
JSON header (``__meta__``: graphflow version, experiment spec, learner spec, graph spec, training
state, and a SHA-256 checksum over the arrays *and* the rest of the header). It is written to a
temporary file in the same folder, synced and renamed into place, so that a crash leaves the
previous checkpoint intact. A checkpoint never holds a NaN or an infinity.

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
from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.io import DAMAGED_FILE_ERRORS, atomic_write, read_failure

META_KEY = "__meta__"
FORMAT = 2
"""Checkpoint format: 2 checksums the header too (format 1, before graphflow 0.2, only the arrays)."""


def _header_bytes(meta: dict) -> bytes:
    return json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False).encode()


def checksum(arrays: dict[str, np.ndarray], meta: dict | None = None) -> str:
    """SHA-256 over every array (name, dtype, shape, bytes) and, when given, the header without its checksum."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    if meta is not None:
        h.update(b"\0header\0" + _header_bytes(meta))
    return h.hexdigest()


def non_finite_arrays(arrays: dict[str, np.ndarray]) -> list[str]:
    """The names of the floating-point arrays holding a NaN or an infinity."""
    return [k for k, a in arrays.items() if np.issubdtype(np.asarray(a).dtype, np.inexact)
            and not np.all(np.isfinite(a))]


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` atomically to ``path``; refuses arrays holding NaN or inf."""
    path = Path(path)
    bad = non_finite_arrays(arrays)
    if bad:
        raise GraphflowError(f"{path}: not writing a checkpoint with non-finite values in {bad[0]}"
                             + (f" and {len(bad) - 1} more arrays" if len(bad) > 1 else ""))
    from graphflow import __version__

    header = dict(meta, graphflow_version=__version__, format=FORMAT)
    header["checksum"] = checksum(arrays, header)
    payload = {**arrays, META_KEY: np.array(json.dumps(header, allow_nan=False))}
    atomic_write(path, lambda f: np.savez(f, **payload), point="checkpoint-write")



def read_npz(path: Path, what: str, header_key: str) -> tuple[dict[str, np.ndarray], object]:
    """The arrays of an ``.npz`` file and its JSON header (parsed, any JSON value); clear errors on damage."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise GraphflowError(read_failure(path, what, err)) from None
    except DAMAGED_FILE_ERRORS as err:
        raise GraphflowError(f"{path}: unreadable {what} ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise GraphflowError(f"{path}: a single array (.npy), not a graphflow {what} (.npz)")
    try:
        with loaded as data:
            if header_key not in data.files:
                raise GraphflowError(f"{path}: not a graphflow {what} (no {header_key} header)")
            arrays = {k: data[k] for k in data.files if k != header_key}
            raw = data[header_key]
            if raw.shape != () or raw.dtype.kind != "U":
                raise GraphflowError(f"{path}: the {header_key} header is not a JSON text")
            header = json.loads(str(raw))
    except GraphflowError:
        raise
    except DAMAGED_FILE_ERRORS as err:  # truncated or corrupted: zip CRC errors, damaged fields
        raise GraphflowError(f"{path}: unreadable {what} ({type(err).__name__}: {err})") from None
    return arrays, header


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint; a clear error when it is missing, truncated or altered."""
    path = Path(path)
    arrays, meta = read_npz(path, "checkpoint", META_KEY)
    if not isinstance(meta, dict):
        raise GraphflowError(f"{path}: the checkpoint header is a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT:
        if "format" not in meta and meta.get("checksum") == checksum(arrays):
            raise GraphflowError(f"{path}: a checkpoint of an older graphflow whose header is not checksummed; "
                                 f"upgrade it with `python -m graphflow.meta.checkpoint upgrade {path}`")
        raise GraphflowError(f"{path}: unknown checkpoint format {meta.get('format')!r} (this graphflow reads {FORMAT})")
    if meta.get("checksum") != checksum(arrays, meta):
        raise GraphflowError(f"{path}: checksum mismatch: the file was altered or truncated")
    return arrays, meta


def upgrade_checkpoint(path: str | Path) -> None:
    """Rewrite a format-1 checkpoint (arrays checksummed, header not) in the current format.

    The arrays' checksum is verified first; the header is taken as it is, so run this only on
    checkpoints you trust.
    """
    path = Path(path)
    arrays, meta = read_npz(path, "checkpoint", META_KEY)
    if not isinstance(meta, dict) or meta.get("format") == FORMAT:
        raise GraphflowError(f"{path}: not a format-1 checkpoint")
    if meta.get("checksum") != checksum(arrays):
        raise GraphflowError(f"{path}: checksum mismatch: the file was altered or truncated")
    save_checkpoint(path, arrays, {k: v for k, v in meta.items() if k not in ("checksum", "graphflow_version")})


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "upgrade":
        print("usage: python -m graphflow.meta.checkpoint upgrade CHECKPOINT...")
        return 2
    for name in argv[1:]:
        try:
            upgrade_checkpoint(name)
        except GraphflowError as err:
            print(f"error: {err}")
            return 2
        print(f"{name}: upgraded to checkpoint format {FORMAT}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
