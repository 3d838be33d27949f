"""Every broken MNIST folder, through ``graphflow train`` and ``graphflow mplp eval --data``: one
``error:`` line naming the file or folder, exit 2, no traceback."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.presets import mnist
from graphflow.spec import ExperimentSpec
from graphflow.tasks.mnist import write_idx
from tests.cli_output import one_error_line

IMAGES, LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def good_folder(folder: Path, n: int = 8100) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / IMAGES, rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
    write_idx(folder / LABELS, rng.integers(0, 10, n).astype(np.uint8))
    return folder


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _rewrite(path: Path, array) -> None:
    path.unlink()
    write_idx(path, array)


BREAKAGES = {
    "missing folder": lambda f: shutil.rmtree(f),
    "empty folder": lambda f: [p.unlink() for p in f.iterdir()],
    "no images": lambda f: (f / IMAGES).unlink(),
    "no labels": lambda f: (f / LABELS).unlink(),
    "empty images file": lambda f: (f / IMAGES).write_bytes(b""),
    "images truncated in the header": lambda f: _truncate(f / IMAGES, 6),
    "images truncated in the data": lambda f: _truncate(f / IMAGES, 5000),
    "labels truncated": lambda f: _truncate(f / LABELS, 100),
    "trailing data": lambda f: (f / LABELS).write_bytes((f / LABELS).read_bytes() + b"\0\0"),
    "wrong magic": lambda f: (f / IMAGES).write_bytes(b"\x01\x02" + (f / IMAGES).read_bytes()[2:]),
    "a text file": lambda f: (f / LABELS).write_text("these are not labels\n"),
    "mismatched counts": lambda f: _rewrite(f / LABELS, np.zeros(8000, np.uint8)),
    "labels out of range": lambda f: _rewrite(f / LABELS, np.full(8100, 12, np.uint8)),
    "images of the wrong type": lambda f: _rewrite(f / IMAGES, np.zeros((8100, 28, 28), np.int32)),
    "flat images": lambda f: _rewrite(f / IMAGES, np.zeros((8100, 784), np.uint8)),
    "2-d labels": lambda f: _rewrite(f / LABELS, np.zeros((8100, 1), np.uint8)),
    "too few images": lambda f: (_rewrite(f / IMAGES, np.zeros((50, 28, 28), np.uint8)),
                                 _rewrite(f / LABELS, np.zeros(50, np.uint8))),
    "constant images": lambda f: _rewrite(f / IMAGES, np.zeros((8100, 28, 28), np.uint8)),
    "corrupt gzip": lambda f: ((f / IMAGES).unlink(), (f / f"{IMAGES}.gz").write_bytes(b"\x1f\x8b" + b"\0" * 40)),
    "truncated gzip": lambda f: ((f / f"{LABELS}.gz").write_bytes(gzip.compress((f / LABELS).read_bytes())[:60]),
                                 (f / LABELS).unlink()),
    "a folder named like the images": lambda f: ((f / IMAGES).unlink(), (f / IMAGES).mkdir()),
    "a header claiming 2^32-1 images": lambda f: (f / IMAGES).write_bytes(b"\0\0\x08\x03" + b"\xff" * 12),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES), ids=list(BREAKAGES))
def test_train_refuses_a_broken_mnist_folder(tmp_path, capsys, breakage):
    folder = good_folder(tmp_path / "mnist")
    BREAKAGES[breakage](folder)
    exp = ExperimentSpec.model_validate({"graph": mnist().model_dump(mode="json"),
                                         "task": {"kind": "mnist", "data_dir": str(folder)},
                                         "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [4, 4]},
                                         "meta": {"steps": 1, "outer_batch": 1, "inner_steps": 1}})
    config = tmp_path / "exp.json"
    config.write_text(exp.model_dump_json())
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    out, err = capsys.readouterr()
    line = one_error_line(err, out)
    assert code == 2 and str(folder) in line, line


@pytest.mark.parametrize("breakage", ["missing folder", "images truncated in the data", "mismatched counts",
                                      "corrupt gzip", "too few images", "a header claiming 2^32-1 images"])
def test_mplp_eval_refuses_a_broken_mnist_folder(tmp_path, capsys, breakage, reference_dir):
    folder = good_folder(tmp_path / "mnist")
    BREAKAGES[breakage](folder)
    code = main(["mplp", "eval", "--preset", "mnist", "--checkpoint", str(reference_dir / "mnist_weights_00005000.npy"),
                 "--data", str(folder), "--tasks", "1", "--steps", "1"])
    out, err = capsys.readouterr()
    line = one_error_line(err, out)
    assert code == 2 and str(folder) in line, line


def test_a_good_folder_trains(tmp_path, capsys):
    """The same helper's unbroken folder is accepted (so the failures above are the breakages')."""
    folder = good_folder(tmp_path / "mnist")
    exp = ExperimentSpec.model_validate({"graph": mnist().model_dump(mode="json"),
                                         "task": {"kind": "mnist", "data_dir": str(folder)},
                                         "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [4, 4]},
                                         "meta": {"steps": 1, "outer_batch": 1, "inner_steps": 1, "shots": 2},
                                         "eval_tasks": 1})
    config = tmp_path / "exp.json"
    config.write_text(exp.model_dump_json())
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0, capsys.readouterr().err
