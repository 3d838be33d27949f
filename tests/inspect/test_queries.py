"""Queries of a run, against values computed directly from its arrays."""

from __future__ import annotations

import numpy as np
import pytest

from graphflow.errors import GraphflowError
from graphflow.inspect import (
    GradientComparison,
    message_alerts,
    message_vs_gradient,
    part_summary,
    top_changed,
)
from graphflow.inspect._example import example_run
from graphflow.inspect.queries import node_series, node_values


def test_top_changed_ranks_by_the_size_of_the_total_update(tiny_run):
    ranked = top_changed(tiny_run, k=50)
    ids = [nid for rec in tiny_run.parts.values() if "update" in rec.fields for nid in rec.ids]
    assert sorted(nid for nid, _ in ranked) == sorted(ids)  # weights and biases only, each once
    size = {nid: np.abs(tiny_run.node(nid)["update"].values.sum(axis=0)).mean() for nid in ids}
    assert [nid for nid, _ in ranked] == sorted(ids, key=lambda n: -size[n])
    first, total = ranked[0]
    assert total == pytest.approx(tiny_run.node(first)["update"].values.sum(axis=0).mean())
    assert [nid for nid, _ in top_changed(tiny_run, 2, pattern="dense2/*")][0].startswith("dense2/")
    assert len(top_changed(tiny_run, 3, task=1)) == 3


def test_message_alerts_follow_the_thresholds(tiny_run):
    norms = {nid: tiny_run.node(nid).message_norm().values for nid in tiny_run.node_ids()}
    low = float(np.median(np.concatenate([v.ravel() for v in norms.values()])))
    alerts = message_alerts(tiny_run, low=low, high=1e9)
    expected = sum(int((v < low).sum()) for v in norms.values())
    assert len(alerts) == expected > 0 and {a.kind for a in alerts} == {"vanished"}
    assert all(a.norm < low for a in alerts) and alerts == sorted(alerts, key=lambda a: (a.step, a.task,
                                                                                       tiny_run.node_ids().index(a.node)))
    assert message_alerts(tiny_run, low=0, high=np.inf) == []
    exploded = message_alerts(tiny_run, low=0, high=low, field="message_in", pattern="relu1/act[*]")
    assert exploded and {a.kind for a in exploded} == {"exploded"} and {a.node[:5] for a in exploded} == {"relu1"}


def test_message_vs_gradient_against_direct_computation(tiny_run):
    cmp = message_vs_gradient(tiny_run, "dense2/w[*,0]")
    assert isinstance(cmp, GradientComparison) and len(cmp.nodes) == 4
    g = np.stack([tiny_run.node(n)["gradient"].values for n in cmp.nodes], axis=-1)  # [step, task, node]
    u = np.stack([tiny_run.node(n)["update"].values for n in cmp.nodes], axis=-1)
    for s in range(tiny_run.steps):
        assert cmp.update_correlation[s] == pytest.approx(np.corrcoef(u[s].ravel(), -g[s].ravel())[0, 1], abs=1e-9)
        assert cmp.update_sign_agreement[s] == pytest.approx(np.mean(np.sign(u[s]) == -np.sign(g[s])))
    assert cmp.channel_correlation.shape == (4, 3)
    assert np.all(np.abs(cmp.message_correlation) == np.nanmax(np.abs(cmp.channel_correlation), axis=1))
    assert np.all((cmp.message_sign_agreement >= 0) & (cmp.message_sign_agreement <= 1))
    assert "corr(update, -grad)" in cmp.table() and len(cmp.table([0, 2]).splitlines()) == 3
    assert len(cmp.to_json()["best_channel"]) == 4


def test_message_vs_gradient_needs_gradients(engine, batches):
    from graphflow.recording import record_run

    xs, ys = batches(steps=1)
    _, run = record_run(engine, engine.init_network(np.random.default_rng(0)), xs, ys, "dense2/w[*,0]")
    with pytest.raises(GraphflowError, match="gradients=True"):
        message_vs_gradient(run)


def test_node_values_and_part_summary():
    run = example_run()
    np.testing.assert_allclose(node_series(run, "update")["dense2/w"], [[0.0, 0.25], [-0.25, 0.25]])
    np.testing.assert_allclose(node_values(run, "abs_update")["dense2/w"], [0.25, 0.5])
    np.testing.assert_allclose(node_values(run, "gradient", step=1)["dense2/w"], [0.5, -0.5])
    norms = node_series(run, "message_out")["dense2/w"]
    np.testing.assert_allclose(node_values(run, "message_out")["dense2/w"], norms.mean(axis=0))
    np.testing.assert_allclose(part_summary(run, "message_out")["dense2/w"].values, norms.mean(axis=1))
    with pytest.raises(GraphflowError, match="unknown quantity 'speed'"):
        node_values(run, "speed")
