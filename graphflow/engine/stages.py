"""What each stage kind of a :class:`~graphflow.schedule.passes.Schedule` does, in one table.

The schedule says *which* stages run, in which order, on which block, reading and writing which
named buffers (``value:<unit>``, ``state:<slot>``, ``message_in:<slot>``, ...). This module says
*what* a stage of each kind computes: :data:`STAGE_KINDS` maps a stage's ``op`` to a
:class:`StageKind` whose ``run(engine, stage, buffers)`` reads the stage's inputs from
``buffers`` and writes its outputs there. The engine's passes are loops over stages; adding a
stage kind means a scheduling rule in :mod:`graphflow.schedule.passes` and an entry here.

Under the tape (meta-gradients) the same rules run on the traced backend, which records their
operations (the learner cells as one fused stage each, with a hand-written VJP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from graphflow.graph import kinds


class Buffers(dict):
    """The named arrays of one inner step; ``add`` sums into buffers several stages contribute to.

    Besides the arrays it carries what the message pass's learners read and write: the network
    ``state`` (its carries before the step), the ``carries`` the learners produce, and the
    ``recorder`` (:class:`~graphflow.engine.record.EngineHooks`, or None).
    """

    def __init__(self, *args, state=None, recorder=None):
        super().__init__(*args)
        self.state = state
        self.carries: dict = {}
        self.recorder = recorder

    def add(self, name: str, value) -> None:
        self[name] = value if name not in self else self[name] + value


@dataclass(frozen=True)
class StageKind:
    """One kind of stage: its name (a stage's ``op``), what it computes, and its rule."""

    name: str
    doc: str
    run: Callable


def _out(stage, k: int = 0) -> str:
    return stage.outputs[k]


def _in(stage, k: int = 0) -> str:
    return stage.inputs[k]


# ----------------------------------------------------------------------------------------------
# forward pass


def dense_matmul(engine, stage, buf: Buffers) -> None:
    x, w = buf[_in(stage, 0)], buf[_in(stage, 1)]
    buf.add(_out(stage, 0), x @ w)
    buf[_out(stage, 1)] = (w[:, None], x)


def sparse_matmul(engine, stage, buf: Buffers) -> None:
    block = engine.graph.weights[stage.block]
    src_idx, dst_idx = engine.edge_index[stage.block]
    x, w = buf[_in(stage, 0)], buf[_in(stage, 1)]
    xs = x[..., src_idx]
    buf.add(_out(stage, 0), engine.be.segment_sum(xs * w[:, None], dst_idx, block.n_dst))
    buf[_out(stage, 1)] = (w[:, None], xs)


def neuron_bias(engine, stage, buf: Buffers) -> None:
    xp = engine.be.xp
    partial, bias = buf[_in(stage, 0)], buf[_in(stage, 1)][:, None]
    perm = engine.bias_order.get(stage.block)
    if perm is not None:  # biases in their own order, sums in neuron order
        n_of_b, b_of_n = perm
        z, _ = kinds.bias_forward(xp, partial, bias[..., b_of_n])
        buf[_out(stage, 1)] = (bias, partial[..., n_of_b])
    else:
        z, buf[_out(stage, 1)] = kinds.bias_forward(xp, partial, bias)
    buf[_out(stage, 0)] = z


def activation(engine, stage, buf: Buffers) -> None:
    xp = engine.be.xp
    z = buf[_in(stage)]
    masks = engine.mixed_activations.get(stage.block)
    if masks is not None:  # one function per unit: each applied where its mask is set
        a = None
        for fn, mask in masks.items():
            term = xp.where(mask, kinds.ACTIVATIONS[fn](xp, z), 0.0)
            a = term if a is None else a + term
    else:
        a = kinds.ACTIVATIONS[engine.graph.units[stage.block].fns[0]](xp, z)
    buf[_out(stage, 0)] = a
    buf[_out(stage, 1)] = (z,)


def softmax(engine, stage, buf: Buffers) -> None:
    buf[_out(stage, 0)], buf[_out(stage, 1)] = kinds.softmax_forward(engine.be.xp, buf[_in(stage)])


def loss(engine, stage, buf: Buffers) -> None:
    out = buf[_in(stage, 0)]
    buf[_out(stage, 0)] = out
    if _in(stage, 1) not in buf:  # predictions only, no targets
        return
    block = engine.graph.units[stage.block]
    buf[_out(stage, 1)], buf[_out(stage, 2)] = kinds.loss_forward(engine.be.xp, block.fn, out, buf[_in(stage, 1)])


# ----------------------------------------------------------------------------------------------
# message pass


def seed(engine, stage, buf: Buffers) -> None:
    buf[_out(stage)] = buf[_in(stage)][..., None]


def gather(engine, stage, buf: Buffers) -> None:
    total = buf[_in(stage)]
    buf[_out(stage)] = total / engine.fan_out[stage.block] if engine.protocol.spec.aggregation == "mean" else total


def learner(engine, stage, buf: Buffers) -> None:
    slot = engine.graph.slots[stage.slot]
    incoming = buf[_in(stage, 0)]
    perm = engine.bias_order.get(slot.block) if slot.role == "bias" else None
    if perm is not None:  # the neurons' messages, in the biases' order
        incoming = incoming[..., perm[0], :]
    raw, streams = engine.learner_streams(slot, incoming, buf[_in(stage, 1)])
    upd, msg, carry = engine.call_learner(slot, streams, buf.state, buf.carries)
    if upd is not None:
        buf[_out(stage, 1)] = upd
    if buf.recorder is not None:
        buf.recorder.on_learner(engine, slot, raw, streams, carry, msg, upd)
    buf[_out(stage, 0)] = msg


def send(engine, stage, buf: Buffers) -> None:
    buf.add(_out(stage), buf[_in(stage)])


def replicate(engine, stage, buf: Buffers) -> None:
    """A bias's message, in neuron order, for the weights of its neuron (the broadcast over a dense
    block's inputs, or the gather to a sparse block's edges, happens in the weight learner's streams)."""
    msg = buf[_in(stage)]
    perm = engine.bias_order.get(engine.graph.weights[stage.block].dst)
    buf[_out(stage)] = msg if perm is None else msg[..., perm[1], :]


def aggregate(engine, stage, buf: Buffers) -> None:
    (to_input,) = stage.args
    g = engine.graph
    w = g.weights[stage.block]
    if to_input and (buf.recorder is None or not buf.recorder.records(f"{w.src}/{g.units[w.src].label}")):
        return  # nobody reads the messages that reach an input unless its nodes are inspected
    msg = buf[_in(stage)]
    if w.dense:
        total = engine.be.xp.sum(msg, axis=3)
    else:
        total = engine.be.segment_sum(msg, engine.edge_index[w.name][0], w.n_src, axis=2)
    buf.add(_out(stage), total)


# ----------------------------------------------------------------------------------------------
# updates


def update(engine, stage, buf: Buffers) -> None:
    norm = engine.norm_params[stage.norm_group]
    delta = (buf[_in(stage, 1)].mean(axis=1)[..., 0] - norm["out_mean"]) * norm["out_scale"]
    buf[_out(stage)] = buf[_in(stage, 0)] + delta
    if buf.recorder is not None:
        buf.recorder.on_update(engine, stage.slot, delta)


STAGE_KINDS: dict[str, StageKind] = {k.name: k for k in (
    StageKind("dense_matmul", "partial[dst] += value[src] @ w; stores w and x", dense_matmul),
    StageKind("sparse_matmul", "partial[dst] += segment_sum(value[src][edges] * w); stores w and the gathered x",
              sparse_matmul),
    StageKind("neuron_bias", "z = partial + b; stores b and the sum", neuron_bias),
    StageKind("activation", "a = act(z) (one function per unit for mixed layers); stores z", activation),
    StageKind("softmax", "softmax over the block; stores z, t, e and the shared denominator", softmax),
    StageKind("loss", "per-unit loss against the target; stores the loss node's states", loss),
    StageKind("seed", "the loss values become the loss nodes' incoming messages", seed),
    StageKind("gather", "the messages a unit received, combined (mean over its consumers, or sum)", gather),
    StageKind("learner", "one learner call for every node of a slot: outgoing messages, raw updates, carries", learner),
    StageKind("send", "1:1 messages from a unit to its source unit", send),
    StageKind("replicate", "a bias's message to the weights of its neuron", replicate),
    StageKind("aggregate", "weight messages summed into their source units", aggregate),
    StageKind("update", "w += scale * (mean over examples of f - mean0)", update),
)}
"""Stage ``op`` -> its :class:`StageKind`."""


def run_stages(engine, stages, buf: Buffers) -> None:
    """Run ``stages`` in order on ``buf``."""
    for stage in stages:
        STAGE_KINDS[stage.op].run(engine, stage, buf)
