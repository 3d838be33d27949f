"""The population as one more batch axis of the engine: P protocols (per-member learner and
normalization parameters) on P x T tasks give, member by member, what each protocol gives on its
own T tasks (float64 to 1e-10, float32 to 1e-5): stateful and stateless learners, several learner
groups, sparse blocks, shared normalization, blocked calls on threads, data of T tasks or of one.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.engine import Engine
from graphflow.errors import DataError, GraphflowError
from graphflow.learners import Protocol
from graphflow.meta.estimators import EngineLoop
from graphflow.presets import sinusoid
from tests.engine.test_blocking import _graph as blocking_graph
from tests.meta.test_metaloss import batch_for

MEMBERS, TASKS = 3, 2


def graphs():
    """(name, graph, learner spec): the sinusoid (GRU learners, one group per part), a stateless
    classifier whose weights share one learner and biases another, a masked free-form graph."""
    return [
        ("sinusoid", gf.build(sinusoid()), gf.LearnerSpec(hidden=3, message_size=2, mlp_hidden=(6, 5))),
        ("shared-stateless", gf.build(gf.stack(5, gf.Dense(4), gf.Sigmoid(), gf.Dense(3), gf.Softmax(),
                                               gf.CrossEntropy(), sharing="kind")),
         gf.LearnerSpec(kind="stateless", message_size=2, mlp_hidden=(6, 5))),
        ("sparse-shared-norm", blocking_graph(sparse=True), gf.LearnerSpec(message_size=3, hidden=2)),
    ]


def members_of(protocol: Protocol, count: int, rng, scale: float = 0.3) -> list[dict]:
    """``count`` perturbations of every learner and normalization entry (flat keys -> arrays)."""
    flat = protocol.flat()
    return [{k: (a + scale * rng.standard_normal(a.shape) * (np.abs(a) + 0.1)).astype(a.dtype) for k, a in flat.items()}
            for _ in range(count)]


def one_by_one(loop: EngineLoop, members: list[dict], batch, init, hint_scale=0.2, heldout_scale=1.0):
    ends, terms = [], []
    for params in members:
        end, t = loop.run({k: loop.base.asarray(v) for k, v in params.items()}, loop.fresh(init), batch,
                          hint_scale, heldout_scale)
        ends.append(end)
        terms.append(loop.base.to_numpy(t))
    return ends, np.stack(terms)


def stacked(loop: EngineLoop, members: list[dict]) -> dict:
    return {k: loop.base.asarray(np.stack([m[k] for m in members])) for k in members[0]}


def case(name, graph, spec, dtype, engine_options=None):
    protocol = Protocol.init(graph, spec, seed=4)
    loop = EngineLoop(graph, protocol, sorted(protocol.flat()), dtype=dtype, **(engine_options or {}))
    loop.parameters(protocol)
    rng = np.random.default_rng(1)
    batch = batch_for(graph, rng, tasks=TASKS, steps=3, shots=4)
    init = {k: np.asarray(v, dtype) for k, v in Engine(graph, protocol).init_network(rng, TASKS, 0.5).params.items()}
    return loop, protocol, batch, init, members_of(protocol, MEMBERS, rng)


@pytest.mark.parametrize("name,graph,spec", graphs(), ids=[g[0] for g in graphs()])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_a_population_run_is_each_member_run_on_its_own(name, graph, spec, dtype, tol):
    loop, _, batch, init, members = case(name, graph, spec, dtype)
    ends, expected = one_by_one(loop, members, batch, init)
    end, terms = loop.run_population(stacked(loop, members), loop.fresh(init, MEMBERS), batch, 0.2, 1.0)
    assert terms.shape == (MEMBERS, TASKS)
    np.testing.assert_allclose(loop.base.to_numpy(terms), expected, rtol=tol, atol=tol * 1e-3)
    for m, own in enumerate(ends):
        for key, a in own.params.items():
            np.testing.assert_allclose(end.params[key][m * TASKS:(m + 1) * TASKS], a, rtol=tol, atol=tol * 0.1,
                                       err_msg=f"member {m} {key}")
        for key, a in own.carries.items():
            np.testing.assert_allclose(end.carries[key][m * TASKS:(m + 1) * TASKS], a, rtol=tol, atol=tol * 0.1,
                                       err_msg=f"member {m} carry {key}")
    # the members differ: a population run is not one protocol copied
    assert np.ptp(expected[:, 0]) > 1e-6
    # afterwards the loop runs one protocol again, exactly as before
    _, again = one_by_one(loop, members[:1], batch, init)
    np.testing.assert_array_equal(again, expected[:1])


@pytest.mark.parametrize("options", [dict(threads=2), dict(threads=1)], ids=["2-threads", "1-thread"])
def test_member_blocks_on_threads_match_one_piece(options):
    """Small blocks: several members per block for small calls, one member split over its nodes
    for large ones; per-task hint and held-out weights (a truncated estimator's) per member."""
    name, graph, spec = graphs()[0]
    loop, _, batch, init, members = case(name, graph, spec, np.float64)
    blocked, _, _, _, _ = case(name, graph, spec, np.float64)
    blocked.engine.block_rows, blocked.engine.min_block_rows, blocked.engine.threads = 200, 0, options["threads"]
    whole, _, _, _, _ = case(name, graph, spec, np.float64)
    whole.engine.block_rows = 10**9
    hint = whole.base.asarray([0.1, 0.3])
    held = whole.base.asarray([0.0, 1.0])
    _, expected = one_by_one(whole, members, batch, init, hint, held)
    for loop in (whole, blocked):
        _, terms = loop.run_population(stacked(loop, members), loop.fresh(init, MEMBERS), batch, hint, held)
        np.testing.assert_allclose(terms, expected, rtol=1e-10)
    calls = []
    original = blocked.engine._run_blocks
    blocked.engine._run_blocks = lambda fn, blocks: calls.append(blocks) or original(fn, blocks)
    blocked.run_population(stacked(blocked, members), blocked.fresh(init, MEMBERS), batch, hint, held)
    # one member split over its nodes; several members in one block
    assert any(len(b) > 1 and all(block[0][1] - block[0][0] == 1 for block in b) for b in calls)
    assert any(b[0][0][1] - b[0][0][0] > 1 for b in calls)


def test_shared_entries_and_data_of_one_task():
    """An entry given without the member axis is every member's; data of one task is every task's."""
    name, graph, spec = graphs()[1]
    loop, protocol, batch, init, members = case(name, graph, spec, np.float64)
    eng = loop.engine
    kernel = loop.base.asarray(members[0]["learner::W::g.dense0.kernel"])
    state = loop.fresh(init, MEMBERS)
    x, y = batch.at_step(0)
    eng.set_member_parameters({"W": {"g.dense0.kernel": np.stack([kernel] * MEMBERS)}}, {}, MEMBERS)
    _, expected = eng.step(state, x, y)
    eng.set_member_parameters({"W": {"g.dense0.kernel": kernel}}, {}, MEMBERS)
    _, shared = eng.step(state, x, y)
    np.testing.assert_array_equal(shared.loss, expected.loss)
    _, one = eng.step(state, x[:1], y[:1])
    _, every = eng.step(state, np.concatenate([x[:1]] * TASKS * MEMBERS), np.concatenate([y[:1]] * TASKS * MEMBERS))
    np.testing.assert_allclose(one.loss, every.loss, rtol=1e-12)
    with pytest.raises(ValueError, match=r"disagree on the number of members \[2, 3\]"):
        params = stacked(loop, members)
        params["learner::W::g.dense0.kernel"] = params["learner::W::g.dense0.kernel"][:2]
        loop.run_population(params, state, batch, 0.2, 1.0)


def test_per_member_parameters_are_refused_where_they_cannot_run():
    name, graph, spec = graphs()[0]
    loop, protocol, batch, init, members = case(name, graph, spec, np.float64)
    eng = loop.engine
    with pytest.raises(ValueError, match=r"learner::dense0/w::gru.b_next has shape \[2, 6\]; 3 members need \[3, 6\]"):
        eng.set_member_parameters({"dense0/w": {"gru.b_next": np.zeros((2, 6))}}, {}, 3)
    with pytest.raises(ValueError, match="has no learner group 'nope'"):
        eng.set_member_parameters({"nope": {}}, {}, 3)
    with pytest.raises(ValueError, match="norm::dense0/w has no entry 'scale'"):
        eng.set_member_parameters({}, {"dense0/w": {"scale": np.zeros(3)}}, 3)
    eng.set_member_parameters({}, {}, 3)
    x, y = batch.at_step(0)
    with pytest.raises(DataError, match="not a multiple of its 3 population members"):
        eng.step(eng.init_network(np.random.default_rng(0), 4), x, y)
    with pytest.raises(DataError, match="2 tasks, but the network holds 3 members x 3 tasks"):
        eng.step(eng.init_network(np.random.default_rng(0), 9), x, y)
    from graphflow.engine.record import Recorder

    with pytest.raises(GraphflowError, match="inspection hooks record one protocol"):
        eng.step(eng.init_network(np.random.default_rng(0), 6), x, y, recorder=Recorder(graph, ["dense0/w[0,0]"]))
    traced = loop._traced_engine()
    with pytest.raises(GraphflowError, match="forward only"):
        traced.set_member_parameters({}, {}, 3)
