"""A hand-written dense MPLP inner step in plain numpy: the speed baseline for the engine.

No graph, no schedule, no per-node anything: a layer stack is its weight matrices, and one inner
step is the forward pass plus the learners of MPLP_SPEC.md written directly against them. It is
written for speed, so that "graphflow is within x of it" means something:

- The learners' first layer is linear in the concatenated input, so it is never concatenated for
  the weight nodes (B x N x M rows): the message term is computed once per output neuron
  (``msg @ K[message rows]``, [B, M, F]), the input term once per input unit and the weight term
  once per weight, and the three are added by broadcasting inside each block.
- The four kernels that read the learner input (update gate, reset gate, MLPx's first layer; or
  f's and g's first layers) are fused into one [n_in, F] kernel, the two carry kernels into one,
  and the sigmoid gates use ``0.5 + 0.5 tanh(0.5 a)`` with the 0.5 folded into the kernels (an
  exact power-of-two scaling).
- Weight rows are processed in blocks of about ``block_rows`` rows (so that every intermediate
  stays in cache) on ``threads`` threads (numpy releases the GIL inside ufuncs and matmuls).

The arithmetic is that of MPLP_SPEC.md, so it gives the engine's numbers to float32 rounding
(``tests/bench/test_dense_baseline.py`` checks predictions, losses, parameters and carries after
several steps). It covers stack graphs with dense weights (dense, activation, softmax and loss
layers; any sharing; stateful or stateless learners), which is what the benchmarks run.

>>> import numpy as np
>>> from graphflow.interop.mplp import preset_protocol
>>> graph, protocol = preset_protocol("sinusoid")
>>> dense = DenseMPLP(graph, protocol, threads=1)
>>> state = dense.init_network(np.random.default_rng(0), tasks=2)
>>> x = np.zeros((2, 10, 1), np.float32)
>>> state, out = dense.step(state, x, x)
>>> out.loss.shape, state.params["dense2/w"].shape, state.carries["dense2/w"].shape
((2, 10, 1), (2, 20, 20), (2, 10, 20, 20, 24))
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field

import numpy as np

from graphflow.graph import kinds
from graphflow.graph.blocks import ActivationNodes, InputNodes, LossNodes, NeuronNodes, SoftmaxNodes, TargetNodes, WeightNodes
from graphflow.backend import blas_threads
from graphflow.learners.protocol import slot_layout

F32 = np.float32
UNIT_LABELS = {"activation": "act", "softmax": "unit", "loss": "loss"}


# ----------------------------------------------------------------------------------------------
# Learners: fused parameters and row kernels


@dataclass
class DenseLearner:
    """One slot's learner with its kernels fused, plus its normalization (plain float32 arrays)."""

    kind: str
    """``stateful`` or ``stateless``."""
    widths: tuple[int, ...]
    shift: np.ndarray
    scale: np.ndarray
    first: np.ndarray
    """Fused first layer [n_in, F]: stateful [Wux/2 | Wrx/2 | MLPx.dense0], stateless [f.dense0 | g.dense0]."""
    first_bias: np.ndarray
    carry: int = 0
    message: int = 0
    has_parameter: bool = False
    out_mean: float = 0.0
    out_scale: float = 0.0
    p: dict = field(default_factory=dict)
    """The remaining layers, by role (``wc``, ``x1``, ``bx1``, ... see :meth:`from_protocol`)."""

    @classmethod
    def from_protocol(cls, slot, protocol) -> "DenseLearner":
        spec = protocol.spec
        layout = slot_layout(slot, spec)
        lp = {n: np.asarray(a, F32) for n, a in protocol.learners[slot.group].items()}
        norm = {n: np.asarray(a, F32) for n, a in protocol.norms[slot.norm_group].items()}
        common = dict(widths=tuple(layout.stream_widths), shift=norm["in_shift"], scale=norm["in_scale"],
                      carry=layout.carry, message=layout.message, has_parameter=layout.has_parameter,
                      out_mean=F32(norm.get("out_mean", 0.0)), out_scale=F32(norm.get("out_scale", 0.0)))
        if spec.kind == "stateful":
            if spec.gru_mlp_activation != "tanh":
                raise NotImplementedError("the dense baseline implements the tanh GRU MLPs of the checkpoints")
            first = np.concatenate([lp["gru.W_update_x"] * F32(0.5), lp["gru.W_reset_x"] * F32(0.5),
                                    lp["gru.next_x_net.dense0.kernel"]], axis=1)
            bias = np.concatenate([lp["gru.b_update"] * F32(0.5), lp["gru.b_reset"] * F32(0.5),
                                   lp["gru.next_x_net.dense0.bias"]])
            p = {
                "wc": np.concatenate([lp["gru.W_update_c"], lp["gru.W_reset_c"]], axis=1) * F32(0.5),
                "x1": lp["gru.next_x_net.dense1.kernel"], "bx1": lp["gru.next_x_net.dense1.bias"],
                "x2": lp["gru.next_x_net.dense2.kernel"],
                "c0": lp["gru.next_c_net.dense0.kernel"], "bc0": lp["gru.next_c_net.dense0.bias"],
                "c1": lp["gru.next_c_net.dense1.kernel"], "bc1": lp["gru.next_c_net.dense1.bias"],
                "c2": lp["gru.next_c_net.dense2.kernel"], "bn": lp["gru.b_next"],
            }
        else:
            parts = (["f"] if layout.has_parameter else []) + ["g"]
            first = np.concatenate([lp[f"{m}.dense0.kernel"] for m in parts], axis=1)
            bias = np.concatenate([lp[f"{m}.dense0.bias"] for m in parts])
            p = {f"{m}{d}{w}": lp[f"{m}.dense{d}.{n}"] for m in parts for d in (1, 2) for w, n in (("", "kernel"), ("b", "bias"))}
            p["split"] = lp["f.dense0.kernel"].shape[1] if layout.has_parameter else 0
        return cls(spec.kind, first=np.ascontiguousarray(first), first_bias=bias, p=p, **common)

    # ---------------------------------------------------------------- input streams
    def standardize(self, stream: int, values):
        return (values + self.shift[stream]) * self.scale[stream]

    def first_layer_concat(self, streams) -> np.ndarray:
        """First layer of unit nodes (few rows): the standardized streams concatenated, [..., F]."""
        shape = np.broadcast_shapes(*[s.shape[:-1] for s in streams])
        x = np.concatenate([np.broadcast_to(self.standardize(k, s), shape + s.shape[-1:]) for k, s in enumerate(streams)], axis=-1)
        return x @ self.first + self.first_bias

    # ---------------------------------------------------------------- row kernels
    def gru_rows(self, pre: np.ndarray, carry: np.ndarray | None) -> np.ndarray:
        """New carries of R rows: ``pre`` [R, 2C + H] (first layer, biases in), ``carry`` [R, C] or None (zero)."""
        p, c_w = self.p, self.carry
        gates = pre[:, :2 * c_w]
        if carry is not None:
            gates = gates + carry @ p["wc"]
        gates = np.tanh(gates)
        gates *= F32(0.5)
        gates += F32(0.5)
        update, reset = gates[:, :c_w], gates[:, c_w:]
        hx = np.tanh(pre[:, 2 * c_w:])
        hx = hx @ p["x1"]
        hx += p["bx1"]
        np.tanh(hx, out=hx)
        cand = hx @ p["x2"]
        if carry is not None:
            hc = (reset * carry) @ p["c0"]
            hc += p["bc0"]
        else:  # a zero carry reads as the bias alone, the same for every row
            hc = p["bc0"][None]
        hc = np.tanh(hc)
        hc = hc @ p["c1"]
        hc += p["bc1"]
        np.tanh(hc, out=hc)
        cand += hc @ p["c2"]
        cand += p["bn"]
        np.tanh(cand, out=cand)
        if carry is None:  # c' = (1 - u) * cand
            out = cand - update * cand
        else:  # c' = u * c + (1 - u) * cand = cand + u * (c - cand)
            out = carry - cand
            out *= update
            out += cand
        return out

    def mlp_rows(self, pre: np.ndarray, need_message: bool = True):
        """(raw update [R] or None, message [R, k] or None) of the stateless f and g."""
        p = self.p
        h = np.maximum(pre, F32(0))
        update = message = None
        if self.has_parameter:
            f = h[:, :p["split"]] @ p["f1"]
            f += p["f1b"]
            np.maximum(f, F32(0), out=f)
            update = np.tanh(f @ p["f2"] + p["f2b"])[:, 0]
        if need_message:
            g = h[:, p["split"]:] @ p["g1"]
            g += p["g1b"]
            np.maximum(g, F32(0), out=g)
            message = np.tanh(g @ p["g2"] + p["g2b"])
        return update, message

    def flops_per_row(self) -> int:
        """Matmul FLOPs of one node-example (first layer included, at its unfused size)."""
        n_in = sum(self.widths)
        if self.kind == "stateful":
            c, h1 = self.carry, self.p["x1"].shape[0]
            h2 = self.p["x1"].shape[1]
            return 2 * (n_in * (2 * c + h1) + c * 2 * c + c * h1 + 2 * h1 * h2 + 2 * h2 * c)
        total = 2 * n_in * self.first.shape[1]
        for m in (["f"] if self.has_parameter else []) + ["g"]:
            total += 2 * (self.p[f"{m}1"].size + self.p[f"{m}2"].size)
        return total


# ----------------------------------------------------------------------------------------------
# The network


@dataclass
class DenseState:
    """Parameters (the engine's keys and shapes: ``dense0/w`` [T, N, M], ``dense0/b`` [T, M]) and carries."""

    params: dict[str, np.ndarray]
    carries: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DenseStepResult:
    pred: np.ndarray
    """What the loss compared with the target, [T, B, n_out]."""
    loss: np.ndarray
    """Per-element loss, [T, B, n_out]."""


@dataclass
class _Layer:
    kind: str  # dense, activation, softmax, loss
    name: str
    size: int
    fn: str = ""
    n_in: int = 0
    learner: DenseLearner | None = None
    bias_learner: DenseLearner | None = None


class DenseMPLP:
    """The MPLP inner step of a dense layer stack, written directly against its weight matrices.

    ``graph`` and ``protocol`` are read once, here, for the layer sizes and learner parameters;
    :meth:`step` touches only arrays.
    """

    def __init__(self, graph, protocol, threads: int = 2, block_rows: int = 1024, blas_threads: int = 1):
        self.protocol = protocol
        self.threads = threads
        self.blas_threads = blas_threads
        self.block_rows = block_rows
        self.aggregation = protocol.spec.aggregation
        self.kind = protocol.spec.kind
        self.layers = _stack_layers(graph, protocol)
        self.n_in = graph.inputs[0].size
        self._pool = concurrent.futures.ThreadPoolExecutor(threads) if threads > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self.close()

    def _map(self, fn, items) -> None:
        if self._pool is None or len(items) == 1:
            for item in items:
                fn(item)
        else:
            list(self._pool.map(fn, items))

    # ---------------------------------------------------------------- state
    def init_network(self, rng: np.random.Generator, tasks: int = 1) -> DenseState:
        """Weights N(0, init_std^2), biases zero, carries zero (the engine's draws, in the same order)."""
        std = self.protocol.spec.init_std
        params = {}
        for layer in self.layers:
            if layer.kind == "dense":
                params[f"{layer.name}/w"] = rng.normal(0.0, std, size=(tasks, layer.n_in, layer.size)).astype(F32)
        for layer in self.layers:
            if layer.kind == "dense":
                params[f"{layer.name}/b"] = np.zeros((tasks, layer.size), F32)
        return DenseState(params)

    # ---------------------------------------------------------------- one inner step
    def step(self, state: DenseState, x, y) -> tuple[DenseState, DenseStepResult]:
        """Forward on (x [T, B, n_in], y [T, B, n_out]), message pass, residual updates."""
        # Our threads split the rows; BLAS threads on top of them would only contend for the cores.
        with blas_threads(1 if self.threads > 1 else self.blas_threads):
            return self._step(state, x, y)

    def _step(self, state: DenseState, x, y) -> tuple[DenseState, DenseStepResult]:
        x = np.asarray(x, F32)
        y = np.asarray(y, F32)
        h = x
        saved = []  # per layer: what its learners read
        for layer in self.layers:
            if layer.kind == "dense":
                w = state.params[f"{layer.name}/w"]
                b = state.params[f"{layer.name}/b"][:, None]
                s = h @ w
                saved.append((h, s, w, b))
                h = s + b
            elif layer.kind == "activation":
                saved.append((h,))
                h = kinds.ACTIVATIONS[layer.fn](np, h)
            elif layer.kind == "softmax":
                h, states = kinds.softmax_forward(np, h)
                saved.append(states)
            else:
                pred = h
                loss, states = kinds.loss_forward(np, layer.fn, h, y)
                saved.append(states)

        params = dict(state.params)
        carries = {}
        message = loss[..., None]
        for index in range(len(self.layers) - 1, -1, -1):
            layer, states = self.layers[index], saved[index]
            if layer.kind != "dense":
                key = f"{layer.name}/{UNIT_LABELS[layer.kind]}"
                message, _, carries[key] = self._unit_learner(layer.learner, [message] + [s[..., None] for s in states],
                                                              state.carries.get(key))
                continue
            inputs, sums, w, b = states
            bkey, wkey = f"{layer.name}/b", f"{layer.name}/w"
            bias_msg, bias_upd, carries[bkey] = self._unit_learner(layer.bias_learner, [message, b[..., None], sums[..., None]],
                                                                   state.carries.get(bkey))
            to_inputs = index > 0
            w_upd, received, carries[wkey] = self._weight_learner(layer.learner, bias_msg, w, inputs, state.carries.get(wkey),
                                                                  to_inputs)
            params[bkey] = params[bkey] + self._delta(layer.bias_learner, bias_upd)
            params[wkey] = params[wkey] + self._delta(layer.learner, w_upd)
            if to_inputs:
                message = received / F32(layer.size) if self.aggregation == "mean" else received
        carries = {k: v for k, v in carries.items() if v is not None}
        return DenseState(params, carries), DenseStepResult(pred, loss)

    @staticmethod
    def _delta(learner: DenseLearner, batch_mean_update):
        return (batch_mean_update - learner.out_mean) * learner.out_scale

    def _unit_learner(self, learner: DenseLearner, streams, carry):
        """(message [T, B, n, k], batch-mean update [T, n] or None, new carry or None) of a unit slot."""
        pre = learner.first_layer_concat(streams)
        lead = pre.shape[:-1]
        rows = pre.reshape(-1, pre.shape[-1])
        if learner.kind == "stateless":
            update, message = learner.mlp_rows(rows)
            update = None if update is None else update.reshape(lead).mean(axis=1)
            return message.reshape(lead + (-1,)), update, None
        new = learner.gru_rows(rows, None if carry is None else carry.reshape(-1, learner.carry)).reshape(lead + (-1,))
        update = new[..., 0].mean(axis=1) if learner.has_parameter else None
        return new[..., learner.carry - learner.message:], update, new

    def _weight_learner(self, learner: DenseLearner, bias_msg, w, inputs, carry, to_inputs: bool):
        """All B x N x M weight-learner calls of one layer, in blocks of rows.

        Returns (batch-mean update [T, N, M], summed message per input [T, B, N, k] or None,
        new carry [T, B, N, M, C] or None).
        """
        tasks, batch, n_in = inputs.shape
        n_out = w.shape[-1]
        k = learner.widths[0]
        first = learner.first
        # The three terms of the first layer, each at its natural shape.
        msg_term = learner.standardize(0, bias_msg) @ first[:k] + learner.first_bias  # [T, B, M, F]
        w_std = learner.standardize(1, w)  # [T, N, M]
        x_std = learner.standardize(2, inputs)  # [T, B, N]
        row_w, row_x = first[k], first[k + 1]
        stateful = learner.kind == "stateful"
        width = learner.carry if stateful else 1
        new = np.empty((tasks, batch, n_in, n_out, width), F32)
        received = np.empty((tasks, batch, n_in, learner.message), F32) if to_inputs else None

        # A block is a range of input units of one task: its weight term is computed once and
        # reused for every example; the examples go through in chunks of about block_rows rows.
        n_chunk = min(n_in, max(1, self.block_rows // n_out))
        b_chunk = min(batch, max(1, self.block_rows // (n_chunk * n_out)))
        blocks = [(t, n0, min(n0 + n_chunk, n_in)) for t in range(tasks) for n0 in range(0, n_in, n_chunk)]

        def run(block):
            t, n0, n1 = block
            w_term = w_std[t, n0:n1, :, None] * row_w  # [n, M, F]
            for b0 in range(0, batch, b_chunk):
                b1 = min(b0 + b_chunk, batch)
                pre = msg_term[t, b0:b1, None] + w_term  # [b, n, M, F]
                pre += (x_std[t, b0:b1, n0:n1, None] * row_x)[:, :, None]
                rows = pre.reshape(-1, pre.shape[-1])
                shape = pre.shape[:3]
                if stateful:
                    old = None if carry is None else carry[t, b0:b1, n0:n1].reshape(-1, width)
                    out = learner.gru_rows(rows, old).reshape(shape + (width,))
                    new[t, b0:b1, n0:n1] = out
                    if to_inputs:
                        received[t, b0:b1, n0:n1] = out[..., width - learner.message:].sum(axis=2)
                else:
                    update, message = learner.mlp_rows(rows, to_inputs)
                    new[t, b0:b1, n0:n1, :, 0] = update.reshape(shape)
                    if to_inputs:
                        received[t, b0:b1, n0:n1] = message.reshape(shape + (-1,)).sum(axis=2)

        self._map(run, blocks)
        update = new[..., 0].mean(axis=1)
        return update, received, (new if stateful else None)

    # ---------------------------------------------------------------- accounting
    def step_flops(self, tasks: int, batch: int) -> int:
        """Matmul FLOPs of one inner step (learners and forward) for T tasks of B examples."""
        rows = tasks * batch
        total = 0
        for layer in self.layers:
            if layer.kind == "dense":
                total += 2 * rows * layer.n_in * layer.size
                total += rows * layer.n_in * layer.size * layer.learner.flops_per_row()
                total += rows * layer.size * layer.bias_learner.flops_per_row()
            else:
                total += rows * layer.size * layer.learner.flops_per_row()
        return total

    def carry_bytes(self, tasks: int, batch: int) -> int:
        """Bytes of the weight learners' carries (or raw updates) one step reads and writes."""
        total = 0
        for layer in self.layers:
            if layer.kind == "dense":
                width = layer.learner.carry if self.kind == "stateful" else 1
                total += 2 * 4 * tasks * batch * layer.n_in * layer.size * width
        return total


def _stack_layers(graph, protocol) -> list[_Layer]:
    """The layer list of a stack graph (a chain input -> dense -> ... -> loss) with its learners."""
    layers: list[_Layer] = []
    previous = None
    for block in graph.blocks:
        if isinstance(block, (InputNodes, TargetNodes)):
            if isinstance(block, InputNodes):
                previous = block.name
            continue
        if isinstance(block, WeightNodes):
            if not block.dense or block.src != previous or block.dst != block.name:
                raise ValueError(f"{block.name}: the dense baseline runs chains of dense layers only")
            layers.append(_Layer("dense", block.name, block.n_dst, n_in=block.n_src,
                                 learner=DenseLearner.from_protocol(graph.slots[f"{block.name}/w"], protocol)))
        elif isinstance(block, NeuronNodes):
            if not layers or layers[-1].name != block.name or block.bias_edges is not None and \
                    not np.array_equal(block.bias_edges[:, 0], block.bias_edges[:, 1]):
                raise ValueError(f"{block.name}: the dense baseline needs one weight block per neuron block, biases in order")
            layers[-1].bias_learner = DenseLearner.from_protocol(graph.slots[f"{block.name}/b"], protocol)
            previous = block.name
        else:
            if getattr(block, "src", None) != previous:
                raise ValueError(f"{block.name}: the dense baseline runs layer chains only")
            if isinstance(block, ActivationNodes):
                if len(set(block.fns)) > 1:
                    raise ValueError(f"{block.name}: the dense baseline needs one activation per layer")
                layers.append(_Layer("activation", block.name, block.size, fn=block.fns[0],
                                     learner=DenseLearner.from_protocol(graph.slots[f"{block.name}/act"], protocol)))
            elif isinstance(block, SoftmaxNodes):
                layers.append(_Layer("softmax", block.name, block.size,
                                     learner=DenseLearner.from_protocol(graph.slots[f"{block.name}/unit"], protocol)))
            elif isinstance(block, LossNodes):
                layers.append(_Layer("loss", block.name, block.size, fn=block.fn,
                                     learner=DenseLearner.from_protocol(graph.slots[f"{block.name}/loss"], protocol)))
            else:
                raise ValueError(f"{block.name}: the dense baseline does not run {type(block).__name__} blocks")
            previous = block.name
    if not layers or layers[-1].kind != "loss" or sum(layer.kind == "loss" for layer in layers) != 1:
        raise ValueError("the dense baseline needs a stack ending in one loss")
    return layers


__all__ = ["DenseLearner", "DenseMPLP", "DenseState", "DenseStepResult"]
