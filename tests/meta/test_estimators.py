"""The meta-gradient estimators against their oracles: exact backprop, finite differences, and the
bias and variance each is known for.

- float64, a small protocol (four update scales and one GRU bias trained): ES and PES approach
  :class:`MetaGradient`'s exact gradient, their error falling as 1/sqrt(population);
- a scalar toy inner loop (learning rate -> SGD on a noisy target, T = 100 in truncations of
  10), run by the same estimator classes: PES and NRES are unbiased, truncated backprop is not,
  and NRES's variance is below PES's;
- ES's memory does not grow with the unroll;
- the persistent tasks: staggered starts, restarts, antithetic pairs sharing their start, NRES
  reusing each task's noise until it restarts;
- the trainer: each estimator's state in checkpoints, exact resume (also after SIGKILL at the
  kill points of :mod:`graphflow.io.faults`), other estimators refused on resume, damaged state.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import graphflow as gf
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState
from graphflow.errors import GraphflowError, SpecError
from graphflow.learners import Protocol
from graphflow.meta.estimators import (
    EngineLoop,
    EsEstimator,
    NresEstimator,
    PesEstimator,
    TruncatedEstimator,
    centered_ranks,
    draw_length,
    pair_noise,
    task_noise_seed,
)
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.meta.trainer import Trainer
from graphflow.presets import sinusoid
from graphflow.spec import ExperimentSpec, LogUniformLength, parse_experiment_spec
from tests.meta.test_metaloss import batch_for
from tests.meta.test_trainer import log_records, meta_losses, tiny_experiment

REPO = Path(__file__).resolve().parents[2]


def flat(grads: dict, keys: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(grads[k]) for k in keys])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class FixedDraws:
    """Tasks of a fixed outer batch, one per seed 0, 1, ... in order; noise seeds from ``noise``."""

    def __init__(self, batch: MetaBatch, init: dict, noise: int = 0):
        self.fixed, self.init, self.next_task, self.noise = batch, init, 0, noise

    def batch(self, tasks, steps):
        assert (tasks, steps) == (self.fixed.tasks, self.fixed.steps)
        return self.fixed, self.init

    def task(self, seed, steps):
        assert steps == self.fixed.steps
        return self.fixed.select([seed]), {k: v[[seed]] for k, v in self.init.items()}

    def task_seed(self):
        self.next_task += 1
        return self.next_task - 1

    def noise_seed(self):
        self.noise += 1
        return self.noise


# ----------------------------------------------------------------------------------------------
# a small protocol in float64: the estimators against exact backprop

TRAINED = ["norm::dense0/w::out_scale", "norm::dense0/b::out_scale", "norm::dense2/w::out_scale",
           "norm::dense2/b::out_scale", "learner::dense2/w::gru.b_next"]


def small_case(steps: int):
    graph = gf.build(gf.stack(1, gf.Dense(3), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)), seed=3)
    rng = np.random.default_rng(0)
    batch = batch_for(graph, rng, tasks=2, steps=steps, shots=4)
    init = dict(Engine(graph, protocol).init_network(rng, 2, init_std=0.7).params)
    exact = MetaGradient(graph, protocol, dtype=np.float64, trainable=TRAINED)(protocol, batch, init)
    return graph, protocol, batch, init, exact


def test_truncated_backprop_with_one_truncation_per_unroll_is_bptt():
    graph, protocol, batch, init, (loss, exact) = small_case(steps=4)
    loop = EngineLoop(graph, protocol, TRAINED, dtype=np.float64)
    whole = TruncatedEstimator(loop, 2, 4, 4, stagger=False)
    got_loss, got = whole.estimate(protocol, FixedDraws(batch, init))
    assert got_loss == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(flat(got, TRAINED), flat(exact, TRAINED), rtol=1e-12, atol=1e-16)
    # in two truncations, the shares (scaled back by K / T) add up to the meta-loss of the whole unroll
    halves = TruncatedEstimator(loop, 2, 4, 2, stagger=False)
    draws = FixedDraws(batch, init)
    assert sum(halves.estimate(protocol, draws)[0] * 0.5 for _ in range(2)) == pytest.approx(loss, rel=1e-12)


def es_estimate(estimator, protocol, batch, init, seed):
    return estimator.gradient(protocol, batch, init, seed)[1]


def pes_estimate(estimator, protocol, batch, init, seed):
    """The sum over the truncations of one whole unroll (each scaled back by K / T)."""
    draws = FixedDraws(batch, init, noise=1000 * seed)
    k, t = estimator.tasks.truncation, estimator.tasks.unroll
    grads = [estimator.estimate(protocol, draws)[1] for _ in range(t // k)]
    return {key: sum(g[key] for g in grads) * (k / t) for key in grads[0]}


@pytest.mark.parametrize("kind", ["es", "pes"])
def test_es_and_pes_approach_the_exact_gradient(kind):
    """Relative error sqrt(mean |g - exact|^2) / |exact| over seeds at populations 8, 32, 128:
    about sqrt((d + 1) / pairs) for antithetic ES in d = 9 dimensions, halving for each 4x; every
    estimate at 128 points within 25 degrees of the exact gradient (cosine >= 0.9)."""
    steps = 3 if kind == "es" else 4
    graph, protocol, batch, init, (_, exact) = small_case(steps)
    want = flat(exact, TRAINED)
    loop = EngineLoop(graph, protocol, TRAINED, dtype=np.float64)
    errors, cosines = [], []
    for population in (8, 32, 128):
        estimates = []
        for seed in range(4 if kind == "es" else 3):
            if kind == "es":
                est = es_estimate(EsEstimator(loop, 2, steps, population, 1e-3), protocol, batch, init, seed)
            else:
                pes = PesEstimator(loop, 2, steps, 2, population, 1e-3, stagger=False)
                est = pes_estimate(pes, protocol, batch, init, seed)
            estimates.append(flat(est, TRAINED))
        errors.append(np.sqrt(np.mean([np.sum((e - want) ** 2) for e in estimates])) / np.linalg.norm(want))
        cosines.append([cosine(e, want) for e in estimates])
    print(f"{kind}: relative error at populations 8, 32, 128: {np.round(errors, 3).tolist()}; cosines at 128: "
          f"{np.round(cosines[-1], 3).tolist()}")
    ratios = [errors[k] / errors[k + 1] for k in range(2)]
    assert all(1.3 < r < 3.1 for r in ratios), (errors, ratios)  # 1/sqrt(P): 2 for each 4x
    assert min(cosines[-1]) >= 0.9, cosines[-1]


def test_es_peak_memory_does_not_grow_with_the_unroll():
    """Forward passes only: the peak of an ES estimate (tracemalloc) is one inner step's working
    memory whatever the unroll. Batches are wide (40 examples) so that a step's arrays dominate the
    few hundred bytes the engine keeps per step (docs/estimators.md); backprop's tape, for scale,
    holds more than twice that at T = 10 already."""
    graph = gf.build(sinusoid())
    protocol = Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8)))
    loop = EngineLoop(graph, protocol, protocol.trainable())
    rng = np.random.default_rng(0)
    init = dict(Engine(graph, protocol).init_network(rng, 2).params)
    batches = {steps: batch_for(graph, rng, tasks=2, steps=steps, shots=40) for steps in (10, 100)}

    def peak(run):
        gc.collect()
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def es(steps):
        return lambda: EsEstimator(loop, 2, steps, 2, 0.01).gradient(protocol, batches[steps], init, 1)

    es(10)()  # first-call allocations are not the unroll's
    short, long = peak(es(10)), peak(es(100))
    print(f"ES peak memory: {short / 2**20:.2f} MiB at T = 10, {long / 2**20:.2f} MiB at T = 100")
    assert long < 1.2 * short, (short, long)
    mg = MetaGradient(graph, protocol, trainable=protocol.trainable())
    tape = peak(lambda: mg(protocol, batches[10], init))
    assert tape > 2 * short, (tape, short)


# ----------------------------------------------------------------------------------------------
# the population as one more batch axis of the engine


@pytest.mark.parametrize("chunk", [None, 3], ids=["whole-population", "chunks-of-3"])
def test_batched_es_members_are_the_members_run_one_by_one(chunk):
    """member_losses of any slice of the population, run as one engine run (or in chunks that split
    pairs), equal the member-by-member losses (float64, 1e-10), and so does the ES estimate."""
    steps = 3
    graph, protocol, batch, init, _ = small_case(steps)
    loop = EngineLoop(graph, protocol, TRAINED, dtype=np.float64)
    batched = EsEstimator(loop, 2, steps, 8, 1e-2, member_chunk=chunk)
    one_by_one = EsEstimator(loop, 2, steps, 8, 1e-2, member_chunk=1)
    theta = loop.parameters(protocol)
    for members in (range(8), [3, 5, 6]):
        want = one_by_one.member_losses(theta, batch, init, 7, members)
        got = batched.member_losses(theta, batch, init, 7, members)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        assert np.ptp(want) > 1e-8  # the members differ
    (loss, grads), (want_loss, want_grads) = (e.gradient(protocol, batch, init, 7) for e in (batched, one_by_one))
    assert loss == pytest.approx(want_loss, rel=1e-10)
    np.testing.assert_allclose(flat(grads, TRAINED), flat(want_grads, TRAINED), rtol=1e-7, atol=1e-12)


def test_batched_es_in_float32_on_the_whole_sinusoid_protocol():
    """Every learner entry and output scale of the sinusoid's five groups trained: batched members
    within 1e-5 of one by one in float32; a memory budget below one member runs them one at a time."""
    graph = gf.build(sinusoid())
    protocol = Protocol.init(graph, gf.LearnerSpec(hidden=3, message_size=2, mlp_hidden=(8, 8)), seed=2)
    loop = EngineLoop(graph, protocol, protocol.trainable())
    rng = np.random.default_rng(0)
    batch = batch_for(graph, rng, tasks=3, steps=3, shots=5)
    init = dict(Engine(graph, protocol).init_network(rng, 3).params)
    theta = loop.parameters(protocol)
    want = EsEstimator(loop, 3, 3, 6, 0.05, member_chunk=1).member_losses(theta, batch, init, 11, range(6))
    batched = EsEstimator(loop, 3, 3, 6, 0.05)
    assert batched.members_at_once(batch, 6) == 6
    np.testing.assert_allclose(batched.member_losses(theta, batch, init, 11, range(6)), want, rtol=1e-5)
    tight = EsEstimator(loop, 3, 3, 6, 0.05, memory_budget=loop.member_bytes(batch) * 2)
    assert tight.members_at_once(batch, 6) == 2
    np.testing.assert_allclose(tight.member_losses(theta, batch, init, 11, range(6)), want, rtol=1e-5)
    assert EsEstimator(ScalarToy(), 1, 1, 4, 0.1).members_at_once(batch, 4) == 1  # a loop of one protocol


@pytest.mark.parametrize("estimator", [PesEstimator, NresEstimator], ids=["pes", "nres"])
def test_batched_pes_members_are_the_members_run_one_by_one(estimator):
    """PES and NRES with their members' persistent states stacked: the same estimates, meta-losses
    and inner states as members run one after another, over truncations, restarts and staggered
    starts."""
    graph, protocol, batch, init, _ = small_case(4)
    loop = EngineLoop(graph, protocol, TRAINED, dtype=np.float64)
    class Cycling(FixedDraws):  # restarted tasks come round again
        def task(self, seed, steps):
            return super().task(seed % 2, steps)

    runs = [estimator(loop, 2, 4, 2, 6, 1e-2, member_chunk=chunk) for chunk in (1, None, 4)]
    draws = [Cycling(batch, init, noise=5) for _ in runs]
    for _ in range(4):
        (want_loss, want), *others = [pes.estimate(protocol, d) for pes, d in zip(runs, draws)]
        for loss, got in others:
            assert loss == pytest.approx(want_loss, rel=1e-10)
            np.testing.assert_allclose(flat(got, TRAINED), flat(want, TRAINED), rtol=1e-7, atol=1e-12)
    for pes in runs[1:]:
        for mine, theirs in zip(pes.states, runs[0].states):
            for key, a in theirs.params.items():
                np.testing.assert_allclose(mine.params[key], a, rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# a scalar toy where truncation bias is real


class ScalarToy:
    """SGD on a noisy scalar target, its learning rate the meta-parameter: w <- w - lr (w - y_i);
    the hint loss of step i is 0.5 (w - y_i)^2 after the update, the held-out loss 0.5 (w - ye)^2.
    An inner loop with the members :class:`EngineLoop` has, run by the same estimators."""

    base = get_backend("numpy", np.float64)
    trainable = ["lr"]
    hint_weight, heldout_weight = 0.7, 0.3

    def parameters(self, protocol):
        return {"lr": np.asarray(protocol["lr"], np.float64)}

    def parameter_shapes(self):
        return {"w": ()}

    def fresh(self, init):
        return NetState({"w": np.array(init["w"], np.float64)})

    def run(self, params, state, batch, hint_scale, heldout_scale, tape=None):
        lr, w, hints = params["lr"], state.params["w"], 0.0
        for i in range(batch.steps):
            y = batch.y[:, i, 0, 0]
            w = w - lr * (w - y)
            hints = hints + (w - y) * (w - y) * 0.5
        terms = hints * hint_scale * self.hint_weight
        if heldout_scale is not None:
            held = batch.ye[:, 0, 0]
            terms = terms + (w - held) * (w - held) * 0.5 * (heldout_scale * self.heldout_weight)
        return NetState({"w": w}), terms


class ToyDraws:
    """Toy tasks from seeds: a target c ~ N(0, 1) observed with noise 0.5, a start w ~ N(0, 1)."""

    def __init__(self, seed: int):
        self.seed, self.count = seed, 0

    def task(self, seed, steps):
        rng = np.random.default_rng([self.seed, seed])
        c, w = rng.standard_normal(2)
        y = c + 0.5 * rng.standard_normal((1, steps, 1, 1))
        return MetaBatch(np.zeros_like(y), y, np.zeros((1, 1, 1)), np.full((1, 1, 1), c)), {"w": np.array([w])}

    def task_seed(self):
        self.count += 1
        return self.count

    def noise_seed(self):
        self.count += 1
        return self.seed * 10**6 + self.count


LR = {"lr": 0.03}
T, K, TOY_TASKS = 100, 10, 8


def toy_truncations(estimator, seed: int) -> list[tuple[float, float]]:
    """Meta-loss and gradient of each truncation of one whole unroll of every task."""
    draws = ToyDraws(seed)
    return [(loss, float(g["lr"])) for loss, g in
            (estimator.estimate(LR, draws) for _ in range(T // estimator.tasks.truncation))]


def toy_estimate(estimator, seed: int) -> tuple[float, float]:
    """Meta-loss and gradient of one whole unroll of every task, summed over its truncations."""
    parts = toy_truncations(estimator, seed)
    scale = estimator.tasks.truncation / T
    return sum(p[0] for p in parts) * scale, sum(p[1] for p in parts) * scale


def test_the_toy_unroll_gradient_is_its_finite_difference():
    whole = TruncatedEstimator(ScalarToy(), TOY_TASKS, T, T, stagger=False)
    loss, g = toy_estimate(whole, 0)

    def meta_loss(lr):
        return TruncatedEstimator(ScalarToy(), TOY_TASKS, T, T, stagger=False).estimate({"lr": lr}, ToyDraws(0))[0]

    eps = 1e-6
    assert g == pytest.approx((meta_loss(0.03 + eps) - meta_loss(0.03 - eps)) / (2 * eps), rel=1e-6)
    assert loss == pytest.approx(meta_loss(0.03), rel=1e-14)


def test_pes_is_unbiased_where_truncated_backprop_is_not():
    """T = 100 in truncations of 10, 8 tasks per seed, 150 seeds (fresh tasks and noise each): the
    mean difference to the whole unroll's gradient is within 3 standard errors for PES, and more
    than 10 standard errors (and a fifth of the gradient) for truncated backprop, which cannot see
    that a larger learning rate also helps the steps after each truncation."""
    seeds = range(150)
    full = np.array([toy_estimate(TruncatedEstimator(ScalarToy(), TOY_TASKS, T, T, stagger=False), s)[1]
                     for s in seeds])
    truncated = np.array([toy_estimate(TruncatedEstimator(ScalarToy(), TOY_TASKS, T, K, stagger=False), s)[1]
                          for s in seeds])
    pes = np.array([toy_estimate(PesEstimator(ScalarToy(), TOY_TASKS, T, K, 2, 1e-3, stagger=False), s)[1]
                    for s in seeds])

    def bias(estimates):
        d = estimates - full
        return d.mean(), d.std(ddof=1) / np.sqrt(len(d))

    (pes_bias, pes_se), (tr_bias, tr_se) = bias(pes), bias(truncated)
    print(f"toy, T = {T} in truncations of {K}: mean full gradient {full.mean():.4f}; PES bias {pes_bias:+.4f} "
          f"(standard error {pes_se:.4f}); truncated backprop bias {tr_bias:+.4f} (standard error {tr_se:.4f})")
    assert abs(pes_bias) < 3 * pes_se
    assert abs(tr_bias) > 10 * tr_se and abs(tr_bias) > 0.2 * abs(full.mean())


def test_nres_is_unbiased_with_less_variance_than_pes():
    """The toy of the test above, at the same population (one pair) and sigma, 600 seeds (fewer
    do not settle the variances: the estimates are heavy-tailed, eps^2 times a gradient; at 150
    seeds the whole-unroll variances came out reversed). NRES's mean difference to the whole
    unroll's gradient is within 3 standard errors, and its estimates vary less over seeds than
    PES's: each truncation's (what a meta-step uses) and their sum over the whole unroll. Two
    causes, both NRES's design: its tasks draw independent noise where PES's share each step's
    (at the first truncation, where both are eps^2 times the truncation's gradient, that alone
    halves the variance), and reusing one draw per unroll avoids PES's products of the noise of
    different truncations (Li et al. 2023: per task, 2 G_k^2 against k sum_j a_kj^2 + G_k^2)."""
    seeds = range(600)
    full = np.array([toy_estimate(TruncatedEstimator(ScalarToy(), TOY_TASKS, T, T, stagger=False), s)[1]
                     for s in seeds])
    per_truncation = {kind: np.array([[g for _, g in toy_truncations(estimator(ScalarToy(), TOY_TASKS, T, K, 2, 1e-3,
                                                                                stagger=False), s)] for s in seeds])
                      for kind, estimator in (("pes", PesEstimator), ("nres", NresEstimator))}
    unroll = {kind: parts.sum(axis=1) * (K / T) for kind, parts in per_truncation.items()}  # [seeds]
    d = unroll["nres"] - full
    bias, se = d.mean(), d.std(ddof=1) / np.sqrt(len(d))
    step_variance = {kind: parts.var(axis=0, ddof=1) for kind, parts in per_truncation.items()}  # [truncations]
    print(f"toy, T = {T} in truncations of {K}, one pair: mean full gradient {full.mean():.4f}; NRES bias "
          f"{bias:+.4f} (standard error {se:.4f})\n  variance over seeds of each truncation's estimate: PES "
          f"{np.round(step_variance['pes'], 1).tolist()}, NRES {np.round(step_variance['nres'], 1).tolist()}"
          f"\n  of the whole unroll's sum: whole-unroll gradient {full.var(ddof=1):.3f}, PES "
          f"{unroll['pes'].var(ddof=1):.3f}, NRES {unroll['nres'].var(ddof=1):.3f}")
    assert abs(bias) < 3 * se
    assert np.all(step_variance["nres"] < step_variance["pes"])
    assert unroll["nres"].var(ddof=1) < unroll["pes"].var(ddof=1)


# ----------------------------------------------------------------------------------------------
# persistent tasks


def test_tasks_start_staggered_and_restart_one_by_one():
    tr = TruncatedEstimator(ScalarToy(), 4, 8, 2)
    draws = ToyDraws(0)
    tr.estimate(LR, draws)
    assert tr.tasks.positions.tolist() == [2, 4, 6, 8] and tr.tasks.seeds.tolist() == [1, 2, 3, 4]
    tr.estimate(LR, draws)  # the last task's unroll ended: it alone restarts
    assert tr.tasks.positions.tolist() == [4, 6, 8, 2] and tr.tasks.seeds.tolist()[3] != 4


def test_a_truncation_never_runs_past_the_end_of_its_unroll():
    tr = TruncatedEstimator(ScalarToy(), 3, 5, 2, stagger=False)
    draws = ToyDraws(0)
    for positions in ([2, 2, 2], [4, 4, 4], [5, 5, 5], [2, 2, 2]):
        tr.estimate(LR, draws)
        assert tr.tasks.positions.tolist() == positions


def test_pes_pairs_share_their_start_and_forget_their_noise_at_restarts():
    """Unroll 2 in truncations of 1. After the restart at the third outer step, each pair's two
    members ran one step from the same fresh network with lr +- sigma eps (so their mean is the
    unperturbed step: the toy's step is linear in lr), and Z holds that step's noise alone."""
    pes = PesEstimator(ScalarToy(), 2, 2, 1, 4, 0.1, stagger=False)
    draws = ToyDraws(0)
    pes.estimate(LR, draws)  # task seeds 1, 2; noise seed 3 (ToyDraws(0): noise seeds count on with the tasks)
    pes.estimate(LR, draws)  # noise seed 4: Z = eps(3) + eps(4)
    z = pair_noise({"lr": ()}, 3, 1)["lr"] + pair_noise({"lr": ()}, 4, 1)["lr"]
    np.testing.assert_allclose(pes.accumulated["lr"][:, 1], [z, z], rtol=1e-14)
    pes.estimate(LR, draws)  # both unrolls ended: task seeds 5, 6, noise seed 7
    assert pes.tasks.seeds.tolist() == [5, 6] and pes.tasks.positions.tolist() == [1, 1]
    for pair in range(2):
        np.testing.assert_allclose(pes.accumulated["lr"][:, pair], pair_noise({"lr": ()}, 7, pair)["lr"], rtol=1e-14)
    for t, seed in enumerate((5, 6)):
        batch, init = draws.task(seed, 2)
        w0, y0 = init["w"][0], batch.y[0, 0, 0, 0]
        unperturbed = w0 - LR["lr"] * (w0 - y0)
        for pair in range(2):
            plus, minus = pes.states[2 * pair].params["w"][t], pes.states[2 * pair + 1].params["w"][t]
            assert plus != minus and (plus + minus) / 2 == pytest.approx(unperturbed, rel=1e-12)


def toy_steps(lr: float, w: float, ys) -> tuple[float, list[float]]:
    """The toy's network after SGD steps on ``ys`` from ``w``, and the hint loss after each step."""
    hints = []
    for y in ys:
        w = w - lr * (w - y)
        hints.append(0.5 * (w - y) ** 2)
    return w, hints


def test_nres_tasks_reuse_their_noise_until_they_restart():
    """Unroll 2 in truncations of 1. Each task's noise seed is drawn when it starts and kept for
    both truncations of its unroll: after two outer steps every member's network is two SGD steps
    with lr +- sigma eps of its task's seed; at the restart the tasks draw new seeds, and the
    estimate is mean over tasks of sum_j eps_{t,j} (L+ - L-) / (P sigma) with that new noise."""
    sigma, shapes = 0.1, {"lr": ()}
    nres = NresEstimator(ScalarToy(), 2, 2, 1, 4, sigma, stagger=False)
    draws = ToyDraws(0)

    def eps(seed, pair):
        return float(pair_noise(shapes, seed, pair)["lr"])

    def check_members(task_seeds, steps):
        for t, seed in enumerate(task_seeds):
            batch, init = draws.task(seed, 2)
            for pair in range(2):
                for sign, member in ((1, 2 * pair), (-1, 2 * pair + 1)):
                    lr = LR["lr"] + sign * sigma * eps(int(nres.noise_seeds[t]), pair)
                    want, _ = toy_steps(lr, init["w"][0], batch.y[0, :steps, 0, 0])
                    assert nres.states[member].params["w"][t] == pytest.approx(want, rel=1e-12)

    nres.estimate(LR, draws)  # task seeds 1, 2; noise seed 3 (ToyDraws(0) counts tasks and noise together)
    first = nres.noise_seeds.tolist()
    assert first == [task_noise_seed(3, 0), task_noise_seed(3, 1)] and first[0] != first[1]
    nres.estimate(LR, draws)  # noise seed 4: the same perturbations for the unroll's second truncation
    assert nres.noise_seeds.tolist() == first
    check_members((1, 2), steps=2)
    loss, grads = nres.estimate(LR, draws)  # both unrolls ended: task seeds 5, 6, noise seed 7
    assert nres.tasks.seeds.tolist() == [5, 6] and nres.tasks.positions.tolist() == [1, 1]
    assert nres.noise_seeds.tolist() == [task_noise_seed(7, 0), task_noise_seed(7, 1)]
    assert not set(nres.noise_seeds.tolist()) & set(first)
    check_members((5, 6), steps=1)
    want, losses = 0.0, []
    for t, seed in enumerate((5, 6)):
        batch, init = draws.task(seed, 2)
        for pair in range(2):
            e = eps(int(nres.noise_seeds[t]), pair)
            plus, minus = (0.7 * toy_steps(LR["lr"] + s * sigma * e, init["w"][0], batch.y[0, :1, 0, 0])[1][0]
                           for s in (1, -1))
            want += e * (plus - minus) / (4 * sigma * 2)
            losses += [plus, minus]
    assert float(grads["lr"]) == pytest.approx(want, rel=1e-10)
    assert loss == pytest.approx(np.mean(losses), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# small pieces and the spec


def test_centered_ranks_and_length_schedules():
    assert centered_ranks(np.array([0.5, 0.1, 0.3, 0.2])).tolist() == pytest.approx([0.5, -0.5, 1 / 6, -1 / 6])
    rng = np.random.default_rng(0)
    lengths = [draw_length(LogUniformLength(low=10, high=1000), rng) for _ in range(4000)]
    assert min(lengths) >= 10 and max(lengths) <= 1000
    assert 0.46 < np.mean(np.array(lengths) < 100) < 0.54  # log-uniform: half the mass in each of the two decades
    assert draw_length(7, rng) == 7


def test_centered_rank_es_points_along_the_gradient():
    graph, protocol, batch, init, (_, exact) = small_case(steps=3)
    es = EsEstimator(EngineLoop(graph, protocol, TRAINED, dtype=np.float64), 2, 3, 64, 1e-3, "centered_rank")
    assert cosine(flat(es_estimate(es, protocol, batch, init, 0), TRAINED), flat(exact, TRAINED)) > 0.8


@pytest.mark.parametrize("estimator,message", [
    ({"kind": "es", "population": 3}, "population 3 is odd"),
    ({"kind": "pes", "unroll": 5, "truncation": 10}, "truncations of 10 inner steps are longer than the longest unroll, 5"),
    ({"kind": "truncated", "unroll": {"kind": "log_uniform", "low": 50, "high": 20}, "truncation": 10},
     "low 50 is above high 20"),
    ({"kind": "truncated", "unroll": 20}, r"meta.estimator.truncation: Field required"),
    ({"kind": "nres", "truncation": 10}, r"meta.estimator.*unroll: Field required"),
    ({"kind": "nope"}, "does not match any of the expected tags: 'bptt', 'truncated', 'es', 'pes', 'nres'"),
])
def test_estimator_specs_name_what_is_wrong(estimator, message):
    with pytest.raises(SpecError, match=message):
        parse_experiment_spec({"graph": sinusoid().model_dump(mode="json"), "meta": {"estimator": estimator}})


def test_distributed_nres_is_refused_by_the_spec():
    graph = sinusoid().model_dump(mode="json")
    estimator = {"kind": "nres", "unroll": 4, "truncation": 2, "population": 4}
    with pytest.raises(SpecError, match="distributed runs support bptt, truncated, es and pes; nres runs in one "
                                        "process so far"):
        parse_experiment_spec({"graph": graph, "meta": {"estimator": estimator}, "distributed": {"workers": 2}})
    assert parse_experiment_spec({"graph": graph, "meta": {"estimator": estimator}}).meta.estimator.kind == "nres"


def test_maml_needs_bptt_and_bptt_is_the_default():
    graph = sinusoid().model_dump(mode="json")
    assert parse_experiment_spec({"graph": graph}).meta.estimator.kind == "bptt"
    with pytest.raises(SpecError, match="only the bptt estimator differentiates so far, not pes"):
        parse_experiment_spec({"graph": graph, "meta": {"maml": True, "estimator": {"kind": "pes", "unroll": 4,
                                                                                     "truncation": 2}}})


# ----------------------------------------------------------------------------------------------
# the trainer: every estimator's state in checkpoints, exact resume, also after SIGKILL

PERSISTENT = {"truncated": {"kind": "truncated", "unroll": 4, "truncation": 2},
              "pes": {"kind": "pes", "unroll": 4, "truncation": 2, "population": 4, "sigma": 0.01},
              "nres": {"kind": "nres", "unroll": 4, "truncation": 2, "population": 4, "sigma": 0.01}}
"""Unrolls of 4 in truncations of 2 over two tasks staggered by 2: every two meta-steps a task restarts."""


def estimator_experiment(estimator: dict, steps: int = 6):
    return tiny_experiment(steps=steps, normalization_rounds=1, estimator=estimator)


def same_checkpoints(a: Path, b: Path) -> None:
    got, want = load_checkpoint(a), load_checkpoint(b)
    assert got[1]["step"] == want[1]["step"] and got[1]["rng"] == want[1]["rng"]
    assert got[1]["estimator"] == want[1]["estimator"]
    assert sorted(got[0]) == sorted(want[0])
    for key in want[0]:
        assert np.array_equal(got[0][key], want[0][key]), key


@pytest.fixture(scope="module")
def uninterrupted_runs(tmp_path_factory):
    """Each estimator's uninterrupted 6-step run folder."""
    folders = {}
    for kind, estimator in list(PERSISTENT.items()) + [("es", {"kind": "es", "population": 4})]:
        folders[kind] = tmp_path_factory.mktemp(kind)
        Trainer(estimator_experiment(estimator), folders[kind]).train(progress=False)
    return folders


@pytest.mark.parametrize("kind", ["truncated", "pes", "nres", "es"])
def test_checkpoints_carry_the_estimator_state_and_resume_exactly(kind, uninterrupted_runs, tmp_path):
    reference = uninterrupted_runs[kind]
    arrays, meta = load_checkpoint(reference / "checkpoint.npz")
    assert meta["estimator"]["kind"] == kind
    if kind != "es":
        assert arrays["estimator/tasks/positions"].shape == (2,) and meta["estimator"]["started"]
        members = 4 if kind in ("pes", "nres") else 1
        assert arrays["estimator/state/params/dense0/w"].shape == (members, 2, 1, 20)
        assert any(k.startswith("estimator/state/carries/") for k in arrays)
    if kind == "pes":
        assert arrays["estimator/accumulated/norm::dense0/w::out_scale"].shape == (2, 2)
    if kind == "nres":  # the tasks' noise seeds, no noise and nothing accumulated
        assert arrays["estimator/noise_seeds"].shape == (2,) and arrays["estimator/noise_seeds"].dtype.kind == "i"
        assert not any(k.startswith("estimator/accumulated/") for k in arrays)
    exp = ExperimentSpec.model_validate_json((reference / "experiment.json").read_text())
    Trainer(exp, tmp_path).train(steps=3, progress=False)
    Trainer.resume(tmp_path / "checkpoint.npz").train(progress=False)
    assert meta_losses(tmp_path) == meta_losses(reference)
    same_checkpoints(tmp_path / "checkpoint.npz", reference / "checkpoint.npz")


@pytest.mark.parametrize("kind", ["truncated", "pes", "nres"])
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(kind, uninterrupted_runs, tmp_path):
    """SIGKILL after meta-step 3 is applied (the checkpoint holds step 2), then while the checkpoint
    of step 6 is written (it holds step 4): each resume continues the persistent tasks exactly."""
    reference = uninterrupted_runs[kind]
    config, folder = tmp_path / "config.json", tmp_path / "run"
    config.write_text((reference / "experiment.json").read_text())
    for point in ("meta-step:3", "checkpoint-write:2", None):
        args = [sys.executable, "-m", "graphflow.cli", "train", str(config), "--out", str(folder), "--no-progress"]
        if (folder / "checkpoint.npz").exists():
            args.append("--resume")
        proc = subprocess.run(args, cwd=REPO, env=dict(os.environ, GRAPHFLOW_KILL_AT=point or ""),
                              capture_output=True, timeout=300)
        assert proc.returncode == (-9 if point else 0), (point, proc.returncode, proc.stderr.decode()[-3000:])
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in log_records(folder)] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in log_records(reference)]
    same_checkpoints(folder / "checkpoint.npz", reference / "checkpoint.npz")


def test_a_checkpoint_of_another_estimator_is_refused_with_the_field_named(uninterrupted_runs, tmp_path):
    config = estimator_experiment({**PERSISTENT["pes"], "population": 8})
    with pytest.raises(GraphflowError, match=r"meta.estimator.population: 4 -> 8.*--accept-checkpoint"):
        Trainer.resume(uninterrupted_runs["pes"] / "checkpoint.npz", tmp_path, config=config)
    with pytest.raises(GraphflowError, match=r"meta.estimator.kind: 'truncated' -> 'pes'"):
        Trainer.resume(uninterrupted_runs["truncated"] / "checkpoint.npz", tmp_path, config=config)


@pytest.mark.parametrize("damage,message", [
    (lambda a, m: a.update({"estimator/tasks/positions": np.array([9, 1])}), r"positions \[9, 1\] lie outside"),
    (lambda a, m: a.pop("estimator/tasks/lengths"), "estimator/tasks/lengths must hold 2 integers"),
    (lambda a, m: a.update({"estimator/state/params/dense0/w": np.zeros((4, 3, 1, 20), np.float32)}),
     r"estimator/state/params/dense0/w has shape \[4, 3, 1, 20\]"),
    (lambda a, m: a.update({"estimator/accumulated/norm::dense0/w::out_scale": np.zeros((2, 5))}),
     r"accumulated/norm::dense0/w::out_scale has shape \[2, 5\]"),
    (lambda a, m: m["estimator"].update(kind="es"), "a 'es' estimator's; the experiment uses 'pes'"),
])
def test_damaged_estimator_state_is_a_clear_error(uninterrupted_runs, tmp_path, damage, message):
    arrays, meta = load_checkpoint(uninterrupted_runs["pes"] / "checkpoint.npz")
    damage(arrays, meta)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, arrays, {k: v for k, v in meta.items() if k != "checksum"})
    with pytest.raises(GraphflowError, match=message):
        Trainer.resume(path)


@pytest.mark.parametrize("seeds,found", [(np.array([3, 4, 5]), r"shape \[3\]"),
                                         (np.array([3.0, 4.0]), "dtype float64"), (None, "missing")])
def test_damaged_nres_noise_seeds_are_a_clear_error(uninterrupted_runs, tmp_path, seeds, found):
    arrays, meta = load_checkpoint(uninterrupted_runs["nres"] / "checkpoint.npz")
    if seeds is None:
        arrays.pop("estimator/noise_seeds")
    else:
        arrays["estimator/noise_seeds"] = seeds
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, arrays, {k: v for k, v in meta.items() if k != "checksum"})
    with pytest.raises(GraphflowError, match=r"estimator/noise_seeds must hold 2 integers \(one noise seed per task "
                                             r"of the outer batch\); found .*" + found):
        Trainer.resume(path)


def test_a_rollback_restarts_the_persistent_tasks(monkeypatch, tmp_path):
    estimate = PesEstimator.estimate
    calls = []

    def poisoned(self, protocol, draws):
        loss, grads = estimate(self, protocol, draws)
        calls.append(1)
        return (float("nan"), grads) if len(calls) == 3 else (loss, grads)

    monkeypatch.setattr(PesEstimator, "estimate", poisoned)
    trainer = Trainer(estimator_experiment(PERSISTENT["pes"], steps=4), tmp_path)
    records = trainer.train(progress=False)
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(np.isfinite(r["meta_loss"]) for r in records)
    assert [r["step"] for r in log_records(tmp_path) if r.get("event") == "rollback"] == [2]
    assert trainer.estimator.tasks.started


@pytest.mark.parametrize("kind", ["truncated", "pes", "nres", "es"])
def test_the_estimators_train_and_resume_on_a_device(kind, device_backend, tmp_path):
    """Arrays that refuse implicit conversion to the host (graphflow.testing.device, or CuPy with
    GRAPHFLOW_TEST_BACKEND=cupy): every move between device and host is explicit."""
    estimator = PERSISTENT.get(kind, {"kind": "es", "population": 2})
    exp = estimator_experiment(estimator, steps=3).model_copy(update={"checkpoint_every": 1})
    Trainer(exp, tmp_path).train(steps=2, progress=False)
    resumed = Trainer.resume(tmp_path / "checkpoint.npz")
    resumed.train(progress=False)
    assert [s for s, _ in meta_losses(tmp_path)] == [1, 2, 3]
    assert all(np.isfinite(loss) for _, loss in meta_losses(tmp_path))


def test_pes_peak_memory_does_not_grow_with_the_unroll():
    """A PES meta-step runs its truncation forward only: at one truncation per unroll (K = T), its
    peak (tracemalloc) at T = 100 is that of T = 10, on the graph and batches of the ES test."""
    graph = gf.build(sinusoid())
    protocol = Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(8, 8)))
    loop = EngineLoop(graph, protocol, protocol.trainable())
    rng = np.random.default_rng(0)
    init = dict(Engine(graph, protocol).init_network(rng, 2).params)
    batches = {steps: batch_for(graph, rng, tasks=2, steps=steps, shots=40) for steps in (10, 100)}

    def peak(steps):
        estimator, draws = PesEstimator(loop, 2, steps, steps, 2, 0.01, stagger=False), FixedDraws(batches[steps], init)
        gc.collect()
        tracemalloc.start()
        try:
            estimator.estimate(protocol, draws)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(10)  # first-call allocations are not the unroll's
    short, long = peak(10), peak(100)
    print(f"PES peak memory: {short / 2**20:.2f} MiB at T = K = 10, {long / 2**20:.2f} MiB at T = K = 100")
    assert long < 1.2 * short, (short, long)
