"""What a graph becomes: how many forward stages, message stages and learner calls, in which order.

In the tinygrad style, these tests count batches rather than check values (values are the
interpreter's business, tests/engine/test_equivalence.py).
"""

from __future__ import annotations

import pytest

import graphflow as gf
from graphflow.graph.blocks import InputNodes, NeuronNodes, WeightNodes
from graphflow.reference.random_graphs import random_case
from graphflow.schedule import Schedule, schedule
from graphs import mnist, sinusoid, skip_two_losses


def ops(stages) -> list[tuple[str, str]]:
    return [(s.op, s.block) for s in stages]


# ----------------------------------------------------------------------------------------------
# Counts


def test_sinusoid_stack_counts():
    """1-20-20-1: per dense layer a matmul and a bias stage, two activations and a loss; one learner
    call per group (per layer, nine groups); six parameter updates."""
    s = schedule(sinusoid())
    assert s.counts() == {"forward": 9, "message": 24, "update": 6, "learner_calls": 9}
    assert [op for op, _ in ops(s.forward)] == ["dense_matmul", "neuron_bias", "activation"] * 2 + ["dense_matmul", "neuron_bias", "loss"]
    assert s.learner_calls() == {g: 1 for g in ["loss5/loss", "dense4/b", "dense4/w", "relu3/act", "dense2/b", "dense2/w",
                                                 "relu1/act", "dense0/b", "dense0/w"]}


def test_mnist_stack_counts_with_learners_shared_by_kind():
    """144-50-10 sigmoid / softmax / ce with one weight learner and one bias learner for both layers."""
    s = schedule(mnist())
    assert s.counts() == {"forward": 7, "message": 19, "update": 4, "learner_calls": 7}
    assert ops(s.forward) == [("dense_matmul", "dense0"), ("neuron_bias", "dense0"), ("activation", "sigmoid1"),
                              ("dense_matmul", "dense2"), ("neuron_bias", "dense2"), ("softmax", "softmax3"),
                              ("loss", "loss4")]
    assert s.learner_calls() == {"loss4/loss": 1, "softmax3/unit": 1, "b": 2, "W": 2, "sigmoid1/act": 1}
    # normalization stays per layer although f and g are shared
    assert [st.norm_group for st in s.update] == ["dense0/w", "dense0/b", "dense2/w", "dense2/b"]


def test_freeform_skip_connection_and_two_losses_counts():
    s = schedule(skip_two_losses())
    assert s.counts() == {"forward": 9, "message": 25, "update": 5, "learner_calls": 9}
    forward = ops(s.forward)
    assert forward.count(("sparse_matmul", "h1")) == 1 and forward.count(("sparse_matmul", "h1_from_input")) == 1
    assert [op for op, _ in forward].count("loss") == 2
    message = ops(s.message)
    assert [op for op, _ in message].count("seed") == 2
    replicated = [b for op, b in message if op == "replicate"]
    assert sorted(replicated[:2]) == ["h1", "h1_from_input"] and replicated[2:] == ["h0"]
    assert all("gather" in st.detail for st in s.message if st.op == "replicate" and st.block.startswith("h1"))
    assert s.learner_calls() == {"loss1/loss": 1, "loss0/loss": 1, "softmax0/unit": 1, "h1/b": 1,
                                 "h1_from_input/w": 1, "h1/w": 1, "relu0/act": 1, "h0/b": 1, "h0/w": 1}


def test_one_learner_call_per_slot_whatever_the_sharing():
    for sharing in ("layer", "kind", "kind+norm"):
        g = gf.build(gf.stack(4, gf.Dense(3), gf.Tanh(), gf.Dense(3), gf.Tanh(), gf.Dense(2), gf.L1Loss(), sharing=sharing))
        s = schedule(g)
        assert s.counts()["learner_calls"] == len(g.slots) == 9
        assert sum(s.learner_calls().values()) == 9
        assert len(s.learner_calls()) == {"layer": 9, "kind": 5, "kind+norm": 5}[sharing]


def test_aggregation_into_inputs_is_marked_as_skippable():
    """Messages into input units feed no learner: the stage says it runs only when inspected."""
    s = schedule(skip_two_losses())
    into_inputs = [st for st in s.message if st.op == "aggregate" and st.args == (True,)]
    assert [st.block for st in into_inputs] == ["h1_from_input", "h0"]
    assert all("only when inspected" in st.detail for st in into_inputs)


# ----------------------------------------------------------------------------------------------
# Order


def assert_message_order(graph, s: Schedule) -> None:
    """The order of MPLP_SPEC.md: loss seeds before their learners; per neuron block the bias learner,
    then replication, then each weight learner, then its aggregation; every unit gathers only after
    all its consumers have sent."""
    pos = {}  # (op, learner slot or block) -> position; a weight block may share its name with its neurons
    for k, st in enumerate(s.message):
        key = (st.op, st.slot or st.block)
        assert key not in pos, f"{key} twice"
        pos[key] = k
    for loss in graph.losses:
        assert pos[("seed", loss.name)] < pos[("learner", f"{loss.name}/loss")] < pos[("send", loss.name)]
    for name, unit in graph.units.items():
        if isinstance(unit, NeuronNodes):
            for w in graph.incoming_weights(name):
                assert (pos[("learner", f"{name}/b")] < pos[("replicate", w.name)] < pos[("learner", f"{w.name}/w")]
                        < pos[("aggregate", w.name)])
        if isinstance(unit, InputNodes) or ("gather", name) not in pos:
            continue
        for consumer in graph.consumers(name):
            sent = ("aggregate" if isinstance(consumer, WeightNodes) else "send", consumer.name)
            assert pos[sent] < pos[("gather", name)], f"{consumer.name} sends to {name} after it gathered"
    assert s.message[0].op == "seed"


@pytest.mark.parametrize("make", [sinusoid, mnist, skip_two_losses])
def test_message_order_of_the_named_graphs(make):
    g = make()
    assert_message_order(g, schedule(g))


@pytest.mark.parametrize("seed", range(20))
def test_message_order_of_random_graphs(seed):
    g = random_case(seed).graph
    s = schedule(g)
    assert_message_order(g, s)
    assert s.counts()["learner_calls"] == len(g.slots)
    assert len(s.update) == sum(slot.has_parameter for slot in g.slots.values())


def test_forward_stages_follow_the_waves():
    g = skip_two_losses()
    wave_of = {}
    for n, wave in enumerate(g.waves):
        for b in wave:
            wave_of[(type(b) is WeightNodes, b.name)] = n
    waves = [wave_of[(st.op.endswith("matmul"), st.block)] for st in schedule(g).forward]
    assert waves == sorted(waves)


# ----------------------------------------------------------------------------------------------
# The schedule is plain data


def test_schedule_prints():
    text = str(schedule(sinusoid()))
    lines = text.splitlines()
    assert lines[0] == "forward pass (9 stages)"
    assert "message pass (24 stages)" in lines and "update pass (6 stages)" in lines
    assert len(lines) == 3 + 9 + 24 + 6 + 1
    assert lines[-1].startswith("9 learner calls, groups: loss5/loss x1")
    assert any("replicate" in line and "dense2/b -> dense2/w" in line for line in lines)


def test_schedule_is_deterministic_plain_data():
    a, b = schedule(mnist()), schedule(mnist())
    assert a == b and str(a) == str(b)
    assert all(st.pass_name == "message" for st in a.message)
