"""Checkpoints are written atomically and verified on load: any damage is a clear GraphflowError."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from graphflow.errors import GraphflowError
from graphflow.meta import checkpoint as ckpt
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint

ARRAYS = {"protocol/a": np.arange(500, dtype=np.float32), "optimizer/t": np.asarray(3)}


def test_round_trip_keeps_arrays_and_header(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, {"step": 7, "rng": {"state": 1}})
    arrays, meta = load_checkpoint(path)
    assert meta["step"] == 7 and meta["rng"] == {"state": 1} and "graphflow_version" in meta
    assert set(arrays) == set(ARRAYS) and np.array_equal(arrays["protocol/a"], ARRAYS["protocol/a"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, {"step": 1})
    data = path.read_bytes()
    for keep in (len(data) // 2, 10, 0):
        path.write_bytes(data[:keep])
        with pytest.raises(GraphflowError, match=f"{path.name}: unreadable checkpoint"):
            load_checkpoint(path)


def test_flipped_byte_in_the_data_is_a_clear_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, {"step": 1})
    data = bytearray(path.read_bytes())
    data[data.find(ARRAYS["protocol/a"][300:302].tobytes())] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(GraphflowError, match="unreadable checkpoint.*CRC"):
        load_checkpoint(path)


def test_altered_arrays_fail_the_checksum(tmp_path):
    """A well-formed file whose arrays no longer match the header's checksum."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, {"step": 1})
    with np.load(path) as data:
        header = data[ckpt.META_KEY]
    altered = dict(ARRAYS, **{"protocol/a": ARRAYS["protocol/a"] + 1})
    np.savez(path, **altered, **{ckpt.META_KEY: header})
    with pytest.raises(GraphflowError, match="checksum mismatch"):
        load_checkpoint(path)
    header = json.loads(str(header))
    np.savez(path, **ARRAYS)  # no header at all
    with pytest.raises(GraphflowError, match="not a graphflow checkpoint"):
        load_checkpoint(path)
    assert header["checksum"] == ckpt.checksum(ARRAYS, header)


def test_missing_file(tmp_path):
    with pytest.raises(GraphflowError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, {"step": 1})
    before = path.read_bytes()

    def dies_halfway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # a kill between writing and renaming

    monkeypatch.setattr(ckpt.np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"protocol/a": np.zeros(3, np.float32)}, {"step": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    monkeypatch.undo()
    assert load_checkpoint(path)[1]["step"] == 1
    assert zipfile.is_zipfile(path)
