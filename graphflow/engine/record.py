"""Recording what selected nodes did during an inner loop (the engine's inspection hook).

A :class:`Recorder` is handed to :meth:`Engine.step`; with no recorder the engine does no extra
work. For the selected nodes only (never whole-network copies) it keeps, per inner step: the
incoming message, the raw stored states, the standardized learner input, the carry (stateful),
the outgoing message and the update (weights and biases), as numpy arrays with a leading task
and example axis.

>>> import graphflow as gf, numpy as np
>>> from graphflow.engine import Engine
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2)))
>>> rec = Recorder(g, ["dense2/w[*,0]"])
>>> state = eng.init_network(np.random.default_rng(0))
>>> x = np.ones((1, 4, 2), np.float32)
>>> _ = eng.step(state, x, x[..., :1], recorder=rec)
>>> rec.node("dense2/w[1,0]")["update"].shape, rec.node("dense2/w[1,0]")["message_in"].shape
((1, 1), (1, 1, 4, 2))
"""

from __future__ import annotations

import numpy as np

NODE_LAST = ("update", "update_raw")
"""Fields whose last axis runs over the selected nodes (the others end in a width axis)."""


class EngineHooks:
    """The recorder interface: what :meth:`Engine.step <graphflow.engine.inner.Engine.step>` calls on
    the ``recorder`` it is handed. Every hook does nothing here; recorders override the ones they need.

    Arrays are the backend's (device arrays on CuPy); hooks that keep them copy what they need.
    """

    def records(self, part: str) -> bool:
        """Whether this recorder wants the nodes of block part ``part`` (the engine then computes
        what it would otherwise skip, such as the messages that reach an input unit)."""
        return False

    def on_learner(self, engine, slot, raw, streams, carry, msg, update) -> None:
        """One learner call of ``slot``: raw input streams, standardized streams, new carry (stateful
        learners, else None), outgoing message and raw update (None for nodes without a parameter)."""

    def on_update(self, engine, slot_key: str, delta) -> None:
        """The change applied to the parameters of ``slot_key`` ([T, *nodes])."""

    def on_input_message(self, engine, unit: str, mean_message) -> None:
        """The combined message that reached input unit ``unit`` (only when :meth:`records` wants it)."""

    def end_step(self, engine) -> None:
        """The inner step is over."""


class Recorder(EngineHooks):
    """Keeps the per-step history of the nodes matching ``patterns`` (ids or globs)."""

    def __init__(self, graph, patterns: list[str] | str):
        self.graph = graph
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        parts: dict[str, set] = {}
        for pat in self.patterns:
            for part, idx in graph.select(pat).parts.items():
                parts.setdefault(part, set()).update(int(k) for k in idx)
        self.parts = {p: np.array(sorted(v), dtype=np.int64) for p, v in parts.items()}
        self.steps: list[dict[str, dict[str, np.ndarray]]] = []
        self._current: dict[str, dict[str, np.ndarray]] = {}

    # ---------------------------------------------------------------- engine hooks
    def records(self, part: str) -> bool:
        return part in self.parts

    def _take(self, engine, part: str, a, lead: tuple[int, ...]):
        """Values of the selected nodes, [*lead, nodes, width]: ``a`` broadcasts to
        [*lead, *node axes, width]. The selected nodes are picked first (index 0 along the node
        axes ``a`` is broadcast over), then broadcast: never the whole layer's broadcast."""
        idx = self.parts[part]
        node_shape = self._node_shape(part)
        nd = len(node_shape)
        a = a.reshape((1,) * (len(lead) + nd + 1 - a.ndim) + tuple(a.shape))
        per_axis = np.unravel_index(idx, node_shape)
        index = tuple(engine.be.index(per_axis[d] if a.shape[len(lead) + d] != 1 else np.zeros_like(per_axis[d]))
                      for d in range(nd))
        picked = a[(slice(None),) * len(lead) + index]
        return engine.be.to_numpy(engine.be.xp.broadcast_to(picked, lead + (len(idx),) + a.shape[-1:]))

    def _node_shape(self, part: str) -> tuple[int, ...]:
        block, label = part.split("/")
        w = self.graph.weights.get(block) if label == "w" else None
        if w is not None and w.dense:
            return (w.n_src, w.n_dst)
        return (self.graph.part_size(part),)

    def on_learner(self, engine, slot, raw, streams, carry, msg, update):
        if slot.key not in self.parts:
            return
        nd = len(self._node_shape(slot.key))
        lead = tuple(np.broadcast_shapes(*[tuple(s.shape[:-1]) for s in streams]))[:-nd]
        take = lambda a: self._take(engine, slot.key, a, lead)  # noqa: E731
        rec = self._current.setdefault(slot.key, {})
        rec["message_in"] = take(raw[0])
        rec["states"] = np.concatenate([take(r) for r in raw[1:]], axis=-1)
        rec["learner_input"] = np.concatenate([take(s) for s in streams], axis=-1)
        rec["message_out"] = take(msg)
        if carry is not None:
            rec["carry"] = take(carry)
        if update is not None:
            rec["update_raw"] = take(update)[..., 0]

    def on_update(self, engine, slot_key: str, delta):
        if slot_key in self.parts:
            nd = len(self._node_shape(slot_key))
            lead = tuple(delta.shape[:-nd])
            self._current.setdefault(slot_key, {})["update"] = self._take(engine, slot_key, delta[..., None], lead)[..., 0]

    def on_input_message(self, engine, unit: str, mean_message):
        part = f"{unit}/{self.graph.units[unit].label}"
        if part in self.parts:
            self._current.setdefault(part, {})["message_in"] = self._take(engine, part, mean_message, tuple(mean_message.shape[:-2]))

    def end_step(self, engine):
        self.steps.append(self._current)
        self._current = {}

    # ---------------------------------------------------------------- reading
    def node_ids(self) -> list[str]:
        return [self.graph.node_id(part, int(k)) for part, idx in self.parts.items() for k in idx]

    def node(self, node_id: str) -> dict[str, np.ndarray]:
        """History of one node: field -> array [steps, T, (B,) width]."""
        sel = self.graph.select(node_id)
        (part, idx), = sel.parts.items()
        pos = int(np.searchsorted(self.parts.get(part, np.array([], np.int64)), idx[0]))
        if part not in self.parts or pos >= len(self.parts[part]) or self.parts[part][pos] != idx[0]:
            raise KeyError(f"{node_id} was not recorded; recorded patterns: {self.patterns}")
        fields: dict[str, list] = {}
        for step in self.steps:
            for name, arr in step.get(part, {}).items():
                per_node = arr[..., pos] if name in NODE_LAST else arr[..., pos, :]
                fields.setdefault(name, []).append(per_node)
        return {name: np.stack(arrs) for name, arrs in fields.items()}
