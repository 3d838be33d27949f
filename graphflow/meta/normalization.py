"""Measuring a protocol's fixed normalization on initial minibatches (MPLP_SPEC.md, "Normalization").

Input streams: per normalization group and stream, shift = -mean and scale = 1/std (1 where
std < 1e-5), measured while inner loops run; one round's value is the mean over its steps;
rounds are blended, new = old * (1 - p) + measured * p (the first round sets them). Output
means: the mean over the whole parameter tensor (and the round's steps) of the batch-mean raw
update, measured once, in the last round.
"""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-5


class StreamStats:
    """An engine hook (the :class:`~graphflow.engine.record.Recorder` interface) that accumulates
    per-step statistics of every normalization group's streams and raw updates."""

    def __init__(self, graph):
        self.graph = graph
        self.step_stats: dict[str, list[list[tuple[float, float]]]] = {}
        self.update_means: dict[str, list[float]] = {}

    def on_learner(self, engine, slot, raw, streams, carry, msg, update):
        to_np = engine.be.to_numpy
        stats = [(float(to_np(r).mean()), float(to_np(r).std())) for r in raw]
        self.step_stats.setdefault(slot.norm_group, []).append(stats)
        if update is not None:
            self.update_means.setdefault(slot.norm_group, []).append(float(to_np(update.mean(axis=1)).mean()))

    def on_update(self, engine, slot_key, delta):
        pass

    def on_input_message(self, engine, unit, mean_message):
        pass

    def end_step(self, engine):
        pass

    def measured(self) -> dict[str, dict[str, np.ndarray]]:
        """Norm group -> {"in_shift", "in_scale", "out_mean"?} from the collected steps."""
        out = {}
        for group, steps in self.step_stats.items():
            arr = np.asarray(steps)  # [steps, streams, 2]
            mean, std = arr[..., 0].mean(axis=0), arr[..., 1].mean(axis=0)
            scale = np.where(std < STD_FLOOR, 1.0, 1.0 / np.maximum(std, STD_FLOOR))
            out[group] = {"in_shift": (-mean).astype(np.float32), "in_scale": scale.astype(np.float32)}
            if group in self.update_means:
                out[group]["out_mean"] = np.asarray(np.mean(self.update_means[group]), np.float32)
        return out


def measure_normalization(engine, protocol, sample_batch, init_network, rounds: int = 3, blend: float = 0.5):
    """Fix ``protocol``'s input standardization and output means by running inner loops.

    ``sample_batch(round)`` gives a :class:`~graphflow.meta.metaloss.MetaBatch`;
    ``init_network(round)`` the initial :class:`~graphflow.engine.NetState`. Returns the protocol
    (updated in place).
    """
    for r in range(rounds):
        engine.set_protocol(protocol)
        stats = StreamStats(engine.graph)
        batch, state = sample_batch(r), init_network(r)
        for i in range(batch.steps):
            state, _ = engine.step(state, batch.x[:, i], batch.y[:, i], recorder=stats)
        p = 1.0 if r == 0 else blend
        for group, values in stats.measured().items():
            norm = protocol.norms[group]
            for key in ("in_shift", "in_scale"):
                norm[key] = (norm[key] * (1 - p) + values[key] * p).astype(np.float32)
            if r == rounds - 1 and "out_mean" in values:
                norm["out_mean"] = values["out_mean"]
    engine.set_protocol(protocol)
    return protocol
