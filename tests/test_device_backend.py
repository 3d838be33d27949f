"""The device stand-in (:mod:`graphflow.testing.device`) behaves as CuPy's arrays do, and the
library runs on device arrays with plain numpy's numbers.

The first part checks the stand-in's namespace against what CuPy does (the behaviour its module
docstring lists). The second runs the engine, the meta-gradient, a trainer, the evaluations, the
backprop baselines and inspection under the ``device_backend`` fixture (``tests/conftest.py``:
every backend asked for as "numpy" is the stand-in, or CuPy with ``GRAPHFLOW_TEST_BACKEND=cupy``)
and compares what they hand back with the same run on plain numpy: within 1e-6 on the stand-in
(numpy's arithmetic, learner calls in one piece instead of cache-sized blocks), within 1e-4 on
CuPy (float32 on a GPU sums in other orders).
"""

from __future__ import annotations

import itertools
import re
from contextlib import contextmanager

import numpy as np
import pytest

import graphflow as gf
from graphflow.autodiff import Tape, grad, traced_backend
from graphflow.backend import BACKENDS, get_backend
from graphflow.engine import Engine
from graphflow.learners import Protocol
from graphflow.learners.protocol import ParamKey
from graphflow.reference.random_graphs import random_case, random_data
from graphflow.testing.device import IMPLICIT_CONVERSION, DeviceArray, numpy_device_backend, xp
from graphs import mnist, skip_two_losses

PLAIN_NUMPY = BACKENDS["numpy"]
"""numpy's own factory, taken when this module is imported (before any fixture swaps it)."""

SMALL_LEARNER = dict(hidden=2, message_size=2, mlp_hidden=(8, 8))


@contextmanager
def plain_numpy():
    """Inside the block "numpy" is plain numpy again (the reference run), with the learner cells'
    elementwise chains as array operations, as on a device (the compiled CPU kernels, when
    installed, round differently, and the normalization's large scales magnify that)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BACKENDS, "numpy", PLAIN_NUMPY)
        patch.setenv("GRAPHFLOW_KERNELS", "numpy")
        yield


def on_plain_numpy_and_device(run):
    """(``run()`` on plain numpy, ``run()`` on the device the fixture registered)."""
    with plain_numpy():
        want = run()
    return want, run()


def assert_same(got, want, be, where: str = "result") -> None:
    """``got`` (host values from a device run) equals ``want`` within the backend's tolerance;
    dicts, lists and tuples are compared entry by entry."""
    if isinstance(want, dict):
        assert set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], be, f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: {len(got)} entries, expected {len(want)}"
        for k, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, be, f"{where}[{k}]")
    elif isinstance(want, str):
        assert got == want, where
    else:
        assert isinstance(got, (np.ndarray, np.generic, float, int, bool)), \
            f"{where}: a {type(got).__name__} where the library hands back host values"
        tol = 1e-4 if be.name == "cupy" else 1e-6
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=where)


def host(be, arrays: dict) -> dict:
    return {k: be.to_numpy(v) for k, v in arrays.items()}


def at_step(data: dict, s: int) -> dict:
    return {name: a[s] for name, a in data.items()}


# ----------------------------------------------------------------------------------------------
# The stand-in's namespace, against what CuPy does


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda a: np.asarray([a, a]),
                                     lambda a: np.random.default_rng(0).permutation(a)],
                         ids=["np.asarray", "np.array", "a list of them", "a numpy routine that converts"])
def test_implicit_conversion_to_numpy_raises_cupys_type_error(convert):
    with pytest.raises(TypeError, match=re.escape(IMPLICIT_CONVERSION)):
        convert(xp.asarray(np.arange(6.0).reshape(2, 3)))


def test_get_is_the_explicit_transfer_and_asarray_copies_host_data():
    data = np.arange(3.0)
    d = xp.asarray(data)
    data[0] = 9.0  # the device copy does not see the host change
    back = d.get()
    back[1] = 7.0  # nor the host copy's
    assert type(back) is np.ndarray and back.tolist() == [0.0, 7.0, 2.0]
    assert d.tolist() == [0.0, 1.0, 2.0]
    assert numpy_device_backend().to_numpy(d).tolist() == [0.0, 1.0, 2.0]


def test_scalar_conversions_go_through_get_as_on_cupy():
    d = xp.asarray([1.5, 2.5])
    assert float(d[0]) == 1.5 and int(d[1]) == 2 and bool(d[0]) and d.sum().item() == 4.0 and float(d.sum()) == 4.0
    assert d.tolist() == [1.5, 2.5] and repr(d) == repr(np.array([1.5, 2.5]))
    with pytest.raises(TypeError, match="only 0-dimensional arrays"):
        float(d)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(d)


HOST = np.ones((2, 3))
MIXED = {
    "device + host": lambda d: d + HOST,
    "host + device": lambda d: HOST + d,
    "device * 0-d host": lambda d: d * np.array(2.0),
    "device += host": lambda d: d.__iadd__(HOST),
    "device @ host": lambda d: d @ HOST.T,
    "xp.tanh(host)": lambda d: xp.tanh(HOST),
    "xp.maximum(out=host)": lambda d: xp.maximum(d, 0, out=HOST),
    "xp.concatenate": lambda d: xp.concatenate([d, HOST]),
    "np.concatenate": lambda d: np.concatenate([d, HOST]),
    "xp.where": lambda d: xp.where(d > 0, HOST, 0.0),
    "xp.bincount weights": lambda d: xp.bincount(xp.asarray([0, 1]), weights=np.ones(2)),
}


@pytest.mark.parametrize("name", MIXED)
def test_mixing_device_and_host_arrays_raises_as_on_cupy(name):
    with pytest.raises(TypeError, match=re.escape("Unsupported type <class 'numpy.ndarray'>")):
        MIXED[name](xp.ones((2, 3)))


def test_scalars_mix_and_comparisons_take_0d_host_arrays():
    d = xp.asarray([1.0, -2.0])
    for result in (d + 1.0, 2 * d, d * np.float32(2.0), np.float64(1.0) - d, d > np.array(0.0)):
        assert isinstance(result, DeviceArray)
    assert (d > np.array(0.0)).tolist() == [True, False]


ON_DEVICE = {
    "zeros": lambda m, a: m.zeros((2, 3)),
    "asarray": lambda m, a: m.asarray(a, dtype=m.float32),
    "concatenate": lambda m, a: m.concatenate([a, a], axis=1),
    "bincount": lambda m, a: m.bincount(m.asarray([0, 2, 2]), weights=a[0], minlength=4),
    "swapaxes": lambda m, a: m.swapaxes(a, 0, 1),
    "moveaxis": lambda m, a: m.moveaxis(a[None], 0, -1),
    "broadcast_to": lambda m, a: m.broadcast_to(a, (2, 2, 3)),
    "where": lambda m, a: m.where(a > 2, a, 0.0),
    "tanh out=": lambda m, a: m.tanh(a, out=a),
    "maximum in place": lambda m, a: m.maximum(a - 2.0, 0, out=a),
    "subtract from a scalar in place": lambda m, a: m.subtract(1.0, a, out=a),
    "add.at": lambda m, a: (m.add.at(a, m.asarray([0, 0]), 1.0), a)[1],
    "integer index": lambda m, a: a[1, 2],
    "index array": lambda m, a: a[:, m.asarray([2, 0, 2])],
    "host index array": lambda m, a: a[:, np.array([2, 0])],
    "mask": lambda m, a: a[a > 2],
    "reshape": lambda m, a: a.reshape(3, 2),
    "T": lambda m, a: a.T,
    "astype": lambda m, a: a.astype(m.int64),
    "sum": lambda m, a: a.sum(),
    "mean over an axis": lambda m, a: a.mean(axis=0),
    "matmul": lambda m, a: a @ a.T,
    "operators": lambda m, a: (-a + 1) * 2 / 3 - a ** 2,
    "in-place operator": lambda m, a: a.__imul__(2),
    "comparisons": lambda m, a: (a > 1) & (a < 4),
    "a numpy function": lambda m, a: np.concatenate([a, a]),
    "a numpy ufunc": lambda m, a: np.exp(a),
    "linalg": lambda m, a: m.linalg.norm(a),
}


@pytest.mark.parametrize("name", ON_DEVICE)
def test_results_stay_on_the_device(name):
    """Each operation on a device array gives a device array with numpy's values."""
    host_array = np.arange(6.0).reshape(2, 3)
    want = ON_DEVICE[name](np, host_array.copy())
    got = ON_DEVICE[name](xp, xp.asarray(host_array))
    assert isinstance(got, DeviceArray), type(got)
    np.testing.assert_array_equal(got.get(), want)


def test_out_and_views_are_the_device_arrays_themselves():
    d = xp.asarray(np.arange(-2.0, 4.0))
    assert xp.maximum(d, 0, out=d) is d and xp.tanh(d, out=d) is d and xp.subtract(1.0, d, out=d) is d
    view = d[2:]
    view[...] = 5.0
    d[:1] = xp.asarray([7.0])
    assert d.tolist() == [7.0, 1.0, 5.0, 5.0, 5.0, 5.0]


def test_assigning_host_values_follows_cupy():
    d = xp.zeros(3)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        d[:2] = np.ones(2)
    d[np.array([0, 2])] = np.array([1.0, 2.0])  # advanced indexing copies host values over
    d[1] = np.float32(4.0)
    assert d.tolist() == [1.0, 4.0, 2.0]


def test_the_device_backend_adds_at_indices_through_its_namespace():
    """``Backend.index_add`` picks np.add.at by the name "numpy"; the stand-in's goes through ``xp``,
    also under the tape (the gradient of a gather)."""
    be = numpy_device_backend()
    assert be.name == "numpy-device" and be.xp is xp and be.device_info() == {"device": "cpu"}
    target = be.asarray(np.zeros(3))
    be.index_add(target, be.index([0, 2, 2]), be.asarray([1.0, 2.0, 3.0]))
    assert target.tolist() == [1.0, 0.0, 5.0]
    sums = be.segment_sum(be.asarray([[1.0, 2.0, 3.0]]), be.index([0, 1, 0]), 2)
    assert isinstance(sums, DeviceArray) and sums.tolist() == [[4.0, 2.0]]
    traced = traced_backend(be.with_dtype(np.float64))
    assert traced.name == "numpy-device" and traced.xp._xp is xp and traced.dtype == np.float64
    with Tape(traced) as tape:
        w = tape.var(traced.asarray([1.0, 2.0]))
        y = (w[traced.index([0, 0, 1])] * traced.xp.tanh(w[traced.index([1, 1, 0])])).sum()
    g = grad(tape, y, [w])[0]
    t1, t2 = np.tanh(1.0), np.tanh(2.0)
    np.testing.assert_allclose(g.get(), [2 * t2 + 2 * (1 - t1 ** 2), t1 + 2 * (1 - t2 ** 2)])


# ----------------------------------------------------------------------------------------------
# The library on device arrays, against plain numpy


def test_the_fixture_puts_numpy_on_the_device(device_backend):
    be = get_backend("numpy")
    assert be.name == device_backend.name != "numpy"
    assert not isinstance(be.asarray([1.0]), np.ndarray)
    with plain_numpy():
        assert isinstance(get_backend("numpy").asarray([1.0]), np.ndarray)


ENGINE_CASES = {
    "stack, stateless": dict(seed=11, freeform=False, kind="stateless"),
    "stack, stateful": dict(seed=12, freeform=False, kind="stateful"),
    "free-form, stateless": dict(seed=13, freeform=True, kind="stateless"),
    "free-form, stateful, user groups": dict(seed=14, freeform=True, kind="stateful", sharing="user"),
}


def engine_trace(case) -> dict:
    """A few inner steps of ``case`` (2 tasks) on the "numpy" backend, then a forward pass without
    targets: host copies of the losses, outputs, parameters, carries and forward values."""
    engine = Engine(case.graph, case.protocol)
    be = engine.be
    state = engine.network_from_arrays(case.params)
    steps = []
    for s in range(case.steps):
        state, res = engine.step(state, at_step(case.xs, s), at_step(case.ys, s))
        steps.append({"losses": host(be, res.losses), "outputs": host(be, res.outputs)})
    fwd = engine.forward(state, at_step(case.xs, 0))
    return {"steps": steps, "params": host(be, state.params), "carries": host(be, state.carries),
            "values": host(be, fwd.values), "outputs": host(be, fwd.outputs),
            "on host": isinstance(res.loss, np.ndarray)}


@pytest.mark.parametrize("name", ENGINE_CASES)
def test_the_engine_runs_on_the_device(name, device_backend):
    case = random_case(**ENGINE_CASES[name], tasks=2)
    want, got = on_plain_numpy_and_device(lambda: engine_trace(case))
    assert want.pop("on host") and not got.pop("on host")
    assert_same(got, want, device_backend, name)


def test_the_engine_runs_skip_connections_and_two_losses_on_the_device(device_backend):
    graph = skip_two_losses(["relu", "tanh", "sigmoid", "relu"])
    rng = np.random.default_rng(5)
    xs, ys = random_data(graph, rng, 3, 4, 2)

    def run():
        engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(kind="stateless", **SMALL_LEARNER), seed=2))
        state, results = engine.run(engine.init_network(np.random.default_rng(0), tasks=2, init_std=0.5),
                                    [at_step(xs, s) for s in range(3)], [at_step(ys, s) for s in range(3)])
        return [host(engine.be, r.losses) for r in results], host(engine.be, state.params)

    want, got = on_plain_numpy_and_device(run)
    assert_same(got, want, device_backend, "skip connections and two losses")


def meta_batch(graph, tasks: int = 2, steps: int = 2, shots: int = 3, heldout: int = 4):
    """A MetaBatch of random data for a graph with one input and one target block."""
    from graphflow.meta.metaloss import MetaBatch

    rng = np.random.default_rng(7)
    (x,), (y,) = (v.values() for v in random_data(graph, rng, steps, shots, tasks))
    (xe,), (ye,) = (v.values() for v in random_data(graph, rng, 1, heldout, tasks))
    return MetaBatch(np.swapaxes(x, 0, 1), np.swapaxes(y, 0, 1), xe[0], ye[0])


META_VARIANTS = {"plain": {}, "recomputed segments": {"recompute_every": 1}, "maml": {"maml": True}}


@pytest.mark.parametrize("variant", META_VARIANTS)
def test_the_meta_gradient_runs_on_the_device(variant, device_backend):
    from graphflow.meta.metaloss import MetaGradient

    options = dict(META_VARIANTS[variant])
    maml = options.pop("maml", False)
    graph = gf.build(gf.stack(1, gf.Dense(5), gf.Tanh(), gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(graph, gf.LearnerSpec(**SMALL_LEARNER), seed=4)
    batch = meta_batch(graph)
    engine = Engine(graph, protocol, PLAIN_NUMPY(np.float32))
    params = engine.init_network(np.random.default_rng(3), tasks=1 if maml else 2, init_std=0.5).params
    init = {k: v[0] for k, v in params.items()} if maml else params
    trainable = protocol.trainable() + ([str(ParamKey.init(k)) for k in init] if maml else [])

    def run():
        metagrad = MetaGradient(graph, protocol, trainable=trainable, **options)
        return metagrad(protocol, batch, init, init_trainable=maml)

    want, got = on_plain_numpy_and_device(run)
    assert isinstance(got[0], float)
    assert_same(got, want, device_backend, f"{variant} meta-loss and gradient")


def tiny_experiment(**meta):
    """The sinusoid graph with a small learner: two meta-steps, an eval at the end."""
    from graphflow.presets import sinusoid
    from graphflow.spec import ExperimentSpec

    return ExperimentSpec.model_validate({
        "name": "tiny", "graph": sinusoid().model_dump(mode="json"), "seed": 0,
        "learner": {**SMALL_LEARNER, "mlp_hidden": [8, 8]},
        "meta": {"outer_batch": 2, "inner_steps": 2, "steps": 2, "normalization_rounds": 1, **meta},
        "checkpoint_every": 1, "eval_every": 100, "eval_tasks": 3, "threads": 2,
    })


@pytest.mark.parametrize("maml", [False, True], ids=["learned protocol", "maml"])
def test_a_trainer_meta_trains_on_the_device(maml, device_backend, tmp_path):
    from graphflow.meta.checkpoint import load_checkpoint
    from graphflow.meta.trainer import Trainer

    folders = (tmp_path / f"run{k}" for k in itertools.count())

    def run():
        folder = next(folders)
        trainer = Trainer(tiny_experiment(maml=maml), folder)
        trainer.train(steps=1, progress=False)
        resumed = Trainer.resume(folder / "checkpoint.npz")  # the second meta-step after a resume
        resumed.train(progress=False)
        log = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
        return trainer.history[0]["meta_loss"], log, load_checkpoint(folder / "checkpoint.npz")[0]

    want, got = on_plain_numpy_and_device(run)
    assert_same(got, want, device_backend, "trainer")


def test_the_evaluations_run_on_the_device(device_backend):
    from graphflow.evaluation import evaluate_mnist, evaluate_sinusoid
    from graphflow.tasks.mnist import prepare_mnist

    sine = gf.build(gf.stack(1, gf.Dense(6), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    sine_protocol = Protocol.init(sine, gf.LearnerSpec(**SMALL_LEARNER), seed=1)
    prior = {k: v[0] for k, v in Engine(sine, sine_protocol, PLAIN_NUMPY(np.float32)).init_network(
        np.random.default_rng(2), init_std=0.5).params.items()}
    digits = mnist()
    digits_protocol = Protocol.init(digits, gf.LearnerSpec(kind="stateless", **SMALL_LEARNER), seed=1)
    rng = np.random.default_rng(0)
    data = prepare_mnist(rng.integers(0, 256, (40, 28, 28)).astype(np.uint8), rng.integers(0, 10, 40), n_train=30)

    def run():
        engine = Engine(sine, sine_protocol)
        curves = [evaluate_sinusoid(engine, tasks=3, steps=2, chunk=2),
                  evaluate_sinusoid(engine, tasks=2, steps=2, prior=prior),
                  evaluate_mnist(Engine(digits, digits_protocol), data, tasks=2, steps=2, batch=4, heldout=8)]
        return [c.to_json() for c in curves]

    want, got = on_plain_numpy_and_device(run)
    assert_same(got, want, device_backend, "evaluation curves")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_backprop_baselines_run_on_the_device(optimizer, device_backend):
    from graphflow.baselines import BackpropBaseline
    from graphflow.evaluation import evaluate_sinusoid

    graph = gf.build(gf.stack(1, gf.Dense(6), gf.Tanh(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(graph, gf.LearnerSpec(**SMALL_LEARNER))

    def run():
        return evaluate_sinusoid(BackpropBaseline(Engine(graph, protocol), optimizer), tasks=2, steps=3).to_json()

    want, got = on_plain_numpy_and_device(run)
    assert_same(got, want, device_backend, f"{optimizer} baseline")


def test_inspection_records_on_the_device(device_backend):
    from graphflow.inspect import message_vs_gradient
    from graphflow.recording import record_run

    graph = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    protocol = Protocol.init(graph, gf.LearnerSpec(**SMALL_LEARNER), seed=1)
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (3, 2, 5, 2)).astype(np.float32)
    ys = np.sin(xs[..., :1]).astype(np.float32)
    nodes = ["dense2/w[1,0]", "dense0/b[2]", "relu1/act[0]", "input/x[1]"]

    def run():
        engine = Engine(graph, protocol)
        state = engine.init_network(np.random.default_rng(1), tasks=2, init_std=0.5)
        _, recorded = record_run(engine, state, xs, ys, nodes, gradients=True)
        histories = {n: recorded.node(n).as_arrays() for n in nodes}
        comparison = message_vs_gradient(recorded)
        return (histories, recorded.loss.values, {g: dict(s) for g, s in recorded.groups.items()},
                comparison.update_correlation)

    want, got = on_plain_numpy_and_device(run)
    assert "message_in" in got[0]["input/x[1]"] and "gradient" in got[0]["dense2/w[1,0]"]
    assert_same(got, want, device_backend, "recorded run")


def test_inspection_records_a_checkpoint_on_the_device(device_backend):
    from graphflow.meta.protocol_file import BUNDLED
    from graphflow.recording import RunRequest, record_from_checkpoint

    def run():
        recorded = record_from_checkpoint(BUNDLED, RunRequest(["dense2/w[*,0]"], steps=2, shots=4, tasks=2))
        return recorded.node("dense2/w[3,0]").as_arrays(), recorded.loss.values

    want, got = on_plain_numpy_and_device(run)
    assert_same(got, want, device_backend, "checkpoint run")
