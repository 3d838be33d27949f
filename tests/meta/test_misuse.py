"""Silent mistakes through the Python API become clear errors (issue 14): empty batches, meta-batches
without their steps axis, gradients of outputs the tape never saw, numpy functions on tape
variables, a step activation feeding the loss, and tasks that cannot feed the graph."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.autodiff import Tape, grad, traced_backend
from graphflow.backend import get_backend
from graphflow.cli import main
from graphflow.engine import Engine
from graphflow.errors import DataError, SpecError
from graphflow.learners import Protocol
from graphflow.meta.metaloss import MetaBatch
from graphflow.meta.trainer import Trainer
from graphflow.spec import ExperimentSpec
from tests.meta.test_trainer import tiny_experiment

SMALL = gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=[4, 4])


def test_an_empty_batch_is_refused_before_it_turns_every_parameter_nan():
    g = gf.build(gf.stack(1, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    engine = Engine(g, Protocol.init(g, SMALL))
    state = engine.init_network(np.random.default_rng(0), tasks=2)
    empty = np.zeros((2, 0, 1), np.float32)
    with pytest.raises(DataError, match=r"inputs 'input': an empty batch \(\[T, B\] = \[2, 0\]\)"):
        engine.step(state, empty, empty)


def test_a_meta_batch_without_its_steps_axis_is_refused():
    x = np.zeros((4, 10, 1), np.float32)  # [T, B, n]: no steps axis
    with pytest.raises(DataError, match=r"MetaBatch.x: shape \[4, 10, 1\]; expected \[T, steps, B, n\]"):
        MetaBatch(x, x, x, x)
    ok = np.zeros((4, 5, 10, 1), np.float32)
    with pytest.raises(DataError, match="MetaBatch.xe: 3 tasks, but x has 4"):
        MetaBatch(ok, ok, np.zeros((3, 10, 1)), np.zeros((3, 10, 1)))
    assert MetaBatch(ok, ok, x, x).steps == 5


def test_grad_of_an_output_the_tape_never_saw_is_an_error():
    be = traced_backend(get_backend("numpy", np.float64))
    with Tape(be) as tape:
        w = tape.var(np.array([1.0, 2.0]))
    outside = (w * w).sum()  # computed after the tape's block: not recorded
    with pytest.raises(ValueError, match="not computed on this tape"):
        grad(tape, outside, [w])
    with pytest.raises(ValueError, match="is a plain float, not a Var"):
        grad(tape, 3.0, [w])


def test_numpy_functions_on_tape_variables_refuse_instead_of_building_object_arrays():
    be = traced_backend(get_backend("numpy", np.float64))
    with Tape(be) as tape:
        a, b = tape.var(np.array([1.0, 2.0])), tape.var(np.array([3.0, 4.0]))
        with pytest.raises(TypeError, match="cannot become a plain array"):
            np.stack([a, b])
        stacked = be.xp.stack([a, b * 2.0], axis=1)  # the traced namespace records it
        total = (stacked * np.array([[1.0, 10.0]])).sum()
    ga, gb = grad(tape, total, [a, b])
    assert ga.tolist() == [1.0, 1.0] and gb.tolist() == [20.0, 20.0]


def test_a_step_activation_feeding_the_loss_is_refused_with_the_reason(tmp_path, capsys):
    spec = gf.stack(1, gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.Activation("step"), gf.L2Loss())
    exp = ExperimentSpec.model_validate({**tiny_experiment().model_dump(mode="json"),
                                         "graph": spec.model_dump(mode="json")})
    with pytest.raises(SpecError, match="the step activation 'step3' feeds loss .* meta-gradient is zero"):
        Trainer(exp)
    config = tmp_path / "step.json"
    config.write_text(exp.model_dump_json())
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_a_hidden_step_activation_trains():
    spec = gf.stack(1, gf.Dense(4), gf.Activation("step"), gf.Dense(1), gf.L2Loss())
    exp = ExperimentSpec.model_validate({**tiny_experiment(steps=2).model_dump(mode="json"),
                                         "graph": spec.model_dump(mode="json")})
    records = Trainer(exp).train(progress=False)
    assert len(records) == 2 and all(np.isfinite(r["meta_loss"]) for r in records)


def test_a_sinusoid_task_on_a_graph_it_cannot_feed_is_refused(tmp_path, capsys):
    spec = gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss())
    exp = ExperimentSpec.model_validate({**tiny_experiment().model_dump(mode="json"),
                                         "graph": spec.model_dump(mode="json")})
    with pytest.raises(SpecError, match=r"the sinusoid task needs a graph with one input unit .* input blocks of \[2\]"):
        Trainer(exp)


def test_a_pool_of_initial_networks_bigger_than_memory_is_refused_before_allocating():
    from graphflow.errors import GraphError

    with pytest.raises(GraphError, match=r"needs about .* for its pool of initial networks \(meta.init_pool 100000000 "):
        Trainer(tiny_experiment(init_pool=10**8))
