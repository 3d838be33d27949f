"""The inner loop, batched: every stage of the schedule runs as a few array operations over all
nodes of a block, all examples of a minibatch and all tasks of an outer batch at once.

Array layout (leading axes): T tasks, B examples. Unit values are [T, B, n]; dense weights
[T, N, M], sparse weights [T, E], biases [T, M]; learner carries [T, B, *nodes, C].

The code uses only array operators and a few functions of ``xp`` (the backend's array module),
so that the same code runs on numpy and CuPy.

**Population members** (:meth:`Engine.set_member_parameters`): the engine can also run P
protocols at once, the members of an ES population. Every learner and normalization entry then
has a leading member axis [P, *shape], and the network state holds P x T tasks, member-major
(task ``m * T + t`` is task t of member m). Outside the learner cells nothing changes but the
normalization entries, which each member's tasks read as their own; a learner call splits its
task axis into [P, T] (a view) and runs the cell with each member's parameters, its matrix
products batched over the members (:mod:`graphflow.learners.cells`). Forward only: recording and
the tape refuse per-member parameters.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from graphflow.backend import Backend, block_part, get_backend, node_blocks
from graphflow.errors import DataError, GraphflowError
from graphflow.engine.stages import Buffers, run_stages
from graphflow.graph import data_by_block
from graphflow.graph.blocks import ActivationNodes, LossNodes, NeuronNodes
from graphflow.learners.cells import MemberBiases, gru_cell, member_parameters, stateless_cell
from graphflow.learners.protocol import Protocol, slot_layout
from graphflow.schedule import schedule as make_schedule


def default_threads() -> int:
    """The engine's threads unless told: the cores, at most 2 (the machine kind the blocking was
    tuned on; more threads on a memory-bound step are unmeasured)."""
    return min(2, os.cpu_count() or 1)


class _Capturing:
    """An array module whose ``fused`` runs the stage on plain arrays and keeps its backward pass
    in ``captured`` (see :meth:`Engine.call_learner`); everything else is the module's."""

    def __init__(self, xp, captured: list, remat: bool = False):
        self._xp = xp
        self.captured = captured
        self.remat = remat

    def fused(self, forward, backward, inputs, blocked: int = 0, blocks=None):
        from graphflow.autodiff.tape import fused_call

        out, backward_all = fused_call(self._xp, forward, backward, tuple(inputs), blocked, blocks, self.remat)
        self.captured.append(backward_all)
        return out

    def __getattr__(self, name):
        return getattr(self._xp, name)


@dataclass
class NetState:
    """The inner network of T tasks: parameters and learner carries."""

    params: dict[str, object]
    """``"<block>/w"`` -> [T, N, M] (dense) or [T, E]; ``"<block>/b"`` -> [T, M]."""
    carries: dict[str, object] = field(default_factory=dict)
    """Slot key -> [T, B, *nodes, C] (stateful learners; absent = zero)."""
    step: int = 0


@dataclass
class StepResult:
    """What one inner step saw before its update: predictions and per-element losses."""

    outputs: dict[str, object]
    """Loss block -> the values it compared with the target, [T, B, n]."""
    losses: dict[str, object]
    """Loss block -> per-element loss, [T, B, n]."""

    @property
    def pred(self):
        return next(iter(self.outputs.values()))

    @property
    def loss(self):
        return next(iter(self.losses.values()))


@dataclass
class Forward:
    values: dict
    """Unit block -> its output values [T, B, n] (neuron blocks: z, after the bias)."""
    states: dict
    """Slot key -> tuple of stored states, each broadcastable to [T, B, *nodes]."""
    losses: dict
    outputs: dict


class Engine:
    """Runs a graph's inner loop with a protocol on a backend.

    >>> import graphflow as gf, numpy as np
    >>> g = gf.build(gf.stack(1, gf.Dense(4), gf.ReLU(), gf.Dense(1), gf.L2Loss()))
    >>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=3, message_size=2)))
    >>> state = eng.init_network(np.random.default_rng(0), tasks=2)
    >>> x = np.zeros((2, 5, 1), np.float32)
    >>> state, res = eng.step(state, x, x)
    >>> res.loss.shape, state.params["dense0/w"].shape
    ((2, 5, 1), (2, 1, 4))
    """

    def __init__(self, graph, protocol: Protocol, backend: str | Backend = "numpy", threads: int | None = None,
                 block_rows: int = 4096, min_block_rows: int = 1024, remat_cells: bool = False):
        self.graph = graph
        self.remat_cells = remat_cells
        """Meta-gradients: keep no learner-cell residuals on the tape, recompute them in the
        backward pass (:func:`graphflow.autodiff.tape.fused_call`); for networks too large otherwise."""
        self.threads = threads if threads is not None else default_threads()
        """Threads for large learner calls (numpy backend; CuPy runs them in one piece on the GPU)."""
        self.block_rows = block_rows
        """Rows per block of a large learner call (CPU)."""
        self.min_block_rows = min_block_rows
        """A call under 2 x block_rows rows is still split, one block per thread, when each block gets at
        least this many rows (0: never); measured a few per cent faster on the published sizes."""
        self._executor = None
        self.population: int | None = None
        """P when the protocol's entries are per-member (:meth:`set_member_parameters`), else None."""
        self.protocol = protocol
        self.be = get_backend(backend)
        self.schedule = make_schedule(graph, protocol.spec.aggregation)
        self.layouts = {key: slot_layout(s, protocol.spec) for key, s in graph.slots.items()}
        self.set_protocol(protocol)
        self.edge_index = {}
        """Sparse weight block -> (source unit, destination neuron) of every edge, on the device."""
        for w in graph.weights.values():
            if not w.dense:
                self.edge_index[w.name] = (self.be.index(w.src_idx), self.be.index(w.dst_idx))
        self.fan_out = {name: self.be.asarray(graph.fan_out(name))[:, None]
                        for name, b in graph.units.items() if not isinstance(b, LossNodes)}
        """Unit block -> its number of consumers per unit ([n, 1]), to average received messages."""
        self.bias_order = {}
        """Neuron blocks whose bias i feeds neuron n(i) != i: (n(i) per bias, bias per neuron)."""
        for b in graph.units.values():
            if isinstance(b, NeuronNodes) and b.bias_edges is not None:
                bias, neuron = b.bias_edges[:, 0], b.bias_edges[:, 1]
                if not np.array_equal(bias, neuron):
                    n_of_b = np.empty(b.size, np.int64)
                    n_of_b[bias] = neuron
                    self.bias_order[b.name] = (self.be.index(n_of_b), self.be.index(np.argsort(n_of_b)))
        self.mixed_activations = {}
        """Activation blocks with one function per unit -> {function: mask of its units}."""
        for b in graph.units.values():
            if isinstance(b, ActivationNodes) and len(set(b.fns)) > 1:
                self.mixed_activations[b.name] = {fn: self.be.asarray([f == fn for f in b.fns]) for fn in sorted(set(b.fns))}

    def set_protocol(self, protocol: Protocol) -> None:
        """Use (device copies of) ``protocol``'s parameters from now on."""
        self.protocol = protocol
        self.population = None
        self.learner_params = {g: {n: self.be.asarray(a) for n, a in p.items()} for g, p in protocol.learners.items()}
        self.norm_params = {g: {n: self.be.asarray(a) for n, a in p.items()} for g, p in protocol.norms.items()}
        self._protocol_tables = (self.learner_params, self.norm_params)

    def set_member_parameters(self, learners: dict, norms: dict, members: int) -> None:
        """Run ``members`` protocols at once from now on (until :meth:`set_protocol`): the P
        members of a population, on a network state of P x T tasks, member-major (task
        ``m * T + t`` is member m's task t; inputs and targets of T tasks are every member's).

        ``learners[group][name]`` and ``norms[group][name]`` are backend arrays [P, *shape] (one
        entry per member) or [*shape] (the same for every member); the other entries are those of
        the last :meth:`set_protocol`, shared. Forward passes only: the tape and inspection hooks
        refuse per-member parameters.

        >>> import graphflow as gf, numpy as np
        >>> g = gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss()))
        >>> eng = Engine(g, Protocol.init(g, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4))))
        >>> scales = np.array([0.0, 1.0], np.float32)  # member 0 does not update its weights
        >>> eng.set_member_parameters({}, {"dense0/w": {"out_scale": scales}}, members=2)
        >>> state = eng.init_network(np.random.default_rng(0), tasks=2 * 3)  # 2 members x 3 tasks
        >>> x = np.ones((3, 4, 1), np.float32)
        >>> new, res = eng.step(state, x, x)
        >>> res.loss.shape, bool(np.array_equal(new.params["dense0/w"][:3], state.params["dense0/w"][:3]))
        ((6, 4, 1), True)
        """
        if self.be.traced:
            raise GraphflowError("per-member protocol parameters run forward only: the tape (meta-gradients) "
                                 "needs one protocol; run the members one at a time to differentiate them")
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"members {members!r}: a population needs a positive number of members")
        xp = self.be.xp
        tables = {}
        for what, base, given in zip(("learner", "norm"), self._protocol_tables, (learners, norms)):
            unknown = sorted(set(given) - set(base))
            if unknown:
                raise ValueError(f"per-member parameters: the protocol has no {what} group {unknown[0]!r}")
            table = {}
            for group, entries in base.items():
                extra = sorted(set(given.get(group, {})) - set(entries))
                if extra:
                    raise ValueError(f"per-member parameters: {what}::{group} has no entry {extra[0]!r}")
                table[group] = {}
                for name, default in entries.items():
                    shape = tuple(default.shape)
                    a = given.get(group, {}).get(name, default)
                    if tuple(a.shape) == shape:  # shared by every member: a view, no copy
                        a = xp.broadcast_to(a, (members,) + shape)
                    elif tuple(a.shape) != (members,) + shape:
                        raise ValueError(f"per-member parameters: {what}::{group}::{name} has shape {list(a.shape)}; "
                                         f"{members} members need {[members, *shape]} (or {list(shape)}, shared)")
                    table[group][name] = a
            tables[what] = table
        self.learner_params, self.norm_params = tables["learner"], tables["norm"]
        self.population = members

    def per_task(self, entry, like):
        """A normalization value ready to broadcast against ``like`` [tasks, ...]: itself, or with
        per-member parameters (``entry`` [P]) each member's value for its tasks, [tasks, 1, ...]."""
        if self.population is None:
            return entry
        return self.be.xp.repeat(entry, like.shape[0] // self.population, axis=0).reshape(
            (like.shape[0],) + (1,) * (like.ndim - 1))

    def untraced(self) -> "Engine":
        """This engine on the plain backend, with the plain values of its protocol's arrays: what
        a stage recorded as a whole runs on (:mod:`graphflow.engine.stages`). Itself when not traced."""
        if not self.be.traced:
            return self
        from dataclasses import replace

        from graphflow.autodiff import Var

        def value(a):
            return a.value if isinstance(a, Var) else a

        if self.population is not None:
            raise GraphflowError("per-member protocol parameters run forward only (no tape)")
        if self.threads > 1:
            self._pool()  # one pool, shared with the twin
        twin = copy.copy(self)
        twin.be = replace(self.be, traced=False)  # the same array module: on plain arrays it records nothing
        twin.learner_params = {g: {n: value(a) for n, a in p.items()} for g, p in self.learner_params.items()}
        twin.norm_params = {g: {n: value(a) for n, a in p.items()} for g, p in self.norm_params.items()}
        return twin

    # ------------------------------------------------------------------ network state
    def init_network(self, rng: np.random.Generator, tasks: int = 1, init_std: float | None = None) -> NetState:
        """Fresh inner networks: weights N(0, init_std^2), biases zero (numpy draws, then moved)."""
        std = self.protocol.spec.init_std if init_std is None else init_std
        params = {}
        for w in self.graph.weights.values():
            shape = (tasks, w.n_src, w.n_dst) if w.dense else (tasks, w.size)
            params[f"{w.name}/w"] = self.be.asarray(rng.normal(0.0, std, size=shape))
        for b in self.graph.units.values():
            if isinstance(b, NeuronNodes):
                params[f"{b.name}/b"] = self.be.asarray(np.zeros((tasks, b.size)))
        return NetState(params)

    def network_from_arrays(self, arrays: dict[str, np.ndarray]) -> NetState:
        """A state from given parameters (``"dense0/w"`` [N, M] or [T, N, M], ...), shapes checked."""
        expected = self.parameter_shapes()
        missing = sorted(set(expected) - set(arrays))
        unknown = sorted(set(arrays) - set(expected))
        if missing or unknown:
            raise ValueError(f"network parameters: missing {missing}, unknown {unknown}; expected {sorted(expected)}")
        params, tasks = {}, set()
        for key, shape in expected.items():
            a = np.asarray(arrays[key], np.float32)
            if a.shape == shape:
                a = a[None]
            if a.shape[1:] != shape:
                raise ValueError(f"{key}: shape {list(a.shape)} does not match {list(shape)} (or [T, *{list(shape)}])")
            tasks.add(a.shape[0])
            params[key] = self.be.asarray(a)
        if len(tasks) > 1:
            raise ValueError(f"network parameters disagree on the number of tasks: {sorted(tasks)}")
        return NetState(params)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-task shape of every parameter array: ``{"dense0/w": (N, M), "dense0/b": (M,), ...}``."""
        out = {}
        for w in self.graph.weights.values():
            out[f"{w.name}/w"] = (w.n_src, w.n_dst) if w.dense else (w.size,)
        for b in self.graph.units.values():
            if isinstance(b, NeuronNodes):
                out[f"{b.name}/b"] = (b.size,)
        return out

    # ------------------------------------------------------------------ forward
    def _feed(self, data, blocks, what: str, lead: list) -> dict:
        """Device arrays [T, B, n] of the named blocks; ``lead`` collects and checks (T, B)."""
        data = data_by_block(data, blocks, what)
        out = {}
        for b in blocks:
            a = self.be.asarray(data[b.name])
            if a.ndim == 2:
                a = a[None]
            if a.ndim != 3:
                raise DataError(f"{what} {b.name!r}: shape {list(a.shape)}; expected [B, {b.size}] or [T, B, {b.size}]")
            if a.shape[0] == 0 or a.shape[1] == 0:
                raise DataError(f"{what} {b.name!r}: an empty batch ([T, B] = {list(a.shape[:2])}); an update is a "
                                f"mean over examples and needs at least one")
            if a.shape[-1] != b.size:
                raise DataError(f"{what} {b.name!r}: last axis {a.shape[-1]} does not match its {b.size} units")
            if lead and (a.shape[1] != lead[0][1] or a.shape[0] not in (1, lead[0][0]) and lead[0][0] != 1):
                raise DataError(f"{what} {b.name!r}: [T, B] = {list(a.shape[:2])} but {lead[1]} has {list(lead[0])}")
            if not lead:
                lead += [tuple(a.shape[:2]), f"{what} {b.name!r}"]
            out[b.name] = a
        return out

    def forward(self, state: NetState, x, y=None) -> Forward:
        """The forward pass on (x, y): unit values, stored states, outputs and losses."""
        with self.be.compute():
            return self._forward(state, x, y)

    def _forward(self, state: NetState, x, y=None) -> Forward:
        tasks = next(iter(state.params.values())).shape[0]
        lead: list = []
        values = self._feed(x, self.graph.inputs, "inputs", lead)
        if y is not None:
            values.update(self._feed(y, self.graph.targets, "targets", lead))
        if self.population is not None:
            values = self._population_data(values, tasks, lead)
        elif lead[0][0] not in (1, tasks):
            raise DataError(f"{lead[1]}: {lead[0][0]} tasks, but the network holds {tasks}")
        buf = Buffers({f"value:{name}": v for name, v in values.items()})
        buf.update({f"param:{key}": v for key, v in state.params.items()})
        run_stages(self, self.schedule.forward, buf)
        return Forward(*({k.partition(":")[2]: v for k, v in buf.items() if k.startswith(prefix)}
                         for prefix in ("value:", "state:", "loss:", "output:")))

    def _population_data(self, values: dict, tasks: int, lead: list) -> dict:
        """Inputs and targets for P members x T tasks: data of T tasks (or one) is every member's."""
        members = self.population
        if tasks % members:
            raise DataError(f"the network holds {tasks} tasks, not a multiple of its {members} population members")
        if lead[0][0] not in (1, tasks // members, tasks):
            raise DataError(f"{lead[1]}: {lead[0][0]} tasks, but the network holds {members} members x "
                            f"{tasks // members} tasks")
        xp = self.be.xp
        out = {}
        for name, a in values.items():
            if a.shape[0] == 1 and tasks > 1:
                a = xp.broadcast_to(a, (tasks,) + tuple(a.shape[1:]))
            elif a.shape[0] != tasks:
                a = xp.concatenate([a] * members, axis=0)
            out[name] = a
        return out

    # ------------------------------------------------------------------ learners
    def learner_streams(self, slot, incoming, states: tuple):
        """(raw, standardized) input streams of one slot's learner: its incoming message and the
        states its forward arrow stored, each [..., width] broadcastable to its nodes."""
        norm = self.norm_params[slot.norm_group]
        shift, scale = norm["in_shift"], norm["in_scale"]
        if slot.role != "weight":
            raw = [incoming] + [s[..., None] for s in states]
        else:
            w = self.graph.weights[slot.block]
            wstate, xstate = states
            if w.dense:  # message [T,B,M,k] -> [T,B,1,M,k]; w [T,1,N,M]; x [T,B,N] -> [T,B,N,1]
                raw = [incoming[:, :, None], wstate[..., None], xstate[..., None, None]]
            else:  # replication by gather: each edge reads the message of its neuron
                raw = [incoming[:, :, self.edge_index[w.name][1]], wstate[..., None], xstate[..., None]]
        if self.population is not None:  # each member's standardization for its tasks
            return raw, [(v + self.per_task(shift[:, k], v)) * self.per_task(scale[:, k], v)
                         for k, v in enumerate(raw)]
        return raw, [(v + shift[k]) * scale[k] for k, v in enumerate(raw)]

    def call_learner(self, slot, streams, state: NetState, new_carries: dict, capture: list | None = None):
        """One learner call for all nodes of ``slot``: (raw update or None, outgoing message, new
        carry or None); a stateful learner's new carry is also put in ``new_carries``.

        ``capture``: a list that receives the cell's backward pass (cotangent of the cell's output
        -> gradients of its fused inputs, :func:`graphflow.autodiff.tape.fused_call`), for a stage
        recorded as a whole (:mod:`graphflow.engine.stages`)."""
        if self.population is not None:
            return self._call_members(slot, streams, state, new_carries)
        layout = self.layouts[slot.key]
        p = self.learner_params[slot.group]
        whole = self.be.traced or capture is not None  # the cell runs as one fused stage (blocking inside)
        xp = self.be.xp if capture is None else _Capturing(self.be.xp, capture, self.remat_cells)
        blocks = self._node_blocks if whole else None
        kernels = self.be.kernels
        if self.protocol.spec.kind == "stateless":
            if not layout.has_parameter:
                return None, self._blocked(lambda blk, _: stateless_cell(xp, p, blk, layout.stream_widths, blocks,
                                                                         whole, kernels)[1:], streams, whole=whole)[0], None
            upd, msg = self._blocked(lambda blk, _: stateless_cell(xp, p, blk, layout.stream_widths, blocks, whole,
                                                                   kernels), streams, whole=whole)
            return upd, msg, None
        carry = self._carry(slot, streams, state)
        act = self.protocol.spec.gru_mlp_activation
        new = self._blocked(lambda blk, c: (gru_cell(xp, p, blk, layout.stream_widths, c, act, blocks, whole,
                                                      kernels),), streams, carry, whole=whole)[0]
        new_carries[slot.key] = new
        upd = new[..., 0:1] if layout.has_parameter else None
        return upd, new[..., new.shape[-1] - layout.message:], new

    def _carry(self, slot, streams, state: NetState):
        """The stateful learner's carry of ``slot`` before this step (zeros on the first), checked
        against the shape the step's streams need."""
        layout = self.layouts[slot.key]
        carry = state.carries.get(slot.key)
        shape = np.broadcast_shapes(*[tuple(s.shape[:-1]) for s in streams]) + (layout.carry,)
        if carry is None:
            return self.be.xp.zeros(shape, dtype=self.be.dtype)
        if tuple(carry.shape) != shape:
            raise ValueError(f"{slot.key}: the stateful learner's carry is {list(carry.shape)} but this step needs "
                             f"{list(shape)}; keep the tasks and the batch size fixed within an inner loop")
        return carry

    def _call_members(self, slot, streams, state: NetState, new_carries: dict):
        """:meth:`call_learner` with per-member parameters: in each block (a range of members, and of
        nodes when one member is more than a block) the task axis becomes [members, T] and the cell
        runs with those members' parameters, its matrix products batched over them."""
        layout = self.layouts[slot.key]
        p = self.learner_params[slot.group]
        xp, members = self.be.xp, self.population
        kernels = MemberBiases(self.be.kernels)
        ndim = streams[0].ndim + 1  # the cell's arrays: [members, T, B, *nodes, width]
        per_member = int(streams[0].shape[0]) // members

        def split(a):
            return a.reshape((-1, per_member) + tuple(a.shape[1:]))

        def cell(blk, c, which):
            params = member_parameters(p, ndim, which)
            parts = [split(s) for s in blk]
            if self.protocol.spec.kind == "stateless":
                upd, msg = stateless_cell(xp, params, parts, layout.stream_widths, kernels=kernels)
                out = (msg,) if upd is None else (upd, msg)
            else:
                act = self.protocol.spec.gru_mlp_activation
                out = (gru_cell(xp, params, parts, layout.stream_widths, split(c), act, kernels=kernels),)
            return tuple(a.reshape((-1,) + tuple(a.shape[2:])) for a in out)

        if self.protocol.spec.kind == "stateless":
            out = self._blocked(cell, streams, members=True)
            if not layout.has_parameter:
                return None, out[0], None
            return out[0], out[1], None
        carry = self._carry(slot, streams, state)
        new = self._blocked(cell, streams, carry, members=True)[0]
        new_carries[slot.key] = new
        upd = new[..., 0:1] if layout.has_parameter else None
        return upd, new[..., new.shape[-1] - layout.message:], new

    def _blocked(self, fn, streams, carry=None, whole: bool = False, members: bool = False):
        """``fn(streams, carry)`` over blocks of the node axes, on the engine's threads.

        Large learner calls (the weight nodes of a big layer) touch arrays far larger than the
        caches; running them in blocks of a few thousand rows keeps every intermediate in cache,
        and numpy releases the GIL, so blocks run in parallel. With ``whole`` (meta-gradients) ``fn``
        runs in one piece; its fused stage does the blocking itself (:meth:`_node_blocks`). With
        ``members`` (per-member parameters) the blocks are ranges of members (and of nodes when
        one member's call is more than a block, :meth:`_member_blocks`) and ``fn(streams, carry,
        members)`` also gets the block's members (a slice).
        """
        shape = np.broadcast_shapes(*[tuple(s.shape[:-1]) for s in streams])
        if whole:
            return fn(streams, carry)
        # Each block writes its outputs straight into arrays allocated once (by the first block to
        # finish): no concatenation afterwards.
        outputs: list = []
        lock = threading.Lock()
        per_member = shape[0] // self.population if members else 0

        def run(block, single):
            if members:
                (lo, hi), block = block
                rows = slice(lo * per_member, hi * per_member)
                part = fn([block_part(s[rows], block) for s in streams],
                          None if carry is None else block_part(carry[rows], block), slice(lo, hi))
            else:
                part = fn([block_part(s, block) for s in streams], block_part(carry, block))
            if single:
                return part
            with lock:
                if not outputs:
                    outputs.extend(self.be.xp.empty(shape + a.shape[-1:], dtype=a.dtype) for a in part)
            for out, a in zip(outputs, part):
                block_part(out[rows] if members else out, block)[...] = a
            return None

        parts = self._member_blocks(run, shape) if members else self._node_blocks(run, shape)
        return parts[0] if len(parts) == 1 else tuple(outputs)

    def _block_rows(self, shape) -> int:
        """Rows per block: ``block_rows``, or one block per thread for mid-sized calls (``min_block_rows``)."""
        rows = self.block_rows
        if self.threads > 1 and self.min_block_rows:  # mid-sized calls: one block per thread rather than one piece
            rows = min(rows, max(self.min_block_rows, -(-int(np.prod(shape)) // self.threads)))
        return rows

    def _node_blocks(self, fn, shape) -> list:
        """``[fn(block, single), ...]`` over the blocks of ``shape``'s node axes (:func:`node_blocks`,
        about ``block_rows`` rows each, or one per thread for mid-sized calls, see
        ``min_block_rows``), on the engine's threads; ``single`` says the one block is the whole
        (small shapes, a GPU, no cache blocking)."""
        rows = self._block_rows(shape)
        blocks = node_blocks(shape, rows) if self.be.cache_blocking else [((0, shape[2]), None)]
        return self._run_blocks(fn, blocks)

    def _member_blocks(self, fn, shape) -> list:
        """:meth:`_node_blocks` for per-member parameters: blocks ``((first member, end), node
        block)``; members whose calls together fit in a block share one (their matrix products
        batched), a member larger than a block is split over its nodes as one protocol's call is."""
        members = self.population
        if not self.be.cache_blocking:
            return self._run_blocks(fn, [((0, members), ((0, shape[2]), None))])
        rows = self._block_rows(shape)
        per_member = (shape[0] // members,) + tuple(shape[1:])
        inner = node_blocks(per_member, rows)
        chunk = 1 if len(inner) > 1 else max(1, rows // max(1, int(np.prod(per_member))))
        return self._run_blocks(fn, [((lo, min(lo + chunk, members)), block) for lo in range(0, members, chunk)
                                     for block in inner])

    def _run_blocks(self, fn, blocks) -> list:
        if len(blocks) == 1:
            return [fn(blocks[0], True)]
        if self.threads > 1:
            return list(self._pool().map(lambda b: fn(b, False), blocks))
        return [fn(b, False) for b in blocks]

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="graphflow-engine")
        return self._executor

    # ------------------------------------------------------------------ one inner step
    def step(self, state: NetState, x, y, recorder=None) -> tuple[NetState, StepResult]:
        """Forward on (x, y), message pass, update; returns the new state and what the step saw."""
        with self.be.compute():
            return self._step(state, x, y, recorder)

    def _step(self, state: NetState, x, y, recorder=None) -> tuple[NetState, StepResult]:
        if recorder is not None and self.population is not None:
            raise GraphflowError("inspection hooks record one protocol's nodes: run a population member on its own "
                                 "to inspect it")
        fwd = self._forward(state, x, y)
        updates, carries = self.message_pass(state, fwd, recorder)
        buf = Buffers({f"param:{key}": v for key, v in state.params.items()}, recorder=recorder)
        buf.update({f"update:{key}": v for key, v in updates.items()})
        run_stages(self, self.schedule.update, buf)
        params = {key: buf[f"param:{key}"] for key in state.params}
        new = NetState(params, carries, state.step + 1)
        if recorder is not None:
            recorder.end_step(self)
        return new, StepResult(fwd.outputs, fwd.losses)

    def message_pass(self, state: NetState, fwd: Forward, recorder=None):
        """All learner calls of one step; returns per-slot raw updates [T,B,*nodes,1] and new carries."""
        buf = Buffers({f"loss:{name}": v for name, v in fwd.losses.items()}, state=state, recorder=recorder)
        buf.update({f"state:{key}": v for key, v in fwd.states.items()})
        run_stages(self, self.schedule.message, buf)
        if recorder is not None:
            for b in self.graph.inputs:
                if f"received:{b.name}" in buf:
                    total = buf[f"received:{b.name}"]
                    if self.protocol.spec.aggregation == "mean":
                        total = total / self.be.xp.maximum(self.fan_out[b.name], 1)
                    recorder.on_input_message(self, b.name, total)
        updates = {k.partition(":")[2]: v for k, v in buf.items() if k.startswith("update:")}
        return updates, buf.carries

    def run(self, state: NetState, xs, ys, recorder=None) -> tuple[NetState, list[StepResult]]:
        """Inner loop over steps: ``xs``/``ys`` are [steps, T, B, n] (or [steps, B, n])."""
        results = []
        for k in range(len(xs)):
            state, res = self.step(state, xs[k], ys[k], recorder)
            results.append(res)
        return state, results

    def predict(self, state: NetState, x):
        return self.forward(state, x).outputs
