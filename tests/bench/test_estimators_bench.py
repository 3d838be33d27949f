"""``graphflow bench --cases estimators``: every estimator at every unroll, with its seconds, peak memory
and cosine to the exact gradient, run on a tiny graph (the bench's own sizes take minutes).

No timing is asserted: the fields, the cosines' range, bptt's cosine of 1 (the exact gradient made
twice), and that every estimator ran the same tasks (the truncated meta-steps add up to the whole
unroll's meta-loss).
"""

from __future__ import annotations

import json

import pytest

import graphflow as gf
from graphflow.bench import estimators as E
from graphflow.bench.report import format_table
from graphflow.bench.runner import DEFAULT_GROUPS, select_cases
from graphflow.cli import main
from graphflow.learners import Protocol

SIZES = E.EstimatorSizes(tasks=2, batch=4, heldout=4, unrolls=(2, 4), truncation=2, population=2)


def _tiny():
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    return graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)))


@pytest.fixture(scope="module")
def cases():
    graph, protocol = _tiny()
    return E.estimator_cases(SIZES, graph=graph, protocol=protocol)


def test_every_estimator_at_every_unroll_with_its_figures(cases):
    assert [(c["estimator"], c["unroll"]) for c in cases] == [(k, t) for t in SIZES.unrolls for k in E.KINDS]
    for c in cases:
        assert c["kind"] == "estimator" and c["tasks"] == SIZES.tasks, c["name"]
        assert c["seconds"] > 0 and c["peak_bytes"] > 0 and c["trained_entries"] > 0, c["name"]
        assert -1.0 <= c["cosine"] <= 1.0, c["name"]
        truncated = c["estimator"] in ("truncated", "pes", "nres")
        assert c["truncation"] == (SIZES.truncation if truncated else None)
        assert c["meta_steps_per_unroll"] == (c["unroll"] // SIZES.truncation if truncated else 1)
        assert len(c["seconds_samples"]) == c["meta_steps_per_unroll"]
        assert c["population"] == (SIZES.population if c["estimator"] in ("es", "pes", "nres") else None)


def test_bptt_is_the_exact_gradient_and_the_truncations_add_up_to_the_unroll(cases):
    by = {(c["estimator"], c["unroll"]): c for c in cases}
    for unroll in SIZES.unrolls:
        exact = by["bptt", unroll]
        assert exact["cosine"] == pytest.approx(1.0, abs=1e-6)
        # the meta-steps of a truncated estimator, scaled by K / T, are the whole unroll's meta-loss
        assert by["truncated", unroll]["meta_loss"] == pytest.approx(exact["meta_loss"], rel=1e-4)
        # ES, PES and NRES: the mean over members perturbed by sigma 0.01 of the same tasks' meta-loss
        for kind in ("es", "pes", "nres"):
            assert by[kind, unroll]["meta_loss"] == pytest.approx(exact["meta_loss"], rel=1e-2), kind


def test_unroll_not_a_multiple_of_the_truncation_is_refused():
    graph, protocol = _tiny()
    with pytest.raises(ValueError, match="unroll 5 is not a multiple of the truncation 2"):
        E.estimator_cases(E.EstimatorSizes(tasks=1, batch=2, heldout=2, unrolls=(5,), truncation=2, population=2),
                          graph=graph, protocol=protocol)


def test_the_group_is_selectable_but_not_in_the_default():
    assert "estimators" not in DEFAULT_GROUPS
    assert select_cases(["estimators"]) == ["estimators"]


def test_graphflow_bench_cases_estimators_quick_writes_the_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(E.W, "graph_and_protocol", lambda name: _tiny())
    monkeypatch.setattr(E.EstimatorSizes, "make", classmethod(
        lambda cls, quick: E.EstimatorSizes(tasks=1, batch=2, heldout=2, unrolls=(2,), truncation=1, population=2)))
    report_path = tmp_path / "bench.json"
    assert main(["bench", "--cases", "estimators", "--quick", "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert [c["name"] for c in report["cases"]] == [f"estimators-{k}-T2" for k in E.KINDS]
    table = format_table(report)
    assert "cosine to exact" in table and "truncation 1, population 2" in table
    assert "cosine to exact" in capsys.readouterr().out
