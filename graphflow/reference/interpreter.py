"""The per-node reference interpreter: MPLP_SPEC.md run literally, one scalar node at a time.

It is the oracle the batched engine (and any faster path) is checked against, so it is written to
be obviously correct rather than fast: plain Python loops over examples and nodes, Python floats
for every forward value and state, tiny float64 numpy vectors for the k-dimensional messages and
the learners' MLP / GRU arithmetic. Node rules are written out here from the table of
MPLP_SPEC.md ("Nodes and arrows") instead of being borrowed from the engine's vectorized code, so
that a slip there cannot hide here.

It must never know the engine's batching: no schedule, no broadcasting over nodes, no array layout
beyond the parameter dict it accepts and returns (``"<block>/w"``: [N, M] for a dense block, [E]
in edge order for a sparse one; ``"<block>/b"``: [M]). It reads the graph only through its public
structure (blocks in topological order, ``WeightNodes.edges()``, slots and their groups).

>>> import numpy as np, graphflow as gf
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> proto = Protocol.init(g, gf.LearnerSpec(message_size=2, hidden=1), seed=0)
>>> params = {"dense0/w": np.full((2, 3), 0.1), "dense0/b": np.zeros(3),
...           "dense2/w": np.full((3, 1), 0.2), "dense2/b": np.zeros(1)}
>>> xs, ys = np.ones((2, 4, 2)), np.zeros((2, 4, 1))       # 2 steps of 4 examples
>>> trace = Interpreter(g, proto).run(params, xs, ys)
>>> len(trace), trace[0]["outputs"]["loss3"].shape, trace[0]["params"]["dense0/w"].shape
(2, (4, 1), (2, 3))
>>> round(float(trace[0]["outputs"]["loss3"][0, 0]), 6)       # relu(2 * 0.1) * 3 * 0.2
0.12
"""

from __future__ import annotations

import math

import numpy as np

from graphflow.graph.blocks import (
    ActivationNodes,
    InputNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    TargetNodes,
    WeightNodes,
)
from graphflow.graph.graph import data_by_block
from graphflow.graph.kinds import CE_CLIP

# ----------------------------------------------------------------------------------------------
# Forward rules of single nodes (MPLP_SPEC.md, "Nodes and arrows"), on Python floats.


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # the same value, without overflowing exp(-z) for very negative z
    return e / (1.0 + e)


ACTIVATION_RULES = {
    "relu": lambda z: max(z, 0.0),
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "step": lambda z: 1.0 if z > 0 else 0.0,
    "identity": lambda z: z,
}


def loss_rule(fn: str, out: float, target: float) -> tuple[float, dict[str, float]]:
    """Loss value of one loss node and its states, by name.

    >>> loss_rule("l2", 1.0, 3.0)
    (2.0, {'out': 1.0, 'target': 3.0, 'diff': 2.0})
    >>> loss_rule("l1", 1.0, 3.0)[0], round(loss_rule("ce", 0.5, 1.0)[0], 6)
    (2.0, 0.693147)
    """
    if fn == "l2":
        d = target - out
        return d * d / 2.0, {"out": out, "target": target, "diff": d}
    if fn == "l1":
        return abs(target - out), {"out": out, "target": target}
    if fn == "ce":
        p = min(max(out, CE_CLIP), 1.0 - CE_CLIP)
        log_p = math.log(p)
        return -target * log_p, {"p": p, "target": target, "log_p": log_p}
    raise KeyError(f"unknown loss {fn!r}")


# ----------------------------------------------------------------------------------------------
# Learners of single nodes (MPLP_SPEC.md, "Learners"), on float64 vectors.


def _relu(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0)


def _sigmoid_vec(v: np.ndarray) -> np.ndarray:
    return np.array([_sigmoid(float(a)) for a in v])


def _dense(p: dict, name: str, v: np.ndarray) -> np.ndarray:
    """``v @ kernel + bias`` of one layer (the last layer of the GRU's MLPs has no bias)."""
    out = v @ p[f"{name}.kernel"]
    bias = p.get(f"{name}.bias")
    return out if bias is None else out + bias


def stateless_learner(p: dict, x: np.ndarray) -> tuple[float | None, np.ndarray]:
    """(update, message) of one node from its standardized input ``x``: MLPs with ReLU, ReLU, tanh.

    The update is None for a node without a parameter (its learner has no f).
    """
    def mlp(prefix):
        h = _relu(_dense(p, f"{prefix}.dense0", x))
        h = _relu(_dense(p, f"{prefix}.dense1", h))
        return np.tanh(_dense(p, f"{prefix}.dense2", h))

    message = mlp("g")
    update = float(mlp("f")[0]) if "f.dense0.kernel" in p else None
    return update, message


def gru_learner(p: dict, x: np.ndarray, carry: np.ndarray, mlp_activation: str) -> np.ndarray:
    """The new carry of one node (the GRU-like cell of MPLP_SPEC.md)."""
    act = np.tanh if mlp_activation == "tanh" else _relu

    def mlp(prefix, v):
        h = act(_dense(p, f"{prefix}.dense0", v))
        h = act(_dense(p, f"{prefix}.dense1", h))
        return _dense(p, f"{prefix}.dense2", h)

    u = _sigmoid_vec(x @ p["gru.W_update_x"] + carry @ p["gru.W_update_c"] + p["gru.b_update"])
    r = _sigmoid_vec(x @ p["gru.W_reset_x"] + carry @ p["gru.W_reset_c"] + p["gru.b_reset"])
    candidate = np.tanh(mlp("gru.next_x_net", x) + mlp("gru.next_c_net", r * carry) + p["gru.b_next"])
    return u * carry + (1.0 - u) * candidate


# ----------------------------------------------------------------------------------------------
# The interpreter


class Interpreter:
    """Runs the inner loop of ``graph`` with ``protocol`` node by node, for one task, in float64.

    ``run(params, xs, ys)`` returns one record per inner step:

    - ``"outputs"``: loss block -> [B, n], the values each loss compared with its target;
    - ``"losses"``: loss block -> [B, n], per-element loss values (both before the update);
    - ``"params"``: the parameters after the step's update, in the layout they were given;
    - ``"messages"``: learner slot key -> [B, nodes, k], every node's outgoing message (a weight
      slot's nodes in edge order);
    - ``"input_messages"``: input block -> [B, n, k], the combined message each input unit
      received (NaN where a unit feeds nothing).
    """

    def __init__(self, graph, protocol):
        self.graph = graph
        self.spec = protocol.spec
        self.learners = {g: {n: np.asarray(a, np.float64) for n, a in p.items()} for g, p in protocol.learners.items()}
        self.norms = {g: {n: np.asarray(a, np.float64) for n, a in p.items()} for g, p in protocol.norms.items()}

    # ------------------------------------------------------------------ inputs and outputs
    def _param_nodes(self, params: dict) -> dict[str, list[float]]:
        """Parameters as one Python float per node, in node order."""
        nodes = {}
        for w in self.graph.weights.values():
            key = f"{w.name}/w"
            a = np.asarray(params[key], np.float64)
            want = (w.n_src, w.n_dst) if w.dense else (w.size,)
            if a.shape != want:
                raise ValueError(f"{key}: shape {a.shape}, expected {want} (one task)")
            i, j = w.edges()
            nodes[key] = [float(a[i[k], j[k]]) if w.dense else float(a[k]) for k in range(w.size)]
        for b in self._neuron_blocks():
            key = f"{b.name}/b"
            a = np.asarray(params[key], np.float64)
            if a.shape != (b.size,):
                raise ValueError(f"{key}: shape {a.shape}, expected {(b.size,)} (one task)")
            nodes[key] = [float(v) for v in a]
        return nodes

    def _param_arrays(self, nodes: dict[str, list[float]]) -> dict[str, np.ndarray]:
        out = {}
        for w in self.graph.weights.values():
            values = nodes[f"{w.name}/w"]
            if w.dense:
                a = np.zeros((w.n_src, w.n_dst))
                for k, (i, j) in enumerate(zip(*w.edges())):
                    a[i, j] = values[k]
            else:
                a = np.array(values, dtype=np.float64)
            out[f"{w.name}/w"] = a
        for b in self._neuron_blocks():
            out[f"{b.name}/b"] = np.array(nodes[f"{b.name}/b"], dtype=np.float64)
        return out

    def _neuron_blocks(self) -> list[NeuronNodes]:
        return [b for b in self.graph.units.values() if isinstance(b, NeuronNodes)]

    def _steps(self, data, blocks, what: str) -> list[dict[str, np.ndarray]]:
        """[steps, B, n] (one block) or {block: [steps, B, n]} -> per step {block: [B, n]}."""
        data = data_by_block(data, blocks, what)
        arrays = {}
        for b in blocks:
            a = np.asarray(data[b.name], np.float64)
            if a.ndim != 3 or a.shape[-1] != b.size:
                raise ValueError(f"{what} {b.name!r}: shape {a.shape}, expected [steps, B, {b.size}]")
            arrays[b.name] = a
        steps = {a.shape[0] for a in arrays.values()}
        if len(steps) != 1:
            raise ValueError(f"{what}: blocks disagree on the number of steps {sorted(steps)}")
        return [{name: a[s] for name, a in arrays.items()} for s in range(steps.pop())]

    # ------------------------------------------------------------------ the inner loop
    def run(self, params: dict, xs, ys) -> list[dict]:
        """Inner steps on ``xs``/``ys`` ([steps, B, n], or dicts of them by input/target block)."""
        nodes = self._param_nodes(params)
        carries: dict[tuple[str, int, int], np.ndarray] = {}  # (slot, node, example) -> carry
        trace = []
        for x, y in zip(self._steps(xs, self.graph.inputs, "inputs"), self._steps(ys, self.graph.targets, "targets"), strict=True):
            record, nodes = self.step(nodes, carries, x, y)
            record["params"] = self._param_arrays(nodes)
            trace.append(record)
        return trace

    def step(self, nodes: dict[str, list[float]], carries: dict, x: dict, y: dict):
        """One inner step: per example a forward pass and a message pass, then the updates."""
        batch = {a.shape[0] for a in list(x.values()) + list(y.values())}
        if len(batch) != 1:
            raise ValueError(f"inputs and targets disagree on the batch size {sorted(batch)}")
        batch = batch.pop()
        raw_updates: dict[str, list[list[float]]] = {key: [[] for _ in values] for key, values in nodes.items()}
        record = {"outputs": {}, "losses": {}, "messages": {}, "input_messages": {}}
        for loss in self.graph.losses:
            record["outputs"][loss.name] = np.zeros((batch, loss.size))
            record["losses"][loss.name] = np.zeros((batch, loss.size))
        for example in range(batch):
            feed = {name: [float(v) for v in a[example]] for name, a in {**x, **y}.items()}
            values, states, losses = self.forward_example(nodes, feed)
            for loss in self.graph.losses:
                record["outputs"][loss.name][example] = values[loss.src]
                record["losses"][loss.name][example] = losses[loss.name]
            self.message_pass_example(states, losses, carries, example, raw_updates, record, batch)
        new_nodes = {}
        for key, values in nodes.items():
            norm = self.norms[self.graph.slots[key].norm_group]
            new_nodes[key] = []
            for value, per_example in zip(values, raw_updates[key]):
                batch_mean = sum(per_example) / len(per_example)
                new_nodes[key].append(value + (batch_mean - float(norm["out_mean"])) * float(norm["out_scale"]))
        return record, new_nodes

    # ------------------------------------------------------------------ forward, one example
    def forward_example(self, nodes: dict[str, list[float]], feed: dict[str, list[float]]):
        """Unit values (neuron blocks: z, after the bias), node states by slot, loss values."""
        values: dict[str, list[float]] = {}
        sums: dict[str, list[float]] = {}  # neuron block -> y_j, the sum of its weight products
        states: dict[str, list[dict[str, float]]] = {}
        losses: dict[str, list[float]] = {}
        for block in self.graph.blocks:  # topological order
            if isinstance(block, (InputNodes, TargetNodes)):
                values[block.name] = list(feed[block.name])
            elif isinstance(block, WeightNodes):
                w = nodes[f"{block.name}/w"]
                y = sums.setdefault(block.dst, [0.0] * block.n_dst)
                node_states = []
                for k, (i, j) in enumerate(zip(*block.edges())):
                    x_i = values[block.src][i]
                    y[j] += w[k] * x_i
                    node_states.append({"w": w[k], "x": x_i})
                states[f"{block.name}/w"] = node_states
            elif isinstance(block, NeuronNodes):
                b = nodes[f"{block.name}/b"]
                y = sums[block.name]
                z = [0.0] * block.size
                node_states = []
                for p in range(block.size):  # bias node p feeds neuron sum j
                    j = self._neuron_of_bias(block, p)
                    z[j] = y[j] + b[p]
                    node_states.append({"b": b[p], "y": y[j]})
                values[block.name] = z
                states[f"{block.name}/b"] = node_states
            elif isinstance(block, ActivationNodes):
                z = values[block.src]
                values[block.name] = [ACTIVATION_RULES[block.fn_of(j)](z[j]) for j in range(block.size)]
                states[f"{block.name}/act"] = [{"z": z[j]} for j in range(block.size)]
            elif isinstance(block, SoftmaxNodes):
                z = values[block.src]
                top = max(z)
                t = [zj - top for zj in z]
                e = [math.exp(tj) for tj in t]
                s = sum(e)
                values[block.name] = [ej / s for ej in e]
                states[f"{block.name}/unit"] = [{"z": z[j], "t": t[j], "e": e[j], "s": s} for j in range(block.size)]
            elif isinstance(block, LossNodes):
                rules = [loss_rule(block.fn, values[block.src][j], values[block.target][j]) for j in range(block.size)]
                losses[block.name] = [value for value, _ in rules]
                states[f"{block.name}/loss"] = [node_states for _, node_states in rules]
        return values, states, losses

    @staticmethod
    def _neuron_of_bias(block: NeuronNodes, p: int) -> int:
        if block.bias_edges is None:
            return p
        return int(block.bias_edges[block.bias_edges[:, 0] == p, 1][0])

    # ------------------------------------------------------------------ messages, one example
    def _combine(self, messages: list[np.ndarray]) -> np.ndarray:
        """What a unit makes of the messages of all nodes that read it (seed eq. 9: their mean)."""
        total = messages[0]
        for m in messages[1:]:
            total = total + m
        return total / len(messages) if self.spec.aggregation == "mean" else total

    def message_pass_example(self, states, losses, carries, example, raw_updates, record, batch):
        """Run every node's learner once, from the losses back to the inputs (MPLP_SPEC.md, backward)."""
        inbox: dict[str, list[list[np.ndarray]]] = {b.name: [[] for _ in range(b.size)] for b in self.graph.units.values()}
        sent_by_bias: dict[str, list[np.ndarray | None]] = {}  # neuron block -> message of the bias of neuron j
        k = self.spec.message_size

        def run_node(slot_key: str, node: int, incoming: np.ndarray) -> np.ndarray:
            slot = self.graph.slots[slot_key]
            message, update = self.learner_call(slot, node, example, incoming, states[slot_key][node], carries)
            if update is not None:
                raw_updates[slot_key][node].append(update)
            out = record["messages"].setdefault(slot_key, np.zeros((batch, slot.size, k)))
            out[example, node] = message
            return message

        for block in reversed(self.graph.blocks):  # every consumer of a unit comes before the unit
            if isinstance(block, LossNodes):
                for j in range(block.size):
                    seed = np.array([losses[block.name][j]])
                    inbox[block.src][j].append(run_node(f"{block.name}/loss", j, seed))
            elif isinstance(block, (ActivationNodes, SoftmaxNodes)):
                for j in range(block.size):
                    message = run_node(f"{block.name}/{block.label}", j, self._combine(inbox[block.name][j]))
                    inbox[block.src][j].append(message)
            elif isinstance(block, NeuronNodes):
                sent_by_bias[block.name] = [None] * block.size
                for p in range(block.size):
                    j = self._neuron_of_bias(block, p)
                    sent_by_bias[block.name][j] = run_node(f"{block.name}/b", p, self._combine(inbox[block.name][j]))
            elif isinstance(block, WeightNodes):
                for node, (i, j) in enumerate(zip(*block.edges())):
                    # replication: every weight of neuron j gets the bias's message unchanged
                    message = run_node(f"{block.name}/w", node, sent_by_bias[block.dst][j])
                    inbox[block.src][i].append(message)
            elif isinstance(block, InputNodes):
                out = record["input_messages"].setdefault(block.name, np.full((batch, block.size, k), np.nan))
                for i in range(block.size):
                    if inbox[block.name][i]:
                        out[example, i] = self._combine(inbox[block.name][i])

    def learner_call(self, slot, node: int, example: int, incoming: np.ndarray, node_states: dict[str, float], carries: dict):
        """(outgoing message, raw update or None) of one node; a stateful node's carry moves on."""
        norm = self.norms[slot.norm_group]
        shift, scale = norm["in_shift"], norm["in_scale"]
        streams = [(np.asarray(incoming, np.float64) + shift[0]) * scale[0]]
        for s, name in enumerate(slot.states, start=1):
            streams.append(np.array([(node_states[name] + shift[s]) * scale[s]]))
        x = np.concatenate(streams)
        p = self.learners[slot.group]
        if self.spec.kind == "stateless":
            update, message = stateless_learner(p, x)
            return message, update
        k = self.spec.message_size
        width = (1 if slot.has_parameter else 0) + self.spec.hidden + k
        key = (slot.key, node, example)
        carry = gru_learner(p, x, carries.get(key, np.zeros(width)), self.spec.gru_mlp_activation)
        carries[key] = carry
        return carry[width - k:], (float(carry[0]) if slot.has_parameter else None)

    def node_ids(self, slot_key: str) -> list[str]:
        """Ids of a slot's nodes in the order of ``record["messages"][slot_key]``."""
        return [self.graph.node_id(slot_key, n) for n in range(self.graph.slots[slot_key].size)]


__all__ = ["ACTIVATION_RULES", "Interpreter", "gru_learner", "loss_rule", "stateless_learner"]
