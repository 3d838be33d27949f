"""Random graphs, protocols, parameters and data for equivalence tests against the interpreter.

Everything is drawn from one ``numpy.random.Generator``, so a case is named by its seed:

- :func:`random_stack_spec`: layer stacks of 1..3 dense layers of 1..6 units, every activation
  kind, mixed activation lists, softmax + cross-entropy, L1 and L2 losses;
- :func:`random_freeform_spec`: free-form graphs with one or two inputs, skip connections, dense,
  masked and edge-list weight blocks, raw neuron taps, hidden softmaxes and one or two losses;
- :func:`random_learner_spec` and :func:`random_protocol`: stateless and stateful learners with
  random message sizes and hidden widths, randomized normalization (shifts, scales, output means
  and scales) and nonzero learner biases, so that every stream's standardization matters;
- :func:`random_case`: all of it together, with random initial parameters and inner-loop data.

>>> case = random_case(3, freeform=True, kind="stateful", sharing="kind")
>>> [len(case.graph.losses) > 0, case.protocol.spec.kind, case.graph.source.sharing]
[True, 'stateful', 'kind']
>>> all(x.shape[:2] == (case.steps, case.batch) for x in case.xs.values())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphflow.errors import GraphError
from graphflow.graph import build
from graphflow.graph.blocks import LossNodes, NeuronNodes
from graphflow.learners.protocol import Protocol
from graphflow.spec import FreeFormSpec, LearnerSpec, StackSpec

ACTIVATIONS = ("relu", "sigmoid", "tanh", "step", "identity")
SHARINGS = ("layer", "kind", "kind+norm", "user")
"""``user``: a user-assigned group joining slots of one node kind, on top of a random base sharing."""


def _size(rng, high: int = 6) -> int:
    return int(rng.integers(1, high + 1))


def _activation_fn(rng, size: int):
    """One function for the block, or (sometimes) one per unit."""
    if size > 1 and rng.random() < 0.3:
        return [str(f) for f in rng.choice(ACTIVATIONS, size=size)]
    return str(rng.choice(ACTIVATIONS))


# ----------------------------------------------------------------------------------------------
# Graph specs


def random_stack_spec(rng: np.random.Generator, sharing: str = "layer") -> StackSpec:
    """A random layer stack ending in a softmax + cross-entropy, or an L1 / L2 loss."""
    layers: list[dict] = []
    for _ in range(int(rng.integers(0, 3))):
        units = _size(rng)
        layers.append({"kind": "dense", "units": units})
        r = rng.random()
        if r < 0.75:
            layers.append({"kind": "activation", "fn": _activation_fn(rng, units)})
        elif r < 0.85:
            layers.append({"kind": "softmax"})
        # else: two dense layers in a row (a neuron block read by weights directly)
    units = _size(rng)
    layers.append({"kind": "dense", "units": units})
    r = rng.random()
    if r < 0.35:
        layers += [{"kind": "softmax"}, {"kind": "loss", "fn": "ce"}]
    elif r < 0.7:
        layers += [{"kind": "activation", "fn": _activation_fn(rng, units)}, {"kind": "loss", "fn": str(rng.choice(["l1", "l2"]))}]
    else:
        layers.append({"kind": "loss", "fn": str(rng.choice(["l1", "l2"]))})
    return StackSpec.model_validate({"inputs": _size(rng), "layers": layers, "sharing": sharing})


def _connectivity(rng, n_src: int, n_dst: int, cover_rows: bool, cover_cols: bool) -> dict:
    """Dense, mask or (shuffled) edges; covering rows / columns keeps units from dangling."""
    r = rng.random()
    if r < 0.35:
        return {}
    mask = (rng.random((n_src, n_dst)) < 0.5).astype(int)
    if cover_rows:
        for i in np.nonzero(mask.sum(axis=1) == 0)[0]:
            mask[i, rng.integers(n_dst)] = 1
    if cover_cols:
        for j in np.nonzero(mask.sum(axis=0) == 0)[0]:
            mask[rng.integers(n_src), j] = 1
    if mask.sum() == 0:
        mask[rng.integers(n_src), rng.integers(n_dst)] = 1
    if r < 0.65:
        return {"mask": mask.tolist()}
    edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(mask))]
    order = rng.permutation(len(edges))
    return {"edges": [edges[k] for k in order]}  # given out of order: the builder sorts them


def _draw_freeform(rng) -> dict:
    blocks: list[dict] = []
    sources: list[tuple[str, int, bool]] = []  # (block, size, is input) that weights may read
    for n in range(1 if rng.random() < 0.7 else 2):
        size = _size(rng)
        blocks.append({"kind": "input", "name": f"x{n}", "size": size})
        sources.append((f"x{n}", size, True))

    def neurons_from(name: str, size: int) -> None:
        blocks.append({"kind": "neurons", "name": name, "size": size})
        chain_src, chain_size, is_input = sources[-1]
        # the chain covers every neuron's fan-in and every unit of the previous block
        blocks.append({"kind": "weights", "name": name, "src": chain_src, "dst": name,
                       **_connectivity(rng, chain_size, size, cover_rows=not is_input, cover_cols=True)})
        if len(sources) > 1 and rng.random() < 0.5:  # a skip connection from an earlier block
            src, src_size, _ = sources[int(rng.integers(len(sources) - 1))]
            blocks.append({"kind": "weights", "name": f"{name}_from_{src}", "src": src, "dst": name,
                           **_connectivity(rng, src_size, size, cover_rows=False, cover_cols=False)})

    tapped: list[tuple[str, int]] = []  # hidden outputs a second loss may read
    for h in range(int(rng.integers(0, 3))):
        name, size = f"h{h}", _size(rng)
        neurons_from(name, size)
        r = rng.random()
        if r < 0.7:
            blocks.append({"kind": "activation", "name": f"a{h}", "src": name, "fn": _activation_fn(rng, size)})
            if rng.random() < 0.25:  # the raw sums are read too (by a later block's weights)
                sources.append((name, size, False))
            sources.append((f"a{h}", size, False))
        elif r < 0.85:
            blocks.append({"kind": "softmax", "name": f"s{h}", "src": name})
            sources.append((f"s{h}", size, False))
        else:
            sources.append((name, size, False))
        tapped.append(sources[-1][:2])
    size = _size(rng)
    neurons_from("out", size)
    r = rng.random()
    if r < 0.35:
        blocks.append({"kind": "softmax", "name": "p", "src": "out"})
        final, fn = "p", "ce"
    elif r < 0.7:
        blocks.append({"kind": "activation", "name": "a_out", "src": "out", "fn": _activation_fn(rng, size)})
        final, fn = "a_out", str(rng.choice(["l1", "l2"]))
    else:
        final, fn = "out", str(rng.choice(["l1", "l2", "ce"]))
    blocks += [{"kind": "target", "name": "y", "size": size},
               {"kind": "loss", "name": "loss", "src": final, "fn": fn, "target": "y"}]
    if tapped and rng.random() < 0.6:  # a second loss on a hidden block
        src, src_size = tapped[int(rng.integers(len(tapped)))]
        fn = "ce" if src.startswith("s") else str(rng.choice(["l1", "l2"]))
        blocks += [{"kind": "target", "name": "y_aux", "size": src_size},
                   {"kind": "loss", "name": "loss_aux", "src": src, "fn": fn, "target": "y_aux"}]
    order = rng.permutation(len(blocks)) if rng.random() < 0.2 else np.arange(len(blocks))
    return {"kind": "freeform", "blocks": [blocks[k] for k in order]}


def random_freeform_spec(rng: np.random.Generator, sharing: str = "layer", tries: int = 100) -> FreeFormSpec:
    """A random free-form graph that builds (drawn again when a draw leaves a node dangling)."""
    for _ in range(tries):
        data = _draw_freeform(rng)
        data["sharing"] = sharing
        spec = FreeFormSpec.model_validate(data)
        try:
            build(spec)
        except GraphError:
            continue
        return spec
    raise RuntimeError(f"no valid free-form graph in {tries} draws")


def with_user_group(spec, graph, rng: np.random.Generator):
    """``spec`` with a user group joining two or more slots of one node kind (when there are any)."""
    by_kind: dict[tuple, list[str]] = {}
    for s in graph.slots.values():
        by_kind.setdefault((s.role, s.loss_fn), []).append(s.key)
    candidates = [keys for keys in by_kind.values() if len(keys) > 1]
    if not candidates:
        return spec
    keys = candidates[int(rng.integers(len(candidates)))]
    chosen = [keys[k] for k in sorted(rng.choice(len(keys), size=int(rng.integers(2, len(keys) + 1)), replace=False))]
    return spec.model_copy(update={"groups": {key: "user" for key in chosen}})


# ----------------------------------------------------------------------------------------------
# Learners and protocols


def random_learner_spec(rng: np.random.Generator, kind: str | None = None) -> LearnerSpec:
    """Stateless or stateful, message size 1..4, hidden 0..3, small or default MLPs."""
    mlp = [(80, 40), (8, 6), (5, 3)][int(rng.integers(3))]
    return LearnerSpec(
        kind=kind or str(rng.choice(["stateful", "stateless"])),
        message_size=int(rng.integers(1, 5)),
        hidden=int(rng.integers(0, 4)),
        mlp_hidden=mlp,
        gru_mlp_activation=str(rng.choice(["tanh", "relu"])),
        aggregation="mean" if rng.random() < 0.75 else "sum",
    )


def random_protocol(graph, spec: LearnerSpec, rng: np.random.Generator) -> Protocol:
    """A fresh protocol with random normalization and nonzero learner biases."""
    protocol = Protocol.init(graph, spec, seed=int(rng.integers(2**31)))
    for norm in protocol.norms.values():
        n = norm["in_shift"].shape[0]
        norm["in_shift"] = rng.uniform(-0.5, 0.5, n).astype(np.float32)
        norm["in_scale"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
        if "out_mean" in norm:
            norm["out_mean"] = np.asarray(rng.uniform(-0.2, 0.2), np.float32)
            norm["out_scale"] = np.asarray(rng.uniform(0.02, 0.3), np.float32)
    for params in protocol.learners.values():
        for name, a in params.items():
            if "bias" in name or name.startswith("gru.b_"):
                params[name] = (a + rng.normal(0.0, 0.3, a.shape)).astype(np.float32)
    return protocol


# ----------------------------------------------------------------------------------------------
# Parameters and data


def random_params(graph, rng: np.random.Generator, std: float = 0.7) -> dict[str, np.ndarray]:
    """One task's parameters (float32): weights N(0, std^2), small nonzero biases."""
    params = {}
    for w in graph.weights.values():
        shape = (w.n_src, w.n_dst) if w.dense else (w.size,)
        params[f"{w.name}/w"] = rng.normal(0.0, std, shape).astype(np.float32)
    for b in graph.units.values():
        if isinstance(b, NeuronNodes):
            params[f"{b.name}/b"] = rng.normal(0.0, 0.3, b.size).astype(np.float32)
    return params


def random_data(graph, rng: np.random.Generator, steps: int, batch: int, tasks: int | None = None):
    """Inputs and targets by block: [steps, (tasks,) batch, n] float32; probability targets for ce."""
    lead = (steps, batch) if tasks is None else (steps, tasks, batch)
    xs = {b.name: rng.normal(0.0, 1.5, lead + (b.size,)).astype(np.float32) for b in graph.inputs}
    fn_of_target = {loss.target: loss.fn for loss in graph.units.values() if isinstance(loss, LossNodes)}
    ys = {}
    for b in graph.targets:
        if fn_of_target.get(b.name) == "ce":
            ys[b.name] = rng.dirichlet(np.ones(b.size), size=lead).astype(np.float32)
        else:
            ys[b.name] = rng.normal(0.0, 1.0, lead + (b.size,)).astype(np.float32)
    return xs, ys


@dataclass
class Case:
    """One random equivalence case: a graph, a protocol, initial parameters and inner-loop data."""

    seed: int
    graph: object
    protocol: Protocol
    params: dict[str, np.ndarray]
    """Initial parameters, see :func:`random_params` (with a leading task axis when ``tasks`` was given)."""
    xs: dict[str, np.ndarray]
    ys: dict[str, np.ndarray]
    steps: int
    batch: int

    def describe(self) -> str:
        s = self.protocol.spec
        g = self.graph
        return (f"seed {self.seed}: {type(g.source).__name__} sharing={g.source.sharing} groups={dict(g.source.groups)} "
                f"blocks={[b.name for b in g.blocks]} learner={s.kind} k={s.message_size} hidden={s.hidden} "
                f"mlp={s.mlp_hidden} agg={s.aggregation} steps={self.steps} batch={self.batch}")


def random_case(seed: int, freeform: bool | None = None, kind: str | None = None, sharing: str | None = None,
                tasks: int | None = None) -> Case:
    """A complete random case; ``freeform``, ``kind`` and ``sharing`` are drawn unless given."""
    rng = np.random.default_rng(seed)
    freeform = bool(rng.random() < 0.5) if freeform is None else freeform
    sharing = str(rng.choice(SHARINGS)) if sharing is None else sharing
    spec_sharing = str(rng.choice(SHARINGS[:3])) if sharing == "user" else sharing
    spec = random_freeform_spec(rng, spec_sharing) if freeform else random_stack_spec(rng, spec_sharing)
    graph = build(spec)
    if sharing == "user":
        spec = with_user_group(spec, graph, rng)
        graph = build(spec)
    protocol = random_protocol(graph, random_learner_spec(rng, kind), rng)
    steps, batch = int(rng.integers(2, 4)), int(rng.integers(1, 5))
    if tasks is None:
        params = random_params(graph, rng)
    else:
        per_task = [random_params(graph, rng) for _ in range(tasks)]
        params = {key: np.stack([p[key] for p in per_task]) for key in per_task[0]}
    xs, ys = random_data(graph, rng, steps, batch, tasks)
    return Case(seed, graph, protocol, params, xs, ys, steps, batch)
