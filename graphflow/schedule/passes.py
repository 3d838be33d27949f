"""Graph -> schedule: a list of small, named passes over the immutable graph.

1. :func:`forward_stages` — one stage per block in topological waves: a dense matmul per dense
   weight block (a gather-multiply-segment-sum for sparse ones), a sum-plus-bias per neuron block,
   then activations, softmax and losses.
2. :func:`message_stages` — the backward message pass in the order of MPLP_SPEC.md: loss seeds,
   then block by block in reverse topological order: gather the messages a unit received (their
   mean over its consumers), call the block's learner (all its nodes at once), and send the
   outgoing messages on: 1:1 to a source unit, replicated from each bias to the weights of its
   neuron (a broadcast for dense blocks, a gather for sparse ones), aggregated from weights to
   their source units (a sum over outputs, or a segment sum).
3. :func:`update_stages` — the residual parameter updates, after all learners have run.

Each stage names its block, for learner calls its learner and normalization group, and the
buffers it reads and writes (``inputs``, ``outputs``: ``value:<unit>``, ``param:<block>/<w|b>``,
``state:<slot>``, ``message_in:<slot>``, ``message_out:<slot>``, ``received:<unit>``, ...;
``Schedule.dataflow()`` prints them), so that the order of the stages is not the only contract
between them. The engine runs these stages (:mod:`graphflow.engine.stages` holds what each stage
kind does); tests assert how many of each a graph becomes.

>>> import graphflow as gf
>>> s = schedule(gf.build(gf.stack(1, gf.Dense(20), gf.ReLU(), gf.Dense(1), gf.L2Loss())))
>>> s.counts()
{'forward': 6, 'message': 16, 'update': 4, 'learner_calls': 6}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphflow.graph.blocks import (
    ActivationNodes,
    InputNodes,
    LossNodes,
    NeuronNodes,
    SoftmaxNodes,
    TargetNodes,
    WeightNodes,
)


@dataclass(frozen=True)
class Stage:
    """One batched operation of the schedule."""

    pass_name: str
    op: str
    block: str
    slot: str | None = None
    group: str | None = None
    norm_group: str | None = None
    detail: str = ""
    args: tuple = field(default=(), compare=False)
    inputs: tuple[str, ...] = ()
    """Buffers the stage reads."""
    outputs: tuple[str, ...] = ()
    """Buffers the stage writes; ``received:`` and ``partial:`` buffers are sums several stages add to."""

    def __str__(self) -> str:
        where = f"{self.op:<16} {self.block:<14}"
        if self.slot:
            where += f" learner={self.group} norm={self.norm_group}"
        return f"{where} {self.detail}".rstrip()

    def dataflow(self) -> str:
        """``op block: inputs -> outputs``."""
        return f"{self.op} {self.slot or self.block}: {', '.join(self.inputs) or '-'} -> {', '.join(self.outputs) or '-'}"


@dataclass(frozen=True)
class Schedule:
    """The stages of one inner step: forward, message pass, updates."""

    forward: tuple[Stage, ...]
    message: tuple[Stage, ...]
    update: tuple[Stage, ...]

    def counts(self) -> dict[str, int]:
        return {
            "forward": len(self.forward),
            "message": len(self.message),
            "update": len(self.update),
            "learner_calls": sum(s.op == "learner" for s in self.message),
        }

    def learner_calls(self) -> dict[str, int]:
        """Learner group -> number of learner calls per inner step."""
        out: dict[str, int] = {}
        for s in self.message:
            if s.op == "learner":
                out[s.group] = out.get(s.group, 0) + 1
        return out

    def dataflow(self) -> str:
        """Every stage with the buffers it reads and writes, pass by pass.

        >>> import graphflow as gf
        >>> print(schedule(gf.build(gf.stack(1, gf.Dense(1), gf.L2Loss()))).dataflow())
        forward pass
          dense_matmul dense0: value:input, param:dense0/w -> partial:dense0, state:dense0/w
          neuron_bias dense0: partial:dense0, param:dense0/b -> value:dense0, state:dense0/b
          loss loss1: value:dense0, value:target -> output:loss1, loss:loss1, state:loss1/loss
        message pass
          seed loss1: loss:loss1 -> message_in:loss1/loss
          learner loss1/loss: message_in:loss1/loss, state:loss1/loss -> message_out:loss1/loss, update:loss1/loss
          send loss1: message_out:loss1/loss -> received:dense0
          gather dense0: received:dense0 -> message_in:dense0/b
          learner dense0/b: message_in:dense0/b, state:dense0/b -> message_out:dense0/b, update:dense0/b
          replicate dense0: message_out:dense0/b -> message_in:dense0/w
          learner dense0/w: message_in:dense0/w, state:dense0/w -> message_out:dense0/w, update:dense0/w
          aggregate dense0: message_out:dense0/w -> received:input
        update pass
          update dense0/w: param:dense0/w, update:dense0/w -> param:dense0/w
          update dense0/b: param:dense0/b, update:dense0/b -> param:dense0/b
        """
        lines = []
        for name, stages in (("forward", self.forward), ("message", self.message), ("update", self.update)):
            lines.append(f"{name} pass")
            lines += [f"  {st.dataflow()}" for st in stages]
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = []
        for name, stages in (("forward", self.forward), ("message", self.message), ("update", self.update)):
            lines.append(f"{name} pass ({len(stages)} stages)")
            lines += [f"  {k:>2}. {s}" for k, s in enumerate(stages)]
        c = self.counts()
        lines.append(f"{c['learner_calls']} learner calls, groups: "
                     + ", ".join(f"{g} x{n}" for g, n in self.learner_calls().items()))
        return "\n".join(lines)


def forward_stages(graph) -> list[Stage]:
    stages = []
    for wave_no, wave in enumerate(graph.waves):
        for b in wave:
            if isinstance(b, (InputNodes, TargetNodes)):
                continue
            if isinstance(b, WeightNodes):
                io = dict(inputs=(f"value:{b.src}", f"param:{b.name}/w"), outputs=(f"partial:{b.dst}", f"state:{b.name}/w"))
                if b.dense:
                    stages.append(Stage("forward", "dense_matmul", b.name, detail=f"wave {wave_no}: {b.src}[{b.n_src}] @ w[{b.n_src}x{b.n_dst}]", **io))
                else:
                    stages.append(Stage("forward", "sparse_matmul", b.name, detail=f"wave {wave_no}: gather {b.size} edges, segment sum into {b.dst}[{b.n_dst}]", **io))
            elif isinstance(b, NeuronNodes):
                n_in = len(graph.incoming_weights(b.name))
                stages.append(Stage("forward", "neuron_bias", b.name, detail=f"wave {wave_no}: sum of {n_in} weight block(s) + b[{b.size}]",
                                    inputs=(f"partial:{b.name}", f"param:{b.name}/b"),
                                    outputs=(f"value:{b.name}", f"state:{b.name}/b")))
            elif isinstance(b, ActivationNodes):
                fns = "/".join(sorted(set(b.fns)))
                stages.append(Stage("forward", "activation", b.name, detail=f"wave {wave_no}: {fns}[{b.size}]",
                                    inputs=(f"value:{b.src}",), outputs=(f"value:{b.name}", f"state:{b.name}/act")))
            elif isinstance(b, SoftmaxNodes):
                stages.append(Stage("forward", "softmax", b.name, detail=f"wave {wave_no}: [{b.size}]",
                                    inputs=(f"value:{b.src}",), outputs=(f"value:{b.name}", f"state:{b.name}/unit")))
            elif isinstance(b, LossNodes):
                stages.append(Stage("forward", "loss", b.name, detail=f"wave {wave_no}: {b.fn}[{b.size}] vs {b.target}",
                                    inputs=(f"value:{b.src}", f"value:{b.target}"),
                                    outputs=(f"output:{b.name}", f"loss:{b.name}", f"state:{b.name}/loss")))
    return stages


def _learner(graph, slot_key: str, detail: str) -> Stage:
    s = graph.slots[slot_key]
    return Stage("message", "learner", s.block, s.key, s.group, s.norm_group, detail,
                 inputs=(f"message_in:{s.key}", f"state:{s.key}"), outputs=(f"message_out:{s.key}", f"update:{s.key}"))


def _learn_and_send(graph, b, slot: str) -> list[Stage]:
    """A 1:1 unit's learner call, then its message sent to its one source unit."""
    return [_learner(graph, slot, f"{b.size} nodes"),
            Stage("message", "send", b.name, detail=f"1:1 -> {b.src}",
                  inputs=(f"message_out:{slot}",), outputs=(f"received:{b.src}",))]


def message_stages(graph, aggregation: str = "mean") -> list[Stage]:
    combine = aggregation
    stages = []
    for b in reversed(graph.blocks):
        if isinstance(b, LossNodes):
            slot = f"{b.name}/loss"
            stages.append(Stage("message", "seed", b.name, detail=f"[loss] -> {slot}[{b.size}]",
                                inputs=(f"loss:{b.name}",), outputs=(f"message_in:{slot}",)))
            stages += _learn_and_send(graph, b, slot)
        elif isinstance(b, (ActivationNodes, SoftmaxNodes)):
            slot = f"{b.name}/{b.label}"
            stages.append(Stage("message", "gather", b.name, detail=f"{combine} over consumers of {b.name}[{b.size}]",
                                inputs=(f"received:{b.name}",), outputs=(f"message_in:{slot}",)))
            stages += _learn_and_send(graph, b, slot)
        elif isinstance(b, NeuronNodes):
            slot = f"{b.name}/b"
            stages.append(Stage("message", "gather", b.name, detail=f"{combine} over consumers of {slot}[{b.size}]",
                                inputs=(f"received:{b.name}",), outputs=(f"message_in:{slot}",)))
            stages.append(_learner(graph, slot, f"{b.size} nodes"))
            for w in graph.incoming_weights(b.name):
                how = f"broadcast x{w.n_src}" if w.dense else f"gather to {w.size} edges"
                stages.append(Stage("message", "replicate", w.name, detail=f"{slot} -> {w.name}/w ({how})",
                                    inputs=(f"message_out:{slot}",), outputs=(f"message_in:{w.name}/w",)))
        elif isinstance(b, WeightNodes):
            slot = f"{b.name}/w"
            stages.append(_learner(graph, slot, f"{b.size} nodes"))
            to_input = isinstance(graph.units[b.src], InputNodes)
            how = "sum over outputs" if b.dense else "segment sum"
            stages.append(Stage("message", "aggregate", b.name,
                                detail=f"{slot} -> {b.src} ({how}{'; only when inspected' if to_input else ''})",
                                args=(to_input,), inputs=(f"message_out:{slot}",), outputs=(f"received:{b.src}",)))
    return stages


def update_stages(graph) -> list[Stage]:
    return [Stage("update", "update", s.block, s.key, s.group, s.norm_group, f"{s.key} += scale * (mean_B f - mean0)",
                  inputs=(f"param:{s.key}", f"update:{s.key}"), outputs=(f"param:{s.key}",))
            for s in graph.slots.values() if s.has_parameter]


def schedule(graph, aggregation: str = "mean") -> Schedule:
    """Run the passes: graph -> :class:`Schedule` (``aggregation``: how units combine messages)."""
    return Schedule(tuple(forward_stages(graph)), tuple(message_stages(graph, aggregation)), tuple(update_stages(graph)))
