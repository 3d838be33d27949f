"""Recording runs: the inspected values against the engine's own parameters, the reference trace,
finite differences; runs added to mid-way, saved and reloaded; memory that does not grow with the network."""

from __future__ import annotations

import re

import numpy as np
import pytest

from graphflow.backend import get_backend
from graphflow.engine import Engine
from graphflow.engine.record import Recorder
from graphflow.errors import GraphflowError
from graphflow.inspect import load_run
from graphflow.inspect.run import held_bytes
from graphflow.interop.mplp import load_checkpoint
from graphflow.interop.traces import initial_params, read_cases, replay_case
from graphflow.recording import Inspector, record_run

SINUSOID = "sinusoid_weights_00035869.npy"
TRACE = "sinusoid_5x10_trace.npz"


@pytest.fixture
def reference_run(reference_dir):
    """The sinusoid checkpoint replaying case0 of the reference trace, recorded through an Inspector
    handed to the trace replay in place of the engine."""
    graph, protocol = load_checkpoint("sinusoid", reference_dir / SINUSOID)
    engine = Engine(graph, protocol)
    case = read_cases(reference_dir / TRACE)["case0"]
    params = initial_params(graph, case, None, "case0")
    inspector = Inspector(engine, ["dense4/w[*,0]", "dense4/b[0]"], gradients=True)
    replayed = replay_case(inspector, case, params)
    return inspector.to_run(), params, replayed, reference_dir


def test_inspected_update_equals_the_engines_own_weight_change(reference_run):
    run, params, replayed, reference_dir = reference_run
    reference = np.load(reference_dir / TRACE)
    assert run.steps == 5 and len(run.select("dense4/w[*,0]")) == 20
    before_w, before_b = params["dense4/w"], params["dense4/b"]
    for step in range(5):
        after_w, after_b = replayed[f"step{step}_W3"], replayed[f"step{step}_b3"]
        # the engine's replay reproduces the reference trace, so these are its real parameters
        np.testing.assert_allclose(after_w, reference[f"case0/step{step}_W3"], atol=1e-4)
        for i in range(20):
            update = run.node(f"dense4/w[{i},0]")["update"].sel(step=step).values
            np.testing.assert_allclose(update, [after_w[i, 0] - before_w[i, 0]], atol=1e-6)
        np.testing.assert_allclose(run.node("dense4/b[0]")["update"].sel(step=step).values,
                                   [after_b[0] - before_b[0]], atol=1e-6)
        before_w, before_b = after_w, after_b


def test_a_bias_sends_its_outgoing_message_unchanged_to_each_of_its_weights(reference_run, tmp_path):
    run, *_ = reference_run
    for r in (run, load_run(run.save(tmp_path / "run.npz"))):
        sent = r.node("dense4/b[0]")["message_out"]
        assert sent.dims == ("step", "task", "example", "channel") and sent.shape == (5, 1, 10, 8)
        for i in range(20):
            np.testing.assert_array_equal(r.node(f"dense4/w[{i},0]")["message_in"].values, sent.values)


def test_recorded_states_and_loss_match_the_trace(reference_run):
    run, params, replayed, reference_dir = reference_run
    reference = np.load(reference_dir / TRACE)
    np.testing.assert_allclose(run.node("dense4/w[3,0]").value.values[0, 0], params["dense4/w"][3, 0])
    for step in range(5):
        np.testing.assert_allclose(run.loss.values[step, 0], reference[f"case0/step{step}_loss"], atol=1e-5)
        np.testing.assert_allclose(run.prediction.values[step, 0], reference[f"case0/step{step}_pred"], atol=1e-5)
    grad = run.node("dense4/w[3,0]")["gradient"]
    assert grad.shape == (5, 1) and np.isfinite(grad.values).all()


def test_gradients_are_the_backprop_gradients_of_the_same_loss(make_engine, batches):
    """Oracle: central finite differences of the mean loss, in float64."""
    engine = make_engine(backend=get_backend("numpy", np.float64))
    xs, ys = batches(steps=1)
    state = engine.init_network(np.random.default_rng(3), init_std=0.5)
    _, run = record_run(engine, state, xs, ys, ["dense0/w[0,*]", "dense2/b[0]"], gradients=True)

    def mean_loss(params):
        fwd = engine.forward(type(state)(params), xs[0], ys[0])
        return float(next(iter(fwd.losses.values())).mean())

    eps = 1e-6
    for nid, key, index in (("dense0/w[0,2]", "dense0/w", (0, 0, 2)), ("dense2/b[0]", "dense2/b", (0, 0))):
        plus, minus = dict(state.params), dict(state.params)
        plus[key], minus[key] = state.params[key].copy(), state.params[key].copy()
        plus[key][index] += eps
        minus[key][index] -= eps
        numeric = (mean_loss(plus) - mean_loss(minus)) / (2 * eps)
        np.testing.assert_allclose(run.node(nid)["gradient"].values[0, 0], numeric, rtol=1e-5, atol=1e-9)


def test_patterns_added_between_steps_are_recorded_from_then_on(engine, batches):
    xs, ys = batches(steps=3)
    inspector = Inspector(engine, "dense2/w[0,0]")
    state = engine.init_network(np.random.default_rng(0))
    state, _ = inspector.step(state, xs[0], ys[0])
    inspector.add("dense2/w[1,0],relu1/act[*]")
    for k in (1, 2):
        state, _ = inspector.step(state, xs[k], ys[k])
    run = inspector.to_run()
    assert run.node("dense2/w[0,0]").recorded.tolist() == [True, True, True]
    late = run.node("dense2/w[1,0]")
    assert late.recorded.tolist() == [False, True, True]
    assert np.isnan(late["update"].values[0]).all() and np.isfinite(late["update"].values[1:]).all()
    assert run.node("relu1/act[2]")["message_out"].shape == (3, 1, 6, 3)
    assert [p["from_step"] for p in run.header["patterns"]] == [0, 1, 1]
    with pytest.raises(GraphflowError, match="matches no node"):
        inspector.add("dense9/w[*,*]")
    with pytest.raises(GraphflowError, match="was not recorded"):
        run.node("dense0/w[0,0]")


def test_every_field_has_named_axes_and_named_channels(tiny_run):
    w = tiny_run.node("dense2/w[1,0]")
    assert w["learner_input"].labels("channel") == ("m0", "m1", "m2", "w", "x")
    assert w["carry"].labels("channel") == ("update", "h0", "h1", "h2", "m0", "m1", "m2")
    assert w["update_raw"].dims == ("step", "task", "example") and w["update"].dims == ("step", "task")
    # channel 0 of the carry is the raw (per-example) update of a stateful learner
    np.testing.assert_array_equal(w["carry"].sel(channel="update").values, w["update_raw"].values)
    act = tiny_run.node("relu1/act[0]")
    assert act["states"].labels("channel") == ("z",) and "update" not in act
    assert tiny_run.header["skipped"] == {"dense2/sum": "neuron sums run no learner: their bias nodes receive and "
                                                        "send the messages"}


def test_a_run_file_round_trips(tiny_run, tmp_path):
    path = tiny_run.save(tmp_path / "run.npz")
    back = load_run(path)
    assert back.node_ids() == tiny_run.node_ids() and back.header["patterns"] == tiny_run.header["patterns"]
    for nid in ("dense2/w[2,0]", "relu1/act[1]", "dense2/b[0]"):
        for name, a in tiny_run.node(nid).fields.items():
            np.testing.assert_array_equal(back.node(nid)[name].values, a.values)
            assert back.node(nid)[name].coords == a.coords
    for group, stats in tiny_run.groups.items():
        for name, a in stats.items():
            np.testing.assert_array_equal(back.groups[group][name], a)
    np.testing.assert_array_equal(back.loss.values, tiny_run.loss.values)
    assert back.graph.stats() == tiny_run.graph.stats()
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(GraphflowError, match="unreadable run file"):
        load_run(tmp_path / "other.npz")


def _recorder_bytes(rec: Recorder) -> int:
    return sum(held_bytes(a) for step in rec.steps for fields in step.values() for a in fields.values())


@pytest.mark.parametrize("what", ["recorder", "run"])
def test_a_one_node_recording_does_not_grow_with_the_network(make_engine, batches, what):
    """The recorder and the run keep the selected node only, never a copy of (a part of) the network."""
    xs, ys = batches(steps=3)
    sizes = []
    for hidden in (4, 400):
        engine = make_engine(hidden)
        state = engine.init_network(np.random.default_rng(0))
        if what == "recorder":
            rec = Recorder(engine.graph, "dense2/w[0,0]")
            engine.run(state, xs, ys, rec)
            sizes.append(_recorder_bytes(rec))
        else:
            _, run = record_run(engine, state, xs, ys, "dense2/w[0,0]", gradients=True)
            sizes.append(run.nbytes())
    assert sizes[0] == sizes[1] and sizes[0] < 20_000, sizes


def test_an_inspector_runs_wherever_an_engine_does(engine):
    from graphflow.evaluation import evaluate_sinusoid

    inspector = Inspector(engine, "dense2/b[0]")
    plain = evaluate_sinusoid(engine, tasks=3, steps=2)
    recorded = evaluate_sinusoid(inspector, tasks=3, steps=2)
    assert recorded.mean == plain.mean
    assert inspector.to_run().node("dense2/b[0]")["update"].shape == (2, 3)


def test_group_statistics_cover_every_node_of_the_group(engine, batches):
    """Oracle: quantiles of the parameter change of the whole group, from the states before and after."""
    from graphflow.inspect import group_update_distribution
    from graphflow.inspect.run import QUANTILES

    xs, ys = batches(steps=2, tasks=2)
    state = engine.init_network(np.random.default_rng(0), tasks=2)
    inspector = Inspector(engine, "loss3/loss[0]")  # no weight recorded: the statistics still cover all of them
    deltas = []
    for k in range(2):
        new, _ = inspector.step(state, xs[k], ys[k])
        deltas.append(np.ravel(new.params["dense0/w"] - state.params["dense0/w"]))
        state = new
    dist = group_update_distribution(inspector.to_run(), "dense0/w")["dense0/w"]
    for k, delta in enumerate(deltas):
        np.testing.assert_allclose(dist["quantiles"].values[k], np.quantile(delta, QUANTILES), rtol=1e-5)
        assert dist["histogram"].values[k].sum() == delta.size == 8


def test_inspector_refuses_a_second_recorder(engine, batches):
    xs, ys = batches(steps=1)
    state = engine.init_network(np.random.default_rng(0))
    with pytest.raises(GraphflowError, match="records by itself"):
        Inspector(engine, "dense2/b[0]").step(state, xs[0], ys[0], recorder=Recorder(engine.graph, "dense2/b[0]"))
    with pytest.raises(GraphflowError, match="nothing recorded yet"):
        Inspector(engine, "dense2/b[0]").to_run()


def test_mnist_graph_records_shared_learner_groups():
    """The MNIST preset shares one weight learner across layers: groups pool both layers."""
    from graphflow.interop.mplp import preset_protocol

    graph, protocol = preset_protocol("mnist")
    engine = Engine(graph, protocol)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 144)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[[[1, 7]]]
    _, run = record_run(engine, engine.init_network(rng), x[None], y[None], "dense2/w[3,*],softmax3/unit[*]",
                        gradients=True)
    assert run.node("dense2/w[3,7]").group == "W" and set(run.groups) == {"W", "b"}
    assert run.groups["W"]["histogram"][0].sum() == 144 * 50 + 50 * 10
    assert run.node("softmax3/unit[4]")["states"].labels("channel") == graph.slots["softmax3/unit"].states


@pytest.mark.parametrize("name", ["Inspector", "record_run"])
def test_graphflow_inspect_says_where_the_recorder_went(name):
    import graphflow.inspect
    import graphflow.recording

    moved = f"graphflow.inspect.{name} moved to graphflow.recording.{name}: recording runs the engine, inspection reads runs"
    with pytest.raises(AttributeError, match=re.escape(moved)):
        getattr(graphflow.inspect, name)
    assert not hasattr(graphflow.inspect, "no_such_name") and callable(getattr(graphflow.recording, name))
