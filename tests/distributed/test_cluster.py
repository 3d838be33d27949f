"""graphflow without Ray: it imports and trains, and every Ray entry point says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.cli import main
from graphflow.distributed.cluster import INSTALL_HINT, connect, describe_address, require_ray
from graphflow.errors import GraphflowError
from tests.cli_output import one_error_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_ray(monkeypatch):
    """Ray as if it were not installed: importing it fails."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_importing_graphflow_and_its_distributed_package_does_not_import_ray():
    code = ("import sys, graphflow, graphflow.distributed.sharded, graphflow.distributed.sweep, graphflow.cli.sweep_cmd; "
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_without_ray_the_sharded_meta_gradient_says_what_to_install(no_ray):
    from graphflow.distributed.sharded import ShardedMetaGradient
    from tests.distributed.test_sharded import Problem

    problem = Problem()
    with pytest.raises(GraphflowError, match=r"needs Ray, which is not installed: pip install 'graphflow\[ray\]'"):
        require_ray()
    with pytest.raises(GraphflowError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        ShardedMetaGradient(problem.graph, problem.protocol, workers=2)


def test_without_ray_a_sweep_on_workers_says_what_to_install_and_one_in_process_runs(no_ray, tmp_path, capsys):
    from tests.distributed.test_sweep import write_sweep

    sweep = write_sweep(tmp_path, grid={"seed": [0]})
    code = main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 2 and INSTALL_HINT in one_error_line(err, out)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "results.json").exists()


def test_a_malformed_address_is_refused_before_ray_is_asked():
    for bad in ("", "  ", 3):
        with pytest.raises(GraphflowError, match="Ray address .*: use 'auto', 'ray://host:port' or 'host:port'"):
            connect(bad)


def test_addresses_are_described_in_words():
    assert describe_address(None) == "a local Ray instance"
    assert describe_address("10.0.0.1:6379") == "the Ray cluster at 10.0.0.1:6379"
