"""A run whose values and updates hold NaN (a diverging learner, a NaN weight): recording, reading,
``graphflow inspect`` and ``graphflow explore`` work; statistics leave the non-finite values out
and count them; JSON writes them as null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphflow.cli import main
from graphflow.inspect import group_update_distribution, load_run
from graphflow.inspect.run import QUANTILES
from graphflow.recording import record_run, update_statistics
from graphflow.viz.explorer import explorer_data, explorer_html


@pytest.fixture
def nan_run(engine, batches, tmp_path):
    """4 steps from a network with one NaN weight: every update downstream of it is NaN."""
    xs, ys = batches()
    state = engine.init_network(np.random.default_rng(1), init_std=0.5)
    state.params["dense2/w"][0, 1, 0] = np.nan
    _, run = record_run(engine, state, xs, ys, "dense2/*,dense0/w[*,*],relu1/act[*]", gradients=True)
    return run


def test_update_statistics_leave_out_and_count_non_finite_updates():
    rng = np.random.default_rng(0)
    finite = rng.normal(size=50)
    stats = update_statistics(np.concatenate([finite, [np.nan, np.inf, -np.inf]]))
    assert int(stats["non_finite"]) == 3 and stats["histogram"].sum() == 50
    np.testing.assert_allclose(stats["quantiles"], np.quantile(finite, QUANTILES), rtol=1e-6)
    np.testing.assert_allclose(stats["moments"], [finite.mean(), finite.std(), np.abs(finite).mean()], rtol=1e-6)
    assert np.isfinite(stats["edges"]).all() and stats["edges"][-1] == pytest.approx(np.abs(finite).max())
    nothing = update_statistics(np.full(4, np.nan))
    assert int(nothing["non_finite"]) == 4 and nothing["histogram"].sum() == 0
    assert np.isnan(nothing["quantiles"]).all() and np.isnan(nothing["moments"]).all()
    assert np.isfinite(nothing["edges"]).all()


def test_a_run_with_nan_updates_records_and_reads_back(nan_run, tmp_path):
    assert np.isnan(nan_run.parts["dense2/w"].fields["update"]).any()
    dist = group_update_distribution(nan_run, "dense2/w")["dense2/w"]
    size = nan_run.graph.part_size("dense2/w")
    non_finite = nan_run.groups["dense2/w"]["non_finite"]
    assert non_finite.tolist() == [size] * nan_run.steps  # a NaN weight gives every weight of its layer a NaN update
    assert dist["histogram"].values.sum(axis=1).tolist() == [0] * nan_run.steps
    back = load_run(nan_run.save(tmp_path / "nan.npz"))
    np.testing.assert_array_equal(back.groups["dense2/w"]["non_finite"], nan_run.groups["dense2/w"]["non_finite"])
    np.testing.assert_array_equal(back.parts["dense2/w"].fields["update"], nan_run.parts["dense2/w"].fields["update"])


def test_inspect_and_explore_a_run_with_nan(nan_run, tmp_path, capsys):
    path = nan_run.save(tmp_path / "nan.npz")
    report, page = tmp_path / "report.json", tmp_path / "nan.html"
    assert main(["inspect", str(path), "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "dense0/w[0,1]" in captured.out
    text = report.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the --json output"))
    assert main(["explore", str(path), "--out", str(page)]) == 0
    assert page.read_text() == explorer_html(nan_run)
    data = explorer_data(nan_run)
    json.dumps(data, allow_nan=False)  # NaN and inf are null
    assert None in data["nodes"]["dense2/w[1,0]"]["update"]
