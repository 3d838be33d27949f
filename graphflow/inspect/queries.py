"""Questions asked of a recorded :class:`~graphflow.inspect.run.Run`.

- :func:`top_changed`: which nodes changed most (largest |total update|);
- :func:`message_alerts`: where a message vanished or exploded (norm below/above thresholds);
- :func:`message_vs_gradient`: the learned updates and messages next to the true backprop
  gradient of the same loss (correlation per step across nodes, sign agreement);
- :func:`group_update_distribution`: how a learner group's updates were spread over all its nodes;
- :func:`part_summary`: per block part and step, the mean message norm (or update size).

Every answer is computed from the run alone; none of these functions runs the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.inspect.labelled import LabelledArray
from graphflow.inspect.run import QUANTILES, Run, part_of
from graphflow.io.jsonl import finite_or_none


def top_changed(run: Run, k: int = 10, pattern: str | None = None, task: int | None = None) -> list[tuple[str, float]]:
    """The ``k`` weight/bias nodes whose total update (summed over the recorded steps) is largest in size.

    Returns ``(node id, total update)`` pairs, largest ``|total|`` first; with several tasks the
    ranking uses the mean over tasks of ``|total|`` and the value is the mean total (or one task's).

    >>> from graphflow.inspect._example import example_run
    >>> top_changed(example_run(), k=2)
    [('dense2/w[1,0]', 0.5), ('dense2/w[0,0]', -0.25)]
    """
    ids, totals = [], []
    chosen = set(run.select(pattern)) if pattern else None
    for part, rec in run.parts.items():
        if "update" not in rec.fields:
            continue
        total = np.nansum(rec.fields["update"], axis=0)  # [task, node]
        for pos, nid in enumerate(rec.ids):
            if chosen is None or nid in chosen:
                ids.append(nid)
                totals.append(total[:, pos] if task is None else total[task:task + 1, pos])
    if not ids:
        raise GraphflowError("no recorded weight or bias node: record some (e.g. 'dense2/w[*,*]') to rank updates")
    totals = np.asarray(totals, np.float64)
    size = np.abs(totals).mean(axis=1)
    order = np.argsort(-size, kind="stable")[:k]
    return [(ids[i], float(totals[i].mean())) for i in order]


@dataclass(frozen=True)
class MessageAlert:
    """A message whose norm left the band [low, high] at one step."""

    step: int
    task: int
    node: str
    norm: float
    kind: str
    """``vanished`` (norm < low), ``exploded`` (norm > high) or ``non-finite``."""
    field: str


def message_alerts(run: Run, low: float = 1e-6, high: float = 1e3, field: str = "message_out",
                   pattern: str | None = None) -> list[MessageAlert]:
    """Where a message vanished or exploded: every (step, task, node) whose mean per-example norm
    of ``field`` (``message_out`` or ``message_in``) is below ``low``, above ``high`` or not finite.

    >>> from graphflow.inspect._example import example_run
    >>> [(a.step, a.node, a.kind) for a in message_alerts(example_run(), low=0.5, high=100)]
    [(1, 'dense2/w[0,0]', 'vanished')]
    """
    chosen = set(run.select(pattern)) if pattern else None
    alerts = []
    for part, rec in run.parts.items():
        if field not in rec.fields:
            continue
        norm = rec.labelled(field, run.step_labels).norm("channel").mean("example").values  # [step, task, node]
        for s, t, n in zip(*np.nonzero(rec.recorded[:, None, :] & ~((norm >= low) & (norm <= high)))):
            nid = rec.ids[n]
            if chosen is not None and nid not in chosen:
                continue
            value = float(norm[s, t, n])
            kind = "non-finite" if not np.isfinite(value) else ("vanished" if value < low else "exploded")
            alerts.append(MessageAlert(int(s), int(t), nid, value, kind, field))
    order = {nid: k for k, nid in enumerate(run.node_ids())}
    return sorted(alerts, key=lambda a: (a.step, a.task, order[a.node]))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():  # nothing finite to correlate (a diverged run)
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


def _sign_agreement(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
    return float(np.mean(np.sign(a[ok]) == np.sign(b[ok]))) if ok.any() else float("nan")


@dataclass(frozen=True)
class GradientComparison:
    """The learned updates and messages of some weight/bias nodes next to their backprop gradients.

    Per step, across the nodes (and tasks): the Pearson correlation of the update with the
    negative gradient (1 = a gradient-descent step up to scale) and the fraction of nodes whose
    update has the sign of the negative gradient; for the messages, which are learned k-vectors
    and not gradients, the correlation of every channel's batch-mean value with the gradient, the
    best channel, and how often that channel's sign agrees with the gradient once oriented by the
    sign of its correlation.
    """

    nodes: tuple[str, ...]
    message_field: str
    gradient: LabelledArray
    """[step, task, node]"""
    update: LabelledArray
    """[step, task, node]"""
    message: LabelledArray
    """batch-mean message [step, task, node, channel]"""
    update_correlation: np.ndarray
    """[step] correlation of update with -gradient."""
    update_sign_agreement: np.ndarray
    channel_correlation: np.ndarray
    """[step, channel] correlation of each message channel with the gradient."""
    best_channel: np.ndarray
    message_correlation: np.ndarray
    """[step] correlation of the best channel (largest |correlation|) with the gradient."""
    message_sign_agreement: np.ndarray

    def table(self, steps: list[int] | None = None) -> str:
        """A text table, one row per step (all, or the given ones)."""
        rows = [f"{'step':>4}  {'corr(update, -grad)':>19}  {'sign agree':>10}  {'best channel':>12}  "
                f"{'corr(msg, grad)':>15}  {'sign agree':>10}"]
        channels = self.message.labels("channel")
        for s in range(len(self.update_correlation)) if steps is None else steps:
            rows.append(f"{s:>4}  {self.update_correlation[s]:>19.3f}  {self.update_sign_agreement[s]:>10.2f}  "
                        f"{channels[self.best_channel[s]]:>12}  {self.message_correlation[s]:>15.3f}  "
                        f"{self.message_sign_agreement[s]:>10.2f}")
        return "\n".join(rows)

    def to_json(self) -> dict:
        channels = self.message.labels("channel")
        return {"nodes": list(self.nodes), "message_field": self.message_field,
                "update_correlation": finite_or_none(self.update_correlation),
                "update_sign_agreement": finite_or_none(self.update_sign_agreement),
                "channel_correlation": finite_or_none(self.channel_correlation),
                "best_channel": [channels[c] for c in self.best_channel],
                "message_correlation": finite_or_none(self.message_correlation),
                "message_sign_agreement": finite_or_none(self.message_sign_agreement)}


def message_vs_gradient(run: Run, pattern: str | None = None, message: str = "message_out") -> GradientComparison:
    """Compare the selected weight/bias nodes' updates and messages with their backprop gradients.

    ``pattern`` narrows the nodes (default: every recorded node with a gradient); ``message`` is
    ``message_out`` (what the node sends on) or ``message_in``. The run must have been recorded
    with gradients.

    >>> from graphflow.inspect._example import example_run
    >>> cmp = message_vs_gradient(example_run())
    >>> cmp.update_correlation.round(2).tolist(), cmp.update_sign_agreement.tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """
    ids = [nid for nid in (run.select(pattern) if pattern else run.node_ids())
           if "gradient" in run.parts[part_of(nid)].fields]
    if not ids:
        raise GraphflowError("no recorded node has a gradient: record weight or bias nodes with gradients "
                             "(Inspector(..., gradients=True), or --gradients)")
    grad = run.nodes_field(ids, "gradient")
    upd = run.nodes_field(ids, "update")
    msg = run.nodes_field(ids, message).mean("example").transpose("step", "task", "node", "channel")
    steps, channels = grad.shape[0], msg.shape[-1]
    upd_corr = np.array([_pearson(upd.values[s].ravel(), -grad.values[s].ravel()) for s in range(steps)])
    upd_sign = np.array([_sign_agreement(upd.values[s].ravel(), -grad.values[s].ravel()) for s in range(steps)])
    chan = np.array([[_pearson(msg.values[s, ..., c].ravel(), grad.values[s].ravel()) for c in range(channels)]
                     for s in range(steps)])
    best = np.array([int(np.nanargmax(np.abs(r))) if np.isfinite(r).any() else 0 for r in chan])
    best_corr = chan[np.arange(steps), best]
    best_sign = np.array([_sign_agreement(np.sign(best_corr[s]) * msg.values[s, ..., best[s]].ravel(),
                                          grad.values[s].ravel()) for s in range(steps)])
    return GradientComparison(tuple(ids), message, grad, upd, msg, upd_corr, upd_sign, chan, best, best_corr, best_sign)


def group_update_distribution(run: Run, group: str | None = None) -> dict[str, dict[str, LabelledArray]]:
    """How each learner group's updates were spread over all its nodes, per step.

    ``{group: {"quantiles": [step, quantile], "histogram": [step, bin], "edges": [step, edge],
    "moments": [step, moment]}}`` (moments: mean, std, mean |update|). These come from the
    parameters before and after every step, so they cover every node of the group, recorded or not.

    >>> from graphflow.inspect._example import example_run
    >>> d = group_update_distribution(example_run(), "dense2/w")
    >>> d["dense2/w"]["quantiles"].sel(quantile=0.5).values.tolist()
    [0.125, 0.0]
    """
    if not run.groups:
        raise GraphflowError("this run has no group statistics (record with group_stats=True)")
    names = [group] if group else list(run.groups)
    out = {}
    for name in names:
        if name not in run.groups:
            raise GraphflowError(f"no update statistics for group {name!r}; groups: {', '.join(run.groups)}")
        g = run.groups[name]
        steps = {"step": run.step_labels}
        out[name] = {
            "quantiles": LabelledArray(g["quantiles"], ("step", "quantile"), {**steps, "quantile": QUANTILES}),
            "histogram": LabelledArray(g["histogram"], ("step", "bin"), steps),
            "edges": LabelledArray(g["edges"], ("step", "edge"), steps),
            "moments": LabelledArray(g["moments"], ("step", "moment"), {**steps, "moment": ("mean", "std", "mean_abs")}),
        }
    return out


def part_summary(run: Run, field: str = "message_out") -> dict[str, LabelledArray]:
    """Per recorded block part: the mean over its recorded nodes and tasks of a per-step size, [step].

    Message fields give the mean per-example norm; ``update``/``gradient`` give the mean |value|.

    >>> from graphflow.inspect._example import example_run
    >>> part_summary(example_run(), "update")["dense2/w"].values.tolist()
    [0.125, 0.25]
    """
    out = {}
    for part, rec in run.parts.items():
        if field not in rec.fields:
            continue
        a = rec.labelled(field, run.step_labels)
        size = a.norm("channel").mean("example") if "channel" in a.dims else a.abs()
        if "example" in size.dims:
            size = size.mean("example")
        out[part] = size.mean(("task", "node"))
    return out


QUANTITIES = {
    "update": "update",
    "abs_update": "|update|",
    "gradient": "backprop gradient",
    "message_out": "outgoing message norm",
    "message_in": "incoming message norm",
}
"""What a picture can colour nodes by: name -> axis label."""


def node_series(run: Run, quantity: str = "update") -> dict[str, np.ndarray]:
    """Per recorded part having ``quantity``: one value per step and node, averaged over tasks, [step, node].

    ``update``/``abs_update``/``gradient``: the value; ``message_out``/``message_in``: the mean
    per-example norm. NaN marks steps at which a node was not recorded.

    >>> from graphflow.inspect._example import example_run
    >>> node_series(example_run(), "abs_update")["dense2/w"].tolist()
    [[0.0, 0.25], [0.25, 0.25]]
    """
    if quantity not in QUANTITIES:
        raise GraphflowError(f"unknown quantity {quantity!r}; choose one of {', '.join(QUANTITIES)}")
    name = "update" if quantity == "abs_update" else quantity
    out = {}
    for part, rec in run.parts.items():
        if name in rec.fields:
            a = rec.labelled(name, run.step_labels)
            if "channel" in a.dims:
                a = a.norm("channel").mean("example")
            values = a.mean("task").values
            out[part] = np.abs(values) if quantity == "abs_update" else values
    return out


def node_values(run: Run, quantity: str = "update", step: int | None = None) -> dict[str, np.ndarray]:
    """One number per recorded node of every part that has ``quantity``, averaged over tasks.

    At ``step``, the value of :func:`node_series`; with ``step`` None, the total over the steps
    (``update``, ``abs_update``: the size of the total, ``gradient``) or the mean over the steps
    (message norms). NaN marks nodes not recorded (at that step, or ever).

    >>> from graphflow.inspect._example import example_run
    >>> run = example_run()
    >>> node_values(run, "update")["dense2/w"].tolist(), node_values(run, "message_out", 1)["dense2/w"].round(2).tolist()
    ([-0.25, 0.5], [0.1, 2.29])
    """
    if step is not None:
        return {part: v[step] for part, v in node_series(run, quantity).items()}
    signed = "update" if quantity == "abs_update" else quantity
    out = {}
    for part, v in node_series(run, signed).items():
        ever = np.isfinite(v).any(axis=0)
        if quantity in ("message_out", "message_in"):
            total = np.nanmean(np.where(ever, v, 0.0), axis=0)
        else:
            total = np.nansum(v, axis=0)
        total = np.where(ever, total, np.nan)
        out[part] = np.abs(total) if quantity == "abs_update" else total
    return out
