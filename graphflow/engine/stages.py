"""What each stage kind of a :class:`~graphflow.schedule.passes.Schedule` does, in one table.

The schedule says *which* stages run, in which order, on which block, reading and writing which
named buffers (``value:<unit>``, ``state:<slot>``, ``message_in:<slot>``, ...). This module says
*what* a stage of each kind computes: :data:`STAGE_KINDS` maps a stage's ``op`` to a
:class:`StageKind` that holds two rules side by side:

- ``run(engine, stage, buffers)`` reads the stage's inputs from ``buffers`` and writes its
  outputs there (the forward rule, on the backend's arrays);
- ``vjp(engine, stage, rec)`` is its vector-Jacobian product: given the cotangents of the
  outputs (``rec.cot``) it returns the gradients of the inputs it reads, from the inputs and
  outputs of the forward (``rec.ins``, ``rec.outs``) and what the forward saved (``rec.saved``).

The engine's passes are loops over stages (:func:`run_stages`). Under the tape (meta-gradients,
a traced backend) each stage is **one tape entry**: its forward runs on plain arrays and
:func:`graphflow.autodiff.tape.record_stage` records the stage's VJP, instead of one entry per
array operation. A stage kind without a VJP (an activation registered without a derivative) is
recorded operation by operation instead. Adding a stage kind means a scheduling rule in
:mod:`graphflow.schedule.passes` and an entry here; ``tests/engine/test_stage_vjps.py`` checks
every VJP against finite differences.

>>> sorted(k for k, kind in STAGE_KINDS.items() if kind.vjp is None)
[]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
        self.saving = False
        """True while a stage runs to be recorded as a whole: rules keep what their VJP needs."""

    def add(self, name: str, value) -> None:
        self[name] = value if name not in self else self[name] + value


@dataclass(frozen=True)
class StageKind:
    """One kind of stage: its name (a stage's ``op``), what it computes, its forward rule and its VJP."""

    name: str
    doc: str
    run: Callable
    """``run(engine, stage, buffers) -> saved``: the forward rule (``saved``: what the VJP needs
    beyond inputs and outputs, or None)."""
    vjp: Callable | None = None
    """``vjp(engine, stage, rec) -> {input: gradient}`` (see :class:`Recorded`)."""
    reads: Callable | None = None
    """``reads(engine, stage, buffers) -> {name: value}``: what the stage reads besides its named
    input buffers (protocol parameters, a learner's carry), as further inputs of its tape entry."""


class Recorded:
    """What a VJP sees of one run of its stage: plain arrays by buffer name.

    ``ins`` and ``outs`` hold the inputs and outputs (a buffer holding a tuple, such as a stored
    state, appears as ``(name, i)`` for each entry); ``cot(name)`` is the cotangent of an output
    (None: no gradient reached it); ``saved`` is what the forward rule returned.
    """

    def __init__(self, ins: dict, outs: dict, cots: dict, saved):
        self.ins, self.outs, self.saved = ins, outs, saved
        self._cots = cots

    def cot(self, name, i: int | None = None):
        return self._cots.get(name if i is None else (name, i))


def _out(stage, k: int = 0) -> str:
    return stage.outputs[k]


def _in(stage, k: int = 0) -> str:
    return stage.inputs[k]


# ----------------------------------------------------------------------------------------------
# helpers of the VJPs


def _add(*terms):
    """The sum of the terms that are not None (None when all are)."""
    out = None
    for t in terms:
        if t is not None:
            out = t if out is None else out + t
    return out


def _sum_to(xp, g, shape):
    """``g`` summed over the axes along which an array of ``shape`` was broadcast to reach it."""
    if g is None:
        return None
    shape = tuple(shape)
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and g.shape[k] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


# ----------------------------------------------------------------------------------------------
# forward pass


def dense_matmul(engine, stage, buf: Buffers) -> None:
    x, w = buf[_in(stage, 0)], buf[_in(stage, 1)]
    buf.add(_out(stage, 0), x @ w)
    buf[_out(stage, 1)] = (w[:, None], x)


def dense_matmul_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    x, w = rec.ins[_in(stage, 0)], rec.ins[_in(stage, 1)]
    g, gw, gx = rec.cot(_out(stage, 0)), rec.cot(_out(stage, 1), 0), rec.cot(_out(stage, 1), 1)
    dx = _add(None if g is None else g @ xp.swapaxes(w, -1, -2), gx)
    dw = _add(None if g is None else xp.swapaxes(x, -1, -2) @ g, _sum_to(xp, gw, w[:, None].shape)[:, 0] if gw is not None else None)
    return {_in(stage, 0): dx, _in(stage, 1): dw}


def sparse_matmul(engine, stage, buf: Buffers) -> None:
    block = engine.graph.weights[stage.block]
    src_idx, dst_idx = engine.edge_index[stage.block]
    x, w = buf[_in(stage, 0)], buf[_in(stage, 1)]
    xs = x[..., src_idx]
    buf.add(_out(stage, 0), engine.be.segment_sum(xs * w[:, None], dst_idx, block.n_dst))
    buf[_out(stage, 1)] = (w[:, None], xs)


def sparse_matmul_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    block = engine.graph.weights[stage.block]
    src_idx, dst_idx = engine.edge_index[stage.block]
    x, w = rec.ins[_in(stage, 0)], rec.ins[_in(stage, 1)]
    xs = rec.outs[(_out(stage, 1), 1)]
    g, gw, gxs = rec.cot(_out(stage, 0)), rec.cot(_out(stage, 1), 0), rec.cot(_out(stage, 1), 1)
    dprod = None if g is None else xp.take(g, dst_idx, axis=-1)  # each edge reads its neuron's cotangent
    dxs = _add(None if dprod is None else dprod * w[:, None], gxs)
    dw = _add(None if dprod is None else _sum_to(xp, dprod * xs, w[:, None].shape)[:, 0],
              None if gw is None else _sum_to(xp, gw, w[:, None].shape)[:, 0])
    dx = None if dxs is None else engine.be.segment_sum(_sum_to(xp, dxs, x.shape[:-1] + (dxs.shape[-1],)), src_idx,
                                                         block.n_src)
    return {_in(stage, 0): dx, _in(stage, 1): dw}


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


def neuron_bias_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    partial, bias = rec.ins[_in(stage, 0)], rec.ins[_in(stage, 1)]
    g, gb, gp = rec.cot(_out(stage, 0)), rec.cot(_out(stage, 1), 0), rec.cot(_out(stage, 1), 1)
    perm = engine.bias_order.get(stage.block)
    gz_b = None if g is None else _sum_to(xp, g, (g.shape[0], 1, g.shape[-1]))[:, 0]  # over examples
    if perm is not None:
        n_of_b, b_of_n = perm
        gz_b = None if gz_b is None else gz_b[..., n_of_b]  # z[n] reads bias b(n): bias b gets z[n(b)]'s
        gp = None if gp is None else gp[..., b_of_n]      # the state held partial[n(b)] for bias b
    dbias = _add(gz_b, None if gb is None else _sum_to(xp, gb, (gb.shape[0], 1, gb.shape[-1]))[:, 0])
    return {_in(stage, 0): _add(g, gp), _in(stage, 1): dbias}


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


def activation_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    z = rec.ins[_in(stage)]
    g, gz = rec.cot(_out(stage, 0)), rec.cot(_out(stage, 1), 0)
    dz = None
    if g is not None:
        masks = engine.mixed_activations.get(stage.block)
        if masks is not None:
            slope = None
            for fn, mask in masks.items():
                term = xp.where(mask, kinds.ACTIVATION_GRADS[fn](xp, z, kinds.ACTIVATIONS[fn](xp, z)), 0.0)
                slope = term if slope is None else slope + term
        else:
            fn = engine.graph.units[stage.block].fns[0]
            slope = kinds.ACTIVATION_GRADS[fn](xp, z, rec.outs[_out(stage, 0)])
        dz = g * slope
    return {_in(stage): _add(dz, gz)}


def softmax(engine, stage, buf: Buffers) -> None:
    buf[_out(stage, 0)], buf[_out(stage, 1)] = kinds.softmax_forward(engine.be.xp, buf[_in(stage)])


def softmax_vjp(engine, stage, rec: Recorded) -> dict:
    """Through y = e / s, s = sum(e), e = exp(t), t = z - max(z), with cotangents on y and on
    every stored state (z, t, e and the broadcast s)."""
    xp = engine.be.xp
    z = rec.ins[_in(stage)]
    y, state = rec.outs[_out(stage, 0)], _out(stage, 1)
    t, e, s = (rec.outs[(state, i)] for i in (1, 2, 3))
    gy = rec.cot(_out(stage, 0))
    gz, gt, ge, gs = (rec.cot(state, i) for i in range(4))
    ds = None if gs is None else xp.sum(gs, axis=-1, keepdims=True)
    if gy is not None:
        ge = _add(ge, gy / s)
        ds = _add(ds, -xp.sum(gy * y, axis=-1, keepdims=True) / s[..., :1])
    ge = _add(ge, ds)  # s sums e
    gt = _add(gt, None if ge is None else ge * e)
    if gt is None:
        return {_in(stage): gz}
    hit = (z == xp.max(z, axis=-1, keepdims=True)).astype(z.dtype)  # the max's share, split among ties
    dz = gt - hit * (xp.sum(gt, axis=-1, keepdims=True) / xp.sum(hit, axis=-1, keepdims=True))
    return {_in(stage): _add(dz, gz)}


def loss(engine, stage, buf: Buffers) -> None:
    out = buf[_in(stage, 0)]
    buf[_out(stage, 0)] = out
    if _in(stage, 1) not in buf:  # predictions only, no targets
        return
    block = engine.graph.units[stage.block]
    buf[_out(stage, 1)], buf[_out(stage, 2)] = kinds.loss_forward(engine.be.xp, block.fn, out, buf[_in(stage, 1)])


def loss_vjp(engine, stage, rec: Recorded) -> dict:
    """Through the loss and the loss node's stored states (l2: out, target, d; l1: out, target;
    ce: the clipped p, target, log p); targets are data and get no gradient."""
    xp = engine.be.xp
    out = rec.ins[_in(stage, 0)]
    dout = rec.cot(_out(stage, 0))
    if _in(stage, 1) not in rec.ins:
        return {_in(stage, 0): dout}
    fn = engine.graph.units[stage.block].fn
    target = rec.ins[_in(stage, 1)]
    gl, state = rec.cot(_out(stage, 1)), _out(stage, 2)
    dout = _add(dout, rec.cot(state, 0) if fn != "ce" else None)
    if fn == "l2":
        d = rec.outs[(state, 2)]
        dd = _add(None if gl is None else gl * d, rec.cot(state, 2))
        dout = _add(dout, None if dd is None else -dd)
    elif fn == "l1":
        dout = _add(dout, None if gl is None else -gl * xp.sign(target - out))
    else:
        p, log_p = rec.outs[(state, 0)], rec.outs[(state, 2)]
        dlog = _add(None if gl is None else -target * gl, rec.cot(state, 2))
        dp = _add(None if dlog is None else dlog / p, rec.cot(state, 0))
        if dp is not None:
            inside = (out >= kinds.CE_CLIP) & (out <= 1 - kinds.CE_CLIP)  # clip passes the gradient inside
            dout = _add(dout, dp * inside)
    return {_in(stage, 0): dout}


# ----------------------------------------------------------------------------------------------
# message pass


def seed(engine, stage, buf: Buffers) -> None:
    buf[_out(stage)] = buf[_in(stage)][..., None]


def seed_vjp(engine, stage, rec: Recorded) -> dict:
    g = rec.cot(_out(stage))
    return {_in(stage): None if g is None else g[..., 0]}


def gather(engine, stage, buf: Buffers) -> None:
    total = buf[_in(stage)]
    buf[_out(stage)] = total / engine.fan_out[stage.block] if engine.protocol.spec.aggregation == "mean" else total


def gather_vjp(engine, stage, rec: Recorded) -> dict:
    g = rec.cot(_out(stage))
    if g is not None and engine.protocol.spec.aggregation == "mean":
        g = g / engine.fan_out[stage.block]
    return {_in(stage): g}


def learner(engine, stage, buf: Buffers):
    slot = engine.graph.slots[stage.slot]
    incoming = buf[_in(stage, 0)]
    perm = engine.bias_order.get(slot.block) if slot.role == "bias" else None
    if perm is not None:  # the neurons' messages, in the biases' order
        incoming = incoming[..., perm[0], :]
    raw, streams = engine.learner_streams(slot, incoming, buf[_in(stage, 1)])
    capture = [] if buf.saving else None
    upd, msg, carry = engine.call_learner(slot, streams, buf.state, buf.carries, capture)
    if upd is not None:
        buf[_out(stage, 1)] = upd
    if buf.recorder is not None:
        buf.recorder.on_learner(engine, slot, raw, streams, carry, msg, upd)
    buf[_out(stage, 0)] = msg
    if buf.saving:
        return {"raw": raw, "streams": streams, "backward": capture[0], "carry": carry, "msg": msg}
    return None


def learner_reads(engine, stage, buf: Buffers) -> dict:
    """The learner's parameters, its group's input normalization and (stateful) its carry."""
    slot = engine.graph.slots[stage.slot]
    reads = {f"learner:{name}": v for name, v in engine.learner_params[slot.group].items()}
    norm = engine.norm_params[slot.norm_group]
    reads.update({"norm:in_shift": norm["in_shift"], "norm:in_scale": norm["in_scale"]})
    carry = buf.state.carries.get(slot.key) if buf.state is not None else None
    if carry is not None:
        reads["carry"] = carry
    return reads


def learner_vjp(engine, stage, rec: Recorded) -> dict:
    """Through the cell (its fused backward), the standardization of its streams and their
    broadcast or gather from the incoming message and the stored states."""
    xp = engine.be.xp
    slot = engine.graph.slots[stage.slot]
    layout = engine.layouts[slot.key]
    saved = rec.saved
    raw, streams, carry, msg = saved["raw"], saved["streams"], saved["carry"], saved["msg"]
    gmsg, gupd, gcarry = rec.cot(_out(stage, 0)), rec.cot(_out(stage, 1)), rec.cot(f"carry:{slot.key}")
    stateful = engine.protocol.spec.kind != "stateless"
    if stateful:  # update and message are the first and last channels of the new carry
        out = carry
        d = xp.zeros(out.shape, dtype=out.dtype) if gcarry is None else xp.array(gcarry, copy=True)
        if gupd is not None:
            d[..., 0:1] += gupd
        if gmsg is not None:
            d[..., d.shape[-1] - layout.message:] += gmsg
    else:  # the cell's output is [message | update]
        parts = [xp.zeros(msg.shape, dtype=msg.dtype) if gmsg is None else gmsg]
        if layout.has_parameter:
            parts.append(xp.zeros(msg.shape[:-1] + (1,), dtype=msg.dtype) if gupd is None else gupd)
        d = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)
    grads = saved["backward"](d)
    n = len(streams)
    p = engine.learner_params[slot.group]
    from graphflow.learners.cells import cell_param_grads

    result = {f"learner:{name}": g for name, g in cell_param_grads(p, grads, n, stateful).items()}
    if stateful and "carry" in rec.ins:
        result["carry"] = grads[n]
    # standardization: stream_k = (raw_k + shift[k]) * scale[k]
    norm = engine.norm_params[slot.norm_group]
    shift, scale = norm["in_shift"], norm["in_scale"]
    dshift, dscale, draw = xp.zeros_like(shift), xp.zeros_like(scale), []
    for k, (r, g) in enumerate(zip(raw, grads[:n])):
        g = _sum_to(xp, g, np.broadcast_shapes(tuple(r.shape), tuple(streams[k].shape)))
        dshift[k] = (g * scale[k]).sum()
        dscale[k] = (g * (r + shift[k])).sum()
        draw.append(_sum_to(xp, g * scale[k], r.shape))
    result["norm:in_shift"], result["norm:in_scale"] = dshift, dscale
    # the raw streams from the incoming message and the states
    incoming_name, states_name = _in(stage, 0), _in(stage, 1)
    count = sum(1 for key in rec.ins if isinstance(key, tuple) and key[0] == states_name)
    if slot.role != "weight":
        dincoming = draw[0]
        dstates = [g[..., 0] for g in draw[1:]]
    else:
        w = engine.graph.weights[slot.block]
        if w.dense:  # message [T,B,1,M,k] <- [T,B,M,k]; w [T,1,N,M,1]; x [T,B,N,1,1]
            dincoming = draw[0][:, :, 0]
            dstates = [draw[1][..., 0], draw[2][..., 0, 0]]
        else:  # each edge read its neuron's message: scattered back
            dincoming = engine.be.segment_sum(draw[0], engine.edge_index[w.name][1], w.n_dst, axis=2)
            dstates = [draw[1][..., 0], draw[2][..., 0]]
    perm = engine.bias_order.get(slot.block) if slot.role == "bias" else None
    if perm is not None:
        dincoming = dincoming[..., perm[1], :]
    result[incoming_name] = dincoming
    for i in range(count):
        result[(states_name, i)] = dstates[i]
    return result


def send(engine, stage, buf: Buffers) -> None:
    buf.add(_out(stage), buf[_in(stage)])


def send_vjp(engine, stage, rec: Recorded) -> dict:
    return {_in(stage): rec.cot(_out(stage))}


def replicate(engine, stage, buf: Buffers) -> None:
    """A bias's message, in neuron order, for the weights of its neuron (the broadcast over a dense
    block's inputs, or the gather to a sparse block's edges, happens in the weight learner's streams)."""
    msg = buf[_in(stage)]
    perm = engine.bias_order.get(engine.graph.weights[stage.block].dst)
    buf[_out(stage)] = msg if perm is None else msg[..., perm[1], :]


def replicate_vjp(engine, stage, rec: Recorded) -> dict:
    g = rec.cot(_out(stage))
    perm = engine.bias_order.get(engine.graph.weights[stage.block].dst)
    return {_in(stage): g if g is None or perm is None else g[..., perm[0], :]}


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


def aggregate_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    g = rec.cot(_out(stage))
    if g is None:
        return {}
    msg = rec.ins[_in(stage)]
    w = engine.graph.weights[stage.block]
    if w.dense:
        return {_in(stage): xp.broadcast_to(xp.expand_dims(g, 3), msg.shape)}
    return {_in(stage): xp.take(g, engine.edge_index[w.name][0], axis=2)}


# ----------------------------------------------------------------------------------------------
# updates


def update(engine, stage, buf: Buffers) -> None:
    norm = engine.norm_params[stage.norm_group]
    mean = buf[_in(stage, 1)].mean(axis=1)[..., 0]
    delta = (mean - engine.per_task(norm["out_mean"], mean)) * engine.per_task(norm["out_scale"], mean)
    buf[_out(stage)] = buf[_in(stage, 0)] + delta
    if buf.recorder is not None:
        buf.recorder.on_update(engine, stage.slot, delta)


def update_reads(engine, stage, buf: Buffers) -> dict:
    norm = engine.norm_params[stage.norm_group]
    return {"norm:out_mean": norm["out_mean"], "norm:out_scale": norm["out_scale"]}


def update_vjp(engine, stage, rec: Recorded) -> dict:
    xp = engine.be.xp
    g = rec.cot(_out(stage))
    if g is None:
        return {}
    upd = rec.ins[_in(stage, 1)]
    out_mean, out_scale = rec.ins["norm:out_mean"], rec.ins["norm:out_scale"]
    mean = upd.mean(axis=1)[..., 0]
    scaled = g * out_scale
    dupd = xp.broadcast_to(xp.expand_dims(scaled, 1)[..., None] / upd.shape[1], upd.shape)
    return {_in(stage, 0): g, _in(stage, 1): dupd, "norm:out_mean": -scaled.sum(),
            "norm:out_scale": (g * (mean - out_mean)).sum()}


STAGE_KINDS: dict[str, StageKind] = {k.name: k for k in (
    StageKind("dense_matmul", "partial[dst] += value[src] @ w; stores w and x", dense_matmul, dense_matmul_vjp),
    StageKind("sparse_matmul", "partial[dst] += segment_sum(value[src][edges] * w); stores w and the gathered x",
              sparse_matmul, sparse_matmul_vjp),
    StageKind("neuron_bias", "z = partial + b; stores b and the sum", neuron_bias, neuron_bias_vjp),
    StageKind("activation", "a = act(z) (one function per unit for mixed layers); stores z", activation, activation_vjp),
    StageKind("softmax", "softmax over the block; stores z, t, e and the shared denominator", softmax, softmax_vjp),
    StageKind("loss", "per-unit loss against the target; stores the loss node's states", loss, loss_vjp),
    StageKind("seed", "the loss values become the loss nodes' incoming messages", seed, seed_vjp),
    StageKind("gather", "the messages a unit received, combined (mean over its consumers, or sum)", gather, gather_vjp),
    StageKind("learner", "one learner call for every node of a slot: outgoing messages, raw updates, carries", learner,
              learner_vjp, learner_reads),
    StageKind("send", "1:1 messages from a unit to its source unit", send, send_vjp),
    StageKind("replicate", "a bias's message to the weights of its neuron", replicate, replicate_vjp),
    StageKind("aggregate", "weight messages summed into their source units", aggregate, aggregate_vjp),
    StageKind("update", "w += scale * (mean over examples of f - mean0)", update, update_vjp, update_reads),
)}
"""Stage ``op`` -> its :class:`StageKind`."""


def run_stages(engine, stages, buf: Buffers) -> None:
    """Run ``stages`` in order on ``buf``; under the tape each stage with a VJP is one tape entry."""
    if not engine.be.traced:
        for stage in stages:
            STAGE_KINDS[stage.op].run(engine, stage, buf)
        return
    plain = engine.untraced()
    for stage in stages:
        kind = STAGE_KINDS[stage.op]
        if kind.vjp is None or not kind_has_vjp(engine, stage):
            kind.run(engine, stage, buf)
        else:
            _run_recorded(engine, plain, stage, kind, buf)


def kind_has_vjp(engine, stage) -> bool:
    """Whether this stage's VJP covers it (an activation needs a derivative for each of its functions)."""
    if stage.op != "activation":
        return True
    return all(fn in kinds.ACTIVATION_GRADS for fn in engine.graph.units[stage.block].fns)


ACCUMULATED = ("partial:", "received:")
"""Buffers that several stages add to (the rest are written once)."""


def _run_recorded(engine, plain, stage, kind: StageKind, buf: Buffers) -> None:
    """Run ``stage`` on plain arrays and record it as one tape entry with ``kind.vjp``."""
    from graphflow.autodiff.tape import Var, record_stage

    def value(v):
        return v.value if isinstance(v, Var) else v

    flat_in: dict = {}
    for name in stage.inputs:
        if name in buf:
            v = buf[name]
            if isinstance(v, tuple):
                flat_in.update({(name, i): a for i, a in enumerate(v)})
            else:
                flat_in[name] = v
    reads = kind.reads(engine, stage, buf) if kind.reads is not None else {}
    flat_in.update(reads)
    if not any(isinstance(v, Var) for v in flat_in.values()):  # nothing to differentiate: plain run
        kind.run(engine, stage, buf)
        return
    ins = {k: value(v) for k, v in flat_in.items()}
    pbuf = Buffers({name: (tuple(value(a) for a in buf[name]) if isinstance(buf[name], tuple) else value(buf[name]))
                    for name in stage.inputs if name in buf}, state=_plain_state(buf.state, stage, ins),
                   recorder=buf.recorder)  # hooks see plain arrays
    pbuf.saving = True
    saved = kind.run(plain, stage, pbuf)
    outs: dict = {}
    for name in stage.outputs:
        if name in pbuf and (name not in stage.inputs or pbuf[name] is not ins.get(name)):
            v = pbuf[name]
            if isinstance(v, tuple):
                outs.update({(name, i): a for i, a in enumerate(v)})
            else:
                outs[name] = v
    outs.update({f"carry:{key}": v for key, v in pbuf.carries.items()})
    if not outs:  # a stage with nothing to hand on (messages to an input nobody inspects)
        return
    in_keys, out_keys = list(flat_in), list(outs)

    def vjp(cotangents):
        grads = kind.vjp(plain, stage, Recorded(ins, outs, dict(zip(out_keys, cotangents)), saved))
        return [grads.get(k) for k in in_keys]

    recorded = dict(zip(out_keys, record_stage([flat_in[k] for k in in_keys], [outs[k] for k in out_keys], vjp)))
    for name in stage.outputs:
        parts = [k for k in out_keys if k == name or (isinstance(k, tuple) and k[0] == name)]
        if not parts:
            continue
        v = recorded[name] if parts == [name] else tuple(recorded[k] for k in parts)
        if name.startswith(ACCUMULATED):
            buf.add(name, v)
        else:
            buf[name] = v
    for key in pbuf.carries:
        buf.carries[key] = recorded[f"carry:{key}"]


def _plain_state(state, stage, ins: dict):
    """The network state a recorded learner stage reads: its carry, unwrapped."""
    if state is None or stage.op != "learner":
        return state
    carries = {stage.slot: ins["carry"]} if "carry" in ins else {}
    return type(state)(state.params, carries, state.step)
