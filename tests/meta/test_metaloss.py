"""Meta-gradients of whole unrolls against central finite differences, and recomputation.

The oracle is the meta-loss itself: :func:`meta_loss` run on plain float64 arrays, moved one
protocol (or initial-network) entry at a time by +-eps. The tape side is :class:`MetaGradient`
exactly as training uses it (float64 here).

Kinks: the inner networks of the random cases use relu and step, and stateless learners (and
some stateful ones) use relu inside. The finite-difference engine runs under a
:class:`KinkMonitor` (and a watcher of step inputs), and every check first asserts that no kink
input came within ``MARGIN`` = 1e-5 of its kink along the whole unroll. A kink input moves by
eps = 1e-6 times its sensitivity to the moved entry, and those sensitivities are O(1) products of
standardized streams, kernels and update scales, so the differences never step across a kink.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

import graphflow as gf
from graphflow.autodiff.gradcheck import KinkMonitor, numeric_gradient, pick_entries
from graphflow.backend import get_backend
from graphflow.engine import Engine, NetState
from graphflow.graph import kinds
from graphflow.learners import Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient, meta_loss
from graphflow.reference.random_graphs import random_case, random_data, random_protocol

BE64 = get_backend("numpy", np.float64)
MARGIN = 1e-5
ENTRIES = 24


@pytest.fixture
def monitor(monkeypatch) -> KinkMonitor:
    """A kink monitor that also sees the inputs of step activations (a jump at 0)."""
    mon = KinkMonitor(np)
    step = kinds.ACTIVATIONS["step"]

    def watched_step(xp, z):
        if isinstance(xp, KinkMonitor):
            xp._see(abs(np.asarray(z)))
        return step(xp, z)

    monkeypatch.setitem(kinds.ACTIVATIONS, "step", watched_step)
    return mon


def sinusoid_like(hidden=6):
    return gf.build(gf.stack(1, gf.Dense(hidden), gf.Tanh(), gf.Dense(hidden), gf.ReLU(), gf.Dense(1), gf.L2Loss()))


def batch_for(graph, rng, tasks, steps, shots, heldout=5) -> MetaBatch:
    xs, ys = random_data(graph, rng, steps, shots, tasks)   # [steps, T, B, n]
    xe, ye = random_data(graph, rng, 1, heldout, tasks)
    one = len(graph.inputs) == 1 and len(graph.targets) == 1

    def tasks_first(data):
        data = {k: np.swapaxes(v, 0, 1) for k, v in data.items()}
        return next(iter(data.values())) if one else data

    def held(data):
        data = {k: v[0] for k, v in data.items()}
        return next(iter(data.values())) if one else data

    return MetaBatch(tasks_first(xs), tasks_first(ys), held(xe), held(ye))


def fd_meta_loss(graph, protocol, batch, init, monitor, hint_weight=0.7, heldout_weight=0.3):
    """``fn(values)``: the plain float64 meta-loss with the given protocol / init entries replaced."""
    engine = Engine(graph, protocol, replace(BE64, xp=monitor))
    learners, norms = engine.learner_params, engine.norm_params
    shapes = engine.parameter_shapes()

    def fn(values):
        engine.learner_params = {g: dict(p) for g, p in learners.items()}
        engine.norm_params = {g: dict(p) for g, p in norms.items()}
        start = dict(init)
        for key, v in values.items():
            kind, group, *name = key.split("::")
            if kind == "init":
                start[group] = v
            else:
                (engine.learner_params if kind == "learner" else engine.norm_params)[group][name[0]] = v
        params = {k: np.broadcast_to(v, (batch.tasks,) + shapes[k]) if np.shape(v) == shapes[k] else v
                  for k, v in start.items()}
        return meta_loss(engine, NetState(params), batch, hint_weight, heldout_weight)

    return fn


def check_unroll(graph, protocol, batch, init, monitor, maml=False, count=ENTRIES, seed=0):
    """MetaGradient vs central differences at ``count`` random entries (init entries too, in MAML)."""
    rng = np.random.default_rng(seed)
    trainable = protocol.trainable()
    inputs = {k: np.asarray(v, np.float64) for k, v in protocol.flat().items() if k in trainable}
    entries = pick_entries(inputs, count - (8 if maml else 0), rng)
    if maml:
        init_inputs = {f"init::{k}": np.asarray(v, np.float64) for k, v in init.items()}
        entries += pick_entries(init_inputs, 8, rng)
        inputs.update(init_inputs)
    fn = fd_meta_loss(graph, protocol, batch, init, monitor)
    monitor.margin = float("inf")
    value = float(fn({}))
    assert monitor.margin > MARGIN, f"a kink input came within {monitor.margin:.2g} of its kink"

    mg = MetaGradient(graph, protocol, dtype=np.float64, trainable=trainable + (
        [f"init::{k}" for k in init] if maml else []))
    loss, grads = mg(protocol, batch, init, init_trainable=maml)
    assert abs(loss - value) <= 1e-12 * max(1.0, abs(value))
    analytic = np.array([grads[name][idx] for name, idx in entries])
    numeric = numeric_gradient(fn, inputs, entries, BE64)
    tol = 1e-8 * max(1.0, abs(value)) + 1e-4 * np.abs(numeric)
    bad = np.nonzero(np.abs(analytic - numeric) > tol)[0]
    assert not len(bad), "\n".join(f"{entries[k]}: tape {analytic[k]:.9g}, differences {numeric[k]:.9g}" for k in bad)
    # not vacuous (a learner whose messages only reach weights behind a step activation has a zero gradient)
    assert np.sum(np.abs(numeric) > 1e-9) >= len(entries) // 4
    return grads


# ----------------------------------------------------------------------------------------------
# whole unrolls


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
@pytest.mark.parametrize("maml", [False, True], ids=["pool", "maml"])
def test_two_step_unroll_on_a_stack(kind, maml, monitor):
    graph = sinusoid_like()
    rng = np.random.default_rng(1)
    spec = gf.LearnerSpec(kind=kind, message_size=3, hidden=2, mlp_hidden=(8, 6))
    protocol = random_protocol(graph, spec, rng)
    batch = batch_for(graph, rng, tasks=2, steps=2, shots=4)
    engine = Engine(graph, protocol)
    if maml:  # one shared initial network, differentiated too
        init = {k: v[0] for k, v in engine.init_network(rng, 1, init_std=0.7).params.items()}
    else:
        init = dict(engine.init_network(rng, 2, init_std=0.7).params)
    check_unroll(graph, protocol, batch, init, monitor, maml=maml)


# (seed, freeform): random graphs covering two inputs and two losses (dict batches), skip
# connections, masked and edge-list blocks, hidden softmaxes, step / mixed activations, every loss,
# stateful and stateless learners with mean and sum aggregation and every sharing mode.
RANDOM_CASES = [(7, True), (4, True), (5, True), (3, True), (0, True), (0, False), (4, False), (11, False), (8, False)]


@pytest.mark.parametrize("seed,freeform", RANDOM_CASES)
def test_two_step_unroll_on_random_graphs(seed, freeform, monitor):
    case = random_case(seed, freeform=freeform, tasks=2)
    rng = np.random.default_rng(seed)
    batch = batch_for(case.graph, rng, tasks=2, steps=2, shots=case.batch)
    maml = seed % 2 == 1
    init = {k: v[0] for k, v in case.params.items()} if maml else case.params
    check_unroll(case.graph, case.protocol, batch, init, monitor, maml=maml, seed=seed)


def test_the_meta_loss_weights_hint_and_held_out_losses():
    graph = sinusoid_like()
    rng = np.random.default_rng(2)
    protocol = random_protocol(graph, gf.LearnerSpec(message_size=2, hidden=1, mlp_hidden=(5, 4)), rng)
    batch = batch_for(graph, rng, tasks=3, steps=2, shots=4)
    engine = Engine(graph, protocol, BE64)
    state = engine.init_network(rng, 3)
    hint = meta_loss(engine, state, batch, 1.0, 0.0)
    held = meta_loss(engine, state, batch, 0.0, 1.0)
    total, per_task, final = meta_loss(engine, state, batch, 0.7, 0.3, return_parts=True)
    assert np.isclose(total, 0.7 * hint + 0.3 * held, rtol=1e-12) and per_task.shape == (3,)
    assert final.step == 2 and np.isclose(per_task.mean(), total, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# recomputation


def recompute_setup(kind="stateful", steps=5, tasks=2, seed=3):
    graph = sinusoid_like(hidden=5)
    rng = np.random.default_rng(seed)
    protocol = random_protocol(graph, gf.LearnerSpec(kind=kind, message_size=3, hidden=2, mlp_hidden=(8, 6)), rng)
    batch = batch_for(graph, rng, tasks=tasks, steps=steps, shots=4)
    init = dict(Engine(graph, protocol).init_network(rng, tasks, init_std=0.5).params)
    return graph, protocol, batch, init


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
@pytest.mark.parametrize("maml", [False, True], ids=["pool", "maml"])
def test_recomputation_gives_the_same_gradient(kind, maml):
    graph, protocol, batch, init = recompute_setup(kind)
    if maml:
        init = {k: v[0] for k, v in init.items()}
    trainable = protocol.trainable() + ([f"init::{k}" for k in init] if maml else [])
    full_loss, full = MetaGradient(graph, protocol, dtype=np.float64, trainable=trainable)(
        protocol, batch, init, init_trainable=maml)
    for every in (1, 2, 3, 5, 8):
        mg = MetaGradient(graph, protocol, dtype=np.float64, trainable=trainable, recompute_every=every)
        loss, grads = mg(protocol, batch, init, init_trainable=maml)
        assert abs(loss - full_loss) <= 1e-12 * abs(full_loss), every
        assert list(grads) == list(full)
        for key in full:
            np.testing.assert_allclose(grads[key], full[key], rtol=1e-10, atol=1e-14, err_msg=f"{key}, every {every}")


def test_recomputation_holds_one_segment_in_memory():
    graph, protocol, batch, init = recompute_setup(steps=8, tasks=2)

    def peak(every):
        mg = MetaGradient(graph, protocol, recompute_every=every)
        mg(protocol, batch, init)  # warm-up: first-call allocations are not the unroll's
        tracemalloc.start()
        try:
            mg(protocol, batch, init)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    full, segments = peak(None), peak(2)
    assert segments < 0.5 * full, (segments, full)


def test_recompute_every_must_be_positive():
    graph = sinusoid_like()
    with pytest.raises(ValueError, match="positive"):
        MetaGradient(graph, Protocol.init(graph), recompute_every=0)


def test_initial_networks_are_checked():
    graph = sinusoid_like()
    protocol = Protocol.init(graph, gf.LearnerSpec(message_size=2, hidden=1, mlp_hidden=(5, 4)))
    batch = batch_for(graph, np.random.default_rng(0), tasks=2, steps=1, shots=3)
    init = dict(Engine(graph, protocol).init_network(np.random.default_rng(0), 2).params)
    mg = MetaGradient(graph, protocol)
    with pytest.raises(ValueError, match=r"missing \['dense0/b'\]"):
        mg(protocol, batch, {k: v for k, v in init.items() if k != "dense0/b"})
    with pytest.raises(ValueError, match=r"dense0/w: shape \[3, 1, 5\]"):
        mg(protocol, batch, {**init, "dense0/w": np.zeros((3, 1, 5))})
