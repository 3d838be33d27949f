"""Recording inner-loop runs: an :class:`Inspector` runs an engine's steps with a recorder on the
selected nodes and collects the result as a :class:`~graphflow.inspect.run.Run` (whose layout,
:mod:`graphflow.inspect.run`, is the reading side's).

An inspector offers the engine's inner-loop interface (``init_network``, ``network_from_arrays``,
``step``, ``forward``, ``predict``), like :class:`graphflow.baselines.BackpropBaseline`, so any
code that runs an engine step by step — an evaluation protocol, a trace replay — runs it recorded
when handed the inspector instead. Per step it keeps only the selected nodes (through
:class:`graphflow.engine.record.Recorder`), the step's losses and predictions, optionally the
backprop gradients of the selected weights and biases, and a few quantiles of every learner
group's updates; never a copy of the network.

>>> import graphflow as gf, numpy as np
>>> from graphflow.engine import Engine
>>> from graphflow.learners import Protocol
>>> g = gf.build(gf.stack(2, gf.Dense(3), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
>>> insp = Inspector(Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2))), "dense2/w[*,0]",
...                  gradients=True)
>>> state = insp.init_network(np.random.default_rng(0))
>>> x = np.ones((1, 4, 2), np.float32)
>>> state, _ = insp.step(state, x, x[..., :1])
>>> insp.add("relu1/act[*]")  # from the next step on
>>> state, _ = insp.step(state, x, x[..., :1])
>>> run = insp.to_run()
>>> run.node("relu1/act[0]").recorded.tolist(), run.node("dense2/w[2,0]")["gradient"].shape
([False, True], (2, 1))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphflow.engine.record import Recorder
from graphflow.errors import GraphflowError
from graphflow.graph import data_by_block
from graphflow.graph.blocks import InputNodes
from graphflow.graph.ids import split_patterns
from graphflow.inspect.run import (FIELD_DIMS, HISTOGRAM_BINS, QUANTILES, RUN_FORMAT, RUN_KIND, PartRecord, Run,
                                   channel_names)


@dataclass
class _Step:
    """What one recorded step kept: the selected nodes' fields per part, losses, data, summaries."""

    nodes: dict[str, np.ndarray]
    fields: dict[str, dict[str, np.ndarray]]
    losses: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    data: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


class Inspector:
    """Runs ``engine``'s inner steps recording the nodes matching ``patterns`` (ids or globs).

    Parameters
    ----------
    engine
        The :class:`graphflow.engine.Engine` to run.
    patterns
        Node ids or glob patterns (``dense2/w[3,*]``, ``relu1/act[*]``, ``loss4/*``), a list or one
        comma-separated string; more can be added between steps with :meth:`add`.
    gradients
        Also record the backprop gradient of the same loss on the same graph for the selected
        weights and biases at every step (costs one differentiated forward pass per step).
    group_stats
        Record quantiles and a histogram of every learner group's updates (all its nodes, from
        the parameters before and after each step).
    keep_data
        Keep the inner-loop inputs and targets in the run.
    """

    def __init__(self, engine, patterns: list[str] | str = (), gradients: bool = False, group_stats: bool = True,
                 keep_data: bool = True, meta: dict | None = None):
        self.engine = engine
        self.gradients = gradients
        self.group_stats = group_stats
        self.keep_data = keep_data
        self.meta = dict(meta or {})
        self.patterns: list[dict] = []
        self._steps: list[_Step] = []
        self._baseline = None
        self._skipped: dict[str, str] = {}
        self.add(*([patterns] if isinstance(patterns, str) else patterns))

    # ------------------------------------------------------------------ the engine's interface
    @property
    def graph(self):
        return self.engine.graph

    @property
    def be(self):
        return self.engine.be

    @property
    def protocol(self):
        return self.engine.protocol

    def init_network(self, rng, tasks: int = 1, init_std: float | None = None):
        return self.engine.init_network(rng, tasks, init_std)

    def network_from_arrays(self, arrays):
        return self.engine.network_from_arrays(arrays)

    def forward(self, state, x, y=None):
        return self.engine.forward(state, x, y)

    def predict(self, state, x):
        return self.engine.predict(state, x)

    # ------------------------------------------------------------------ recording
    def add(self, *patterns: str) -> None:
        """Record these nodes too, from the next step on (each pattern is checked now)."""
        for text in patterns:
            for pattern in split_patterns(text):
                self.graph.select(pattern)  # a pattern matching nothing is an error now, not at the end
                if pattern not in [p["pattern"] for p in self.patterns]:
                    self.patterns.append({"pattern": pattern, "from_step": len(self._steps)})

    def step(self, state, x, y, recorder=None):
        """One inner step of the engine, recorded; returns what :meth:`Engine.step` returns."""
        if recorder is not None:
            raise GraphflowError("an Inspector records by itself; call step() without a recorder")
        be = self.be
        rec = Recorder(self.graph, [p["pattern"] for p in self.patterns]) if self.patterns else None
        grads = self._gradients(state, x, y, rec) if (self.gradients and rec is not None) else {}
        new, res = self.engine.step(state, x, y, recorder=rec)
        fields = rec.steps[-1] if rec is not None else {}
        nodes = {part: idx for part, idx in (rec.parts.items() if rec else ()) if part in fields}
        for part in (rec.parts if rec else ()):
            if part not in fields:
                self._skipped.setdefault(part, _why_not_recorded(self.graph, part))
        for part, g in grads.items():
            fields[part]["gradient"] = g
        kept = _Step(nodes, fields, {k: be.to_numpy(v) for k, v in res.losses.items()},
                     {k: be.to_numpy(v) for k, v in res.outputs.items()})
        if self.keep_data:
            kept.data = self._data(x, y)
        if self.group_stats:
            kept.groups = self._group_stats(state, new)
        self._steps.append(kept)
        return new, res

    def record(self, state, xs, ys):
        """Run and record ``len(xs)`` steps (``xs``/``ys``: [steps, T, B, n] or [steps, B, n])."""
        results = []
        for k in range(len(xs)):
            state, res = self.step(state, xs[k], ys[k])
            results.append(res)
        return state, results

    def _gradients(self, state, x, y, rec: Recorder) -> dict[str, np.ndarray]:
        """Backprop gradient of the same loss for the selected weights and biases: part -> [T, nodes]."""
        if self._baseline is None:
            from graphflow.baselines import BackpropBaseline

            self._baseline = BackpropBaseline(self.engine, "sgd")
        slots = self.graph.slots
        wanted = [p for p in rec.parts if p in slots and slots[p].has_parameter]
        if not wanted:
            return {}
        _, grads = self._baseline.gradients(state, x, y)
        out = {}
        for part in wanted:
            g = self.be.to_numpy(grads[part])
            out[part] = g.reshape(g.shape[0], -1)[:, rec.parts[part]]
        return out

    def _data(self, x, y) -> dict[str, np.ndarray]:
        out = {}
        for kind, value, blocks in (("inputs", x, self.graph.inputs), ("targets", y, self.graph.targets)):
            for name, a in data_by_block(value, blocks, kind).items():
                a = self.be.to_numpy(self.be.asarray(a))
                out[f"{kind}/{name}"] = a if a.ndim == 3 else a[None]
        return out

    def _group_stats(self, before, after) -> dict[str, dict[str, np.ndarray]]:
        """Per learner group with parameters: quantiles, histogram and moments of all its updates."""
        out = {}
        for group, members in self.graph.groups.items():
            keys = [k for k in members if self.graph.slots[k].has_parameter]
            if keys:
                delta = np.concatenate([self.be.to_numpy(after.params[k] - before.params[k]).ravel() for k in keys])
                out[group] = update_statistics(delta)
        return out

    # ------------------------------------------------------------------ the result
    def to_run(self) -> Run:
        """The recorded steps as a :class:`Run` (the inspector can go on recording afterwards)."""
        if not self._steps:
            raise GraphflowError("nothing recorded yet: run at least one step")
        graph, steps = self.graph, self._steps
        parts = {}
        for part in graph.parts():
            present = [k for k, s in enumerate(steps) if part in s.fields]
            if present:
                parts[part] = self._part_record(part, present)
        losses = {b: np.stack([s.losses[b] for s in steps]) for b in steps[0].losses}
        outputs = {b: np.stack([s.outputs[b] for s in steps]) for b in steps[0].outputs}
        groups = {}
        for group in steps[0].groups:
            groups[group] = {name: np.stack([s.groups[group][name] for s in steps]) for name in steps[0].groups[group]}
        data = {k: np.stack([s.data[k] for s in steps]) for k in steps[0].data} if all(s.data for s in steps) else {}
        first = next(iter(losses.values()))
        header = {
            "kind": RUN_KIND, "format": RUN_FORMAT,
            "graph": graph.to_spec().model_dump(mode="json"),
            "learner": self.protocol.spec.model_dump(mode="json"),
            "protocol": {k: v for k, v in self.protocol.meta.items() if isinstance(v, (str, int, float, bool))},
            "patterns": list(self.patterns),
            "steps": len(steps), "tasks": int(first.shape[1]), "batch": int(first.shape[2]),
            "gradients": self.gradients,
            "skipped": dict(self._skipped),
            "meta": self.meta,
        }
        from graphflow import __version__

        header["graphflow_version"] = __version__
        run = Run(header, parts, losses, outputs, groups, data)
        run._graph = graph
        return run

    def _part_record(self, part: str, present: list[int]) -> PartRecord:
        steps = self._steps
        nodes = np.unique(np.concatenate([steps[k].nodes[part] for k in present]))
        recorded = np.zeros((len(steps), len(nodes)), bool)
        names = [n for n in FIELD_DIMS if any(n in steps[k].fields[part] for k in present)]
        fields: dict[str, np.ndarray] = {}
        for k in present:
            pos = np.searchsorted(nodes, steps[k].nodes[part])
            recorded[k, pos] = True
            for name in names:
                a = steps[k].fields[part].get(name)
                if a is None:
                    continue
                node_axis = FIELD_DIMS[name].index("node") - 1  # without the step axis
                if name not in fields:
                    shape = list(a.shape)
                    shape[node_axis] = len(nodes)
                    fields[name] = np.full([len(steps)] + shape, np.nan, np.float32)
                fields[name][k][(slice(None),) * node_axis + (pos,)] = a
        slot = self.graph.slots.get(part)
        role = slot.role if slot else "input"
        ids = [self.graph.node_id(part, int(i)) for i in nodes]
        return PartRecord(part, role, slot.group if slot else None, nodes, ids, recorded, fields,
                          channel_names(self.graph, part, self.protocol.spec))


def update_statistics(delta: np.ndarray) -> dict[str, np.ndarray]:
    """Quantiles, a histogram symmetric about 0 and moments of a group's updates; NaN and infinite
    updates (a diverging learner) are left out and counted in ``non_finite`` (all NaN statistics
    and an empty histogram when no update is finite).

    >>> stats = update_statistics(np.array([-1.0, 0.5, 1.0, np.nan, np.inf]))
    >>> stats["non_finite"].tolist(), stats["histogram"].sum().tolist(), stats["quantiles"][[0, -1]].tolist()
    (2, 3, [-1.0, 1.0])
    """
    delta = np.asarray(delta, np.float64).ravel()
    finite = delta[np.isfinite(delta)]
    if finite.size:
        top = float(np.max(np.abs(finite))) or 1e-12
        quantiles = np.quantile(finite, QUANTILES)
        moments = [finite.mean(), finite.std(), np.abs(finite).mean()]
    else:
        top, quantiles, moments = 1e-12, np.full(len(QUANTILES), np.nan), [np.nan] * 3
    hist, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(-top, top))
    return {
        "quantiles": np.asarray(quantiles, np.float32),
        "histogram": hist.astype(np.int64),
        "edges": edges.astype(np.float32),
        "moments": np.array(moments, np.float32),
        "non_finite": np.array(delta.size - finite.size, np.int64),
    }


def _why_not_recorded(graph, part: str) -> str:
    block = graph.units.get(part.split("/")[0])
    if part.endswith("/sum"):
        return "neuron sums run no learner: their bias nodes receive and send the messages"
    if isinstance(block, InputNodes):
        return "inputs receive messages only when something consumes them"
    return "no learner runs on these nodes (they neither receive nor send messages)"


def record_run(engine, state, xs, ys, patterns, gradients: bool = False, **options):
    """Run ``len(xs)`` recorded inner steps from ``state``; returns (final state, :class:`Run`).

    >>> import graphflow as gf, numpy as np
    >>> from graphflow.engine import Engine
    >>> from graphflow.learners import Protocol
    >>> g = gf.build(gf.stack(1, gf.Dense(2), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    >>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2)))
    >>> xs = np.ones((3, 1, 5, 1), np.float32)
    >>> _, run = record_run(eng, eng.init_network(np.random.default_rng(0)), xs, xs, ["loss3/*"])
    >>> run.node_ids(), run.loss.dims
    (['loss3/loss[0]'], ('step', 'task', 'example', 'unit'))
    """
    insp = Inspector(engine, patterns, gradients=gradients, **options)
    state, _ = insp.record(state, xs, ys)
    return state, insp.to_run()
