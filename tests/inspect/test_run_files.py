"""Damaged run files: every way a run file can be broken gives one GraphflowError naming the file
(``Run.load``) and one ``error:`` line with exit status 2 (``graphflow inspect`` and ``explore``),
never a traceback and never a silently wrong run.

The damage is done to a real run file: truncation, damaged zip fields, flipped bytes (caught by
zip's CRC), a plain ``.npy`` named ``.npz``, a missing or malformed ``__run__`` header, header keys
missing, arrays missing or of the wrong shape.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import graphflow as gf
from graphflow.cli import main
from graphflow.engine import Engine
from graphflow.errors import GraphflowError
from graphflow.inspect import Run
from graphflow.inspect.run import HEADER_KEY, HEADER_TYPES
from graphflow.recording import record_run

PATTERNS = "dense2/*,relu1/act[*]"


@pytest.fixture(scope="module")
def run_bytes(tmp_path_factory) -> bytes:
    """The bytes of a small, intact run file (3 steps, one task, the last layer and the relus)."""
    from graphflow.learners import Protocol

    graph = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8)), seed=1))
    xs = np.random.default_rng(0).uniform(-2, 2, (3, 1, 4, 1)).astype(np.float32)
    _, run = record_run(engine, engine.init_network(np.random.default_rng(1), init_std=0.5), xs, np.sin(xs),
                        PATTERNS, gradients=True)
    return run.save(tmp_path_factory.mktemp("run") / "run.npz").read_bytes()


# ---------------------------------------------------------------------- ways of damaging a run file
def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _archive(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return out.getvalue()


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)
    return out.getvalue()


def _header(data: bytes) -> dict:
    return json.loads(str(np.lib.format.read_array(io.BytesIO(_members(data)[f"{HEADER_KEY}.npy"]))))


def _with_header(data: bytes, header) -> bytes:
    members = _members(data)
    members[f"{HEADER_KEY}.npy"] = _npy(np.array(header if isinstance(header, str) else json.dumps(header)))
    return _archive(members)


def _edit_header(edit):
    def damage(data: bytes) -> bytes:
        header = _header(data)
        edit(header)
        return _with_header(data, header)
    return damage


def _without(name: str):
    return lambda data: _archive({k: v for k, v in _members(data).items() if k != f"{name}.npy"})


def _replaced(name: str, array):
    def damage(data: bytes) -> bytes:
        members = _members(data)
        members[f"{name}.npy"] = _npy(array(np.lib.format.read_array(io.BytesIO(members[f"{name}.npy"])))
                                      if callable(array) else array)
        return _archive(members)
    return damage


def _central_entry(data: bytes, name: str) -> int:
    """Offset of ``name``'s entry in the zip's central directory (walked from the end record)."""
    end = data.rindex(b"PK\x05\x06")
    offset = struct.unpack("<I", data[end + 16:end + 20])[0]
    while data[offset:offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[offset + 28:offset + 34])
        if data[offset + 46:offset + 46 + name_len] == name.encode():
            return offset
        offset += 46 + name_len + extra_len + comment_len
    raise LookupError(name)


def _patch(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


def _unknown_compression(data: bytes) -> bytes:
    entry = _central_entry(data, "loss/loss3.npy")
    return _patch(data, entry + 10, struct.pack("<H", 77))  # zipfile: NotImplementedError


def _bad_local_header(data: bytes) -> bytes:
    local = struct.unpack("<I", data[_central_entry(data, "loss/loss3.npy") + 42:][:4])[0]
    return _patch(data, local, b"XX\x03\x04")


def _bad_sizes(data: bytes) -> bytes:
    entry = _central_entry(data, "part/dense2/w/update.npy")
    return _patch(data, entry + 20, struct.pack("<II", 7, 1 << 30))  # compressed size 7, 1 GiB uncompressed


def _bad_crc(data: bytes) -> bytes:
    entry = _central_entry(data, "part/dense2/w/update.npy")
    crc = struct.unpack("<I", data[entry + 16:entry + 20])[0]
    return _patch(data, entry + 16, struct.pack("<I", crc ^ 1))


def _renamed(name: str, new: str):
    """``name`` renamed to ``new`` (of the same length) in the central directory only."""
    def damage(data: bytes) -> bytes:
        return _patch(data, _central_entry(data, name) + 46, new.encode())
    return damage


def _flipped_stored_value(data: bytes) -> bytes:
    """An uncompressed copy of the run with one byte of an update value flipped: only the CRC sees it."""
    members = _members(data)
    stored = _archive(members, zipfile.ZIP_STORED)
    update = members["part/dense2/w/update.npy"]
    at = stored.index(update) + len(update) - 3
    return _patch(stored, at, bytes([stored[at] ^ 0x10]))


def _plain_npy(data: bytes) -> bytes:
    return _npy(np.zeros((3, 4), np.float32))


DAMAGE = {
    "truncated to half": (lambda data: data[:len(data) // 2], "truncated or damaged"),
    "truncated by 10 bytes": (lambda data: data[:-10], "truncated or damaged"),
    "truncated to 100 bytes": (lambda data: data[:100], "truncated or damaged"),
    "empty": (lambda data: b"", "not an .npz archive"),
    "not a zip": (lambda data: b"this is no run file\n" * 20, "not an .npz archive"),
    "unknown compression method": (_unknown_compression, "NotImplementedError"),
    "damaged local header": (_bad_local_header, "'loss/loss3' is damaged"),
    "damaged sizes": (_bad_sizes, "'part/dense2/w/update' is damaged"),
    "damaged crc": (_bad_crc, "CRC"),
    "flipped value byte": (_flipped_stored_value, "CRC"),
    "member renamed": (_renamed("part/dense2/w/update.npy", "part/dense2/w/updatf.npy"), "differ"),
    "member renamed from npy": (_renamed("group/dense2/w/non_finite.npy", "group/dense2/w/non_finite.npz"),
                                "'group/dense2/w/non_finite.npz' is not an array"),
    "plain npy named npz": (_plain_npy, "a plain .npy array"),
    "no header": (_without(HEADER_KEY), f"no {HEADER_KEY} header"),
    "header is a list": (lambda data: _with_header(data, [1, 2]), "is a list, not a JSON object"),
    "header is a string": (lambda data: _with_header(data, json.dumps("run")), "is a text, not a JSON object"),
    "header is a number": (lambda data: _with_header(data, "3"), "is a whole number, not a JSON object"),
    "header is not json": (lambda data: _with_header(data, "{not json"), "not valid JSON"),
    "header is not text": (_replaced(HEADER_KEY, np.arange(3)), "not a JSON text"),
    "other kind": (_edit_header(lambda h: h.update(kind="graphflow-training-checkpoint")), "expected"),
    "newer format": (_edit_header(lambda h: h.update(format=99)), "newer than this graphflow reads"),
    "steps not a number": (_edit_header(lambda h: h.update(steps="3")), "'steps' is a text"),
    "no steps": (_edit_header(lambda h: h.update(steps=0)), "expected at least 1"),
    "patterns not objects": (_edit_header(lambda h: h.update(patterns=["dense2/*"])), "'patterns'"),
    "no losses": (_edit_header(lambda h: h.update(losses=[])), "names no loss arrays"),
    "meta not an object": (_edit_header(lambda h: h.update(meta="x")), "'meta'"),
    "bad graph spec": (_edit_header(lambda h: h["graph"].update(kind="nonsense")), "the run's graph"),
    "part not in the graph": (_edit_header(lambda h: h["parts"].update({"dense9/w": h["parts"]["dense2/w"]})),
                              "no such part"),
    "node out of range": (_edit_header(lambda h: h["parts"]["dense2/w"].update(nodes=[0, 1, 7])), "'nodes'"),
    "ids not of the nodes": (_edit_header(lambda h: h["parts"]["dense2/w"].update(ids=["a", "b", "c"])), "'ids'"),
    "part without fields": (_edit_header(lambda h: h["parts"]["dense2/w"].pop("fields")), "no 'fields'"),
    "unknown field": (_edit_header(lambda h: h["parts"]["dense2/w"]["fields"].update(spin={})), "unknown field"),
    "part is a list": (_edit_header(lambda h: h["parts"].update({"dense2/w": [1]})), "expected an object"),
    "missing field array": (_without("part/dense2/w/update"), "'part/dense2/w/update', which the file lacks"),
    "missing recorded array": (_without("part/relu1/act/recorded"), "which the file lacks"),
    "missing loss array": (_without("loss/loss3"), "'loss/loss3', which the file lacks"),
    "missing data array": (_without("data/inputs/input"), "'data/inputs/input', which the file lacks"),
    "missing group array": (_without("group/dense2/w/quantiles"), "'group/dense2/w/quantiles' the file lacks"),
    "field of wrong shape": (_replaced("part/dense2/w/update", lambda a: a[:, :, :2]), "has shape [3, 1, 2]"),
    "field of wrong rank": (_replaced("part/dense2/w/message_in", lambda a: a[0]), "expected [step=3"),
    "channels of wrong length": (_replaced("part/dense2/w/message_out", lambda a: a[..., :1]), "channel=2"),
    "recorded of wrong shape": (_replaced("part/dense2/w/recorded", lambda a: a[:2]), "has shape [2, 3]"),
    "recorded not bool": (_replaced("part/dense2/w/recorded", lambda a: a.astype(np.float32)), "expected bools"),
    "field of text": (_replaced("part/dense2/w/update", lambda a: a.astype(str)), "expected numbers"),
    "loss of wrong shape": (_replaced("loss/loss3", lambda a: a[:, :, :3]), "'loss/loss3' has shape"),
    "output of wrong steps": (_replaced("output/loss3", lambda a: a[:2]), "'output/loss3' has shape"),
    "quantiles of wrong length": (_replaced("group/dense2/w/quantiles", lambda a: a[:, :4]), "quantile=9"),
    "edges of wrong length": (_replaced("group/dense2/w/edges", lambda a: a[:, :-1]), "edge=32"),
}
DAMAGE.update({f"header without {key!r}": (_edit_header(lambda h, key=key: h.pop(key)), f"no {key!r}")
               for key in HEADER_TYPES})


@pytest.fixture(params=sorted(DAMAGE), ids=str)
def damaged(request, run_bytes, tmp_path) -> tuple[Path, str]:
    """(path of a damaged run file, what its error says)."""
    damage, says = DAMAGE[request.param]
    path = tmp_path / "damaged.npz"
    path.write_bytes(damage(run_bytes))
    return path, says


def test_the_intact_run_file_and_its_rewritten_archives_load(run_bytes, tmp_path):
    """The damage above starts from files that load: the run itself, and its members re-archived."""
    for name, data in {"run": run_bytes, "deflated": _archive(_members(run_bytes)),
                       "stored": _archive(_members(run_bytes), zipfile.ZIP_STORED)}.items():
        (tmp_path / f"{name}.npz").write_bytes(data)
        run = Run.load(tmp_path / f"{name}.npz")
        assert run.steps == 3 and len(run.node_ids()) == 3 + 1 + 3


def test_a_damaged_run_file_is_one_error_naming_the_file(damaged):
    path, says = damaged
    with pytest.raises(GraphflowError) as caught:
        Run.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message, message


@pytest.mark.parametrize("command", ["inspect", "explore"])
def test_the_cli_says_one_error_line_for_a_damaged_run_file(damaged, command, tmp_path, capsys):
    path, _ = damaged
    out = tmp_path / "page.html"
    argv = ["inspect", str(path)] if command == "inspect" else ["explore", str(path), "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_flipped_bytes_never_load_a_different_run(run_bytes, tmp_path):
    """Flip one byte at many places (of the compressed file, and of an uncompressed copy): the result
    is an error naming the file, or a run equal to the intact one (a byte no reader uses)."""
    intact = _load_bytes(run_bytes, tmp_path / "intact.npz")
    for kind, data in {"deflated": run_bytes, "stored": _archive(_members(run_bytes), zipfile.ZIP_STORED)}.items():
        positions = np.unique(np.linspace(0, len(data) - 1, 150).astype(int))
        for at in positions:
            path = tmp_path / f"{kind}-{at}.npz"
            try:
                run = _load_bytes(_patch(data, at, bytes([data[at] ^ 0x5A])), path)
            except GraphflowError as err:
                assert str(err).startswith(f"{path}: ")
                continue
            _assert_same_run(run, intact, f"{kind} byte {at}")
            path.unlink()


def _load_bytes(data: bytes, path: Path) -> Run:
    path.write_bytes(data)
    return Run.load(path)


def _assert_same_run(run: Run, intact: Run, where: str) -> None:
    assert run.header == intact.header, where
    assert run.node_ids() == intact.node_ids(), where
    for part, rec in intact.parts.items():
        np.testing.assert_array_equal(run.parts[part].recorded, rec.recorded, err_msg=where)
        for name, a in rec.fields.items():
            np.testing.assert_array_equal(run.parts[part].fields[name], a, err_msg=where)
    for block, a in intact.losses.items():
        np.testing.assert_array_equal(run.losses[block], a, err_msg=where)
    for group, stats in intact.groups.items():
        for name, a in stats.items():
            np.testing.assert_array_equal(run.groups[group][name], a, err_msg=where)


def test_neither_a_run_nor_a_checkpoint(run_bytes, tmp_path, capsys):
    """An intact archive without either header is named as such (not taken for a checkpoint)."""
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    assert main(["inspect", str(path), "--nodes", "dense2/*"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: neither an inspection run (no __run__ header) nor a graphflow checkpoint " \
                  f"(no __meta__ header)\n"
