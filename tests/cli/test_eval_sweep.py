"""graphflow eval SWEEP_FOLDER: every trained point on the same tasks, and mean ± std across them
(a seeds sweep's figure for docs/reproduction.md)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.cli import main
from graphflow.distributed.sweep import load_sweep, run_sweep
from tests.cli_output import one_error_line
from tests.distributed.test_sweep import write_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seeds_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    path = write_sweep(root, grid={"seed": [0, 1, 2]})
    run_sweep(load_sweep(path), root / "out")
    return root / "out"


def test_a_sweep_folder_is_every_point_on_the_same_tasks_and_the_spread_across_them(seeds_sweep, capsys):
    assert main(["eval", str(seeds_sweep), "--tasks", "3", "--steps", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(printed["points"]) == ["seed=0", "seed=1", "seed=2"] and printed["skipped"] == []
    finals = {}
    for label, curves in printed["points"].items():  # the oracle: each point's folder evaluated on its own
        alone = gf.evaluate(seeds_sweep / "points" / label, tasks=3, seed=0, steps=2).to_json()
        assert curves == alone
        finals[label] = curves["graphflow"]["mean"][-1]
    across = printed["across"]
    assert across["points"] == 3 and across["metric"] == "l2"
    assert across["mean"][-1] == pytest.approx(statistics.fmean(finals.values()), rel=1e-12)
    assert across["std"][-1] == pytest.approx(statistics.stdev(finals.values()), rel=1e-12)
    assert across["best"] == min(finals, key=finals.get)
    assert main(["eval", str(seeds_sweep), "--tasks", "3", "--steps", "2"]) == 0
    table = capsys.readouterr().out
    assert f"across 3 points: {across['mean'][-1]:.4f} ± {across['std'][-1]:.4f}" in table
    assert f"best {across['best']}" in table
    assert gf.evaluate_sweep(seeds_sweep, tasks=3, seed=0, steps=2).to_json() == printed  # the Python API's


def test_points_without_checkpoints_are_named_and_a_sweep_of_none_is_an_error(seeds_sweep, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(seeds_sweep, copy)
    (copy / "points" / "seed=1" / "checkpoint.npz").unlink()  # finished, kept as logs only
    assert main(["eval", str(copy), "--tasks", "2", "--steps", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(printed["points"]) == ["seed=0", "seed=2"] and printed["skipped"] == ["seed=1"]
    for label in ("seed=0", "seed=2"):
        (copy / "points" / label / "checkpoint.npz").unlink()
    assert main(["eval", str(copy), "--tasks", "2", "--steps", "1"]) == 2
    assert "no point of the sweep has a checkpoint to evaluate" in one_error_line(capsys.readouterr().err)
    assert main(["eval", str(seeds_sweep), "--tasks", "2", "--plot", str(tmp_path / "p.png")]) == 2
    assert "a sweep folder is evaluated point by point" in one_error_line(capsys.readouterr().err)


def test_points_with_their_own_initial_networks_give_each_row_its_own_baselines(seeds_sweep, capsys):
    """A MAML seeds sweep learns an initial network per point, so Adam and SGD start elsewhere on
    every row; a sweep of one shared initialization gives them once, on the last line."""
    maml = ROOT / "examples" / "runs" / "maml-sinusoid-2x10-heldout-seeds"
    result = gf.evaluate_sweep(maml, tasks=3, seed=0)
    rows = result.table().splitlines()
    assert rows[0].split()[:5] == ["point", "meta-steps", "graphflow", "adam", "sgd"]
    for label, row in zip(result.points, rows[1:]):
        alone = result.points[label]
        assert row.split()[-2:] == [f"{alone['adam'].mean[-1]:.4f}", f"{alone['sgd'].mean[-1]:.4f}"]
    assert len({row.split()[-1] for row in rows[1:-1]}) == 3 and "each point's own initial network" in rows[-1]
    assert main(["eval", str(seeds_sweep), "--tasks", "3", "--steps", "2"]) == 0
    shared = capsys.readouterr().out.splitlines()
    assert "adam" not in shared[0] and "on the same tasks Adam" in shared[-1]
