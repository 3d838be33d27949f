"""Measuring a protocol's fixed normalization on initial minibatches (MPLP_SPEC.md, "Normalization").

Input streams: per normalization group and stream, shift = -mean and scale = 1/std (1 where
std < 1e-5), measured while inner loops run. One round's measurement is the mean over its steps
of each stream's first and second moments (over tasks, examples, nodes and channels), so that a
stream that is constant at the first step (biases start at zero) is measured by the steps where
it moves. Rounds are blended in moment space, new = old * (1 - p) + measured * p (the first round
sets them), and shift and scale follow from the blended mean and std: blending scales themselves
lets one round in which a stream barely varies (scale ~1/1e-5) dominate all later ones.
Output means (the mean over the whole parameter tensor and the steps of the batch-mean raw update)
are measured once, in a last pass with the final input standardization in place.
"""

from __future__ import annotations

import numpy as np

from graphflow.engine.record import EngineHooks

STD_FLOOR = 1e-5


class StreamStats(EngineHooks):
    """An engine hook (:class:`~graphflow.engine.record.EngineHooks`) that accumulates per-step
    moments of every normalization group's streams and its raw updates."""

    def __init__(self, graph=None):
        self.graph = graph
        self.step_moments: dict[str, list[list[tuple[float, float]]]] = {}
        self.update_means: dict[str, list[float]] = {}

    def on_learner(self, engine, slot, raw, streams, carry, msg, update):
        to_np = engine.be.to_numpy
        moments = []
        for r in raw:
            v = to_np(r).astype(np.float64)
            moments.append((float(v.mean()), float((v * v).mean())))
        self.step_moments.setdefault(slot.norm_group, []).append(moments)
        if update is not None:
            self.update_means.setdefault(slot.norm_group, []).append(float(to_np(update.mean(axis=1)).mean()))

    def moments(self) -> dict[str, dict[str, np.ndarray]]:
        """Norm group -> {"mean", "std"} per stream (and "out_mean"), from the collected steps."""
        out = {}
        for group, steps in self.step_moments.items():
            arr = np.asarray(steps)  # [steps, streams, 2]
            mean, second = arr[..., 0].mean(axis=0), arr[..., 1].mean(axis=0)
            out[group] = {"mean": mean, "std": np.sqrt(np.maximum(second - mean * mean, 0.0))}
            if group in self.update_means:
                out[group]["out_mean"] = np.asarray(np.mean(self.update_means[group]), np.float32)
        return out


def standardization(mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """shift = -mean, scale = 1/std (1 where std < 1e-5).

    >>> standardization(np.array([2.0, 0.5]), np.array([4.0, 1e-7]))["in_scale"].tolist()
    [0.25, 1.0]
    """
    scale = np.where(std < STD_FLOOR, 1.0, 1.0 / np.maximum(std, STD_FLOOR))
    return {"in_shift": (-mean).astype(np.float32), "in_scale": scale.astype(np.float32)}


def _run(engine, batch, state, recorder):
    for i in range(batch.steps):
        state, _ = engine.step(state, *batch.at_step(i), recorder=recorder)


def measure_normalization(engine, protocol, sample_batch, init_network, rounds: int = 3, blend: float = 0.5):
    """Fix ``protocol``'s input standardization and output means by running inner loops.

    ``sample_batch(round)`` gives a :class:`~graphflow.meta.metaloss.MetaBatch`;
    ``init_network(round)`` the initial :class:`~graphflow.engine.NetState`. Returns the protocol
    (updated in place).
    """
    blended: dict[str, dict[str, np.ndarray]] = {}
    for r in range(rounds):
        engine.set_protocol(protocol)
        stats = StreamStats(engine.graph)
        _run(engine, sample_batch(r), init_network(r), stats)
        p = 1.0 if r == 0 else blend
        for group, values in stats.moments().items():
            old = blended.setdefault(group, {k: np.array(values[k]) for k in ('mean', 'std')})
            for key in ("mean", "std"):
                old[key] = old[key] * (1 - p) + values[key] * p
            protocol.norms[group].update(standardization(old["mean"], old["std"]))
    engine.set_protocol(protocol)
    stats = StreamStats(engine.graph)
    _run(engine, sample_batch(rounds), init_network(rounds), stats)
    for group, values in stats.moments().items():
        if "out_mean" in values:
            protocol.norms[group]["out_mean"] = values["out_mean"]
    engine.set_protocol(protocol)
    return protocol
