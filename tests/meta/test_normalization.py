"""The fixed normalization measured before meta-training (MPLP_SPEC.md, "Normalization")."""

from __future__ import annotations

import numpy as np
import pytest

from graphflow.engine.record import EngineHooks
from graphflow.meta import normalization
from graphflow.meta.normalization import StreamStats
from graphflow.meta.trainer import Trainer
from graphflow.presets import sinusoid
from graphflow.spec import ExperimentSpec


def experiment(**meta) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "name": "norm", "graph": sinusoid().model_dump(mode="json"),
        "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [8, 8]},
        "meta": {"outer_batch": 8, "inner_steps": 3, **meta},
    })


class StandardizedStreams(EngineHooks):
    """A recorder of the standardized learner inputs: per group, per step, (mean, std) of each stream."""

    def __init__(self):
        self.steps: dict[str, list] = {}
        self.updates: dict[str, list] = {}

    def on_learner(self, engine, slot, raw, streams, carry, msg, update):
        self.steps.setdefault(slot.norm_group, []).append([(float(np.mean(s)), float(np.std(s))) for s in streams])
        if update is not None:
            self.updates.setdefault(slot.norm_group, []).append(engine.be.to_numpy(update.mean(axis=1)))

    def summary(self, group):
        """(mean over steps of the per-step means, ... of the per-step stds) per stream: how the
        measurement defines a stream's statistics."""
        a = np.asarray(self.steps[group])
        return a[..., 0].mean(axis=0), a[..., 1].mean(axis=0)


def fresh_run(trainer, seed=5, rounds=4):
    """Inner loops on fresh tasks and fresh initial networks with the measured protocol."""
    rec = StandardizedStreams()
    rng = np.random.default_rng(seed)
    m = trainer.exp.meta
    for _ in range(rounds):
        batch = trainer.tasks.sample(rng, m.outer_batch)
        state = trainer.engine.init_network(rng, m.outer_batch)
        for i in range(batch.steps):
            state, _ = trainer.engine.step(state, *batch.at_step(i), recorder=rec)
    return rec


@pytest.fixture(scope="module")
def measured():
    trainer = Trainer(experiment())
    trainer.setup()
    return trainer


def test_measurement_changes_every_group(measured):
    for group, norm in measured.protocol.norms.items():
        assert np.all(norm["in_scale"] > 0) and np.all(np.isfinite(norm["in_shift"]))
        assert not np.allclose(norm["in_scale"], 1.0) and not np.allclose(norm["in_shift"], 0.0), group
        if "out_mean" in norm:
            assert norm["out_mean"] != 0.0 and norm["out_scale"] == pytest.approx(0.2 * 0.05), group


def test_data_streams_are_standardized_on_fresh_batches(measured):
    """Streams that do not depend on the learners (the first layer's input x, the loss's target)
    have ~zero mean and ~unit std on fresh tasks: the standardization fits the data."""
    rec = fresh_run(measured)
    for group, stream in (("dense0/w", 2), ("loss5/loss", 2)):  # [message, w, x]; [message, out, target, diff]
        mean, std = rec.summary(group)
        assert abs(mean[stream]) < 0.2 and 0.8 < std[stream] < 1.25, (group, stream, mean, std)


def test_stream_statistics_and_floors():
    stats = StreamStats()
    # two steps of two streams: (mean, mean of squares); the second stream is constant at 0.5
    stats.step_moments["g"] = [[(1.0, 5.0), (0.5, 0.25)], [(3.0, 13.0), (0.5, 0.25)]]
    stats.update_means["g"] = [0.1, 0.3]
    out = stats.moments()["g"]
    np.testing.assert_allclose(out["mean"], [2.0, 0.5])
    np.testing.assert_allclose(out["std"], [np.sqrt(9.0 - 4.0), 0.0], atol=1e-12)  # pooled over both steps
    norm = normalization.standardization(out["mean"], out["std"])
    np.testing.assert_allclose(norm["in_shift"], [-2.0, -0.5])
    np.testing.assert_allclose(norm["in_scale"], [1 / np.sqrt(5.0), 1.0], rtol=1e-6)  # std below 1e-5: scale 1
    assert out["out_mean"] == pytest.approx(0.2)


def test_rounds_are_blended_in_moment_space(monkeypatch):
    """mean and std: new = old * (1 - p) + measured * p, the first round setting them; shift and
    scale follow from the blend; the output mean comes from a last pass after the rounds."""
    seen = []
    moments_fn = StreamStats.moments

    def spy(self):
        seen.append(moments_fn(self))
        return seen[-1]

    monkeypatch.setattr(StreamStats, "moments", spy)
    trainer = Trainer(experiment(normalization_rounds=3, normalization_blend=0.25))
    trainer.setup()
    assert len(seen) == 4  # three rounds and the output pass
    for group, norm in trainer.protocol.norms.items():
        blend = {}
        for key in ("mean", "std"):
            r1, r2, r3 = (s[group][key] for s in seen[:3])
            blend[key] = (r1 * 0.75 + r2 * 0.25) * 0.75 + r3 * 0.25
        expected = normalization.standardization(blend["mean"], blend["std"])
        np.testing.assert_allclose(norm["in_shift"], expected["in_shift"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(norm["in_scale"], expected["in_scale"], rtol=1e-5)
        if "out_mean" in norm:
            assert norm["out_mean"] == seen[-1][group]["out_mean"]
    assert normalization.STD_FLOOR == 1e-5


def test_every_stream_is_roughly_standardized_on_fresh_batches(measured):
    rec = fresh_run(measured)
    for group in rec.steps:
        mean, std = rec.summary(group)
        assert np.all(np.abs(mean) < 1.0) and np.all((std > 1 / 3) & (std < 3)), (group, mean, std)
    for group, updates in rec.updates.items():
        u = np.concatenate([a.reshape(-1) for a in updates])
        assert abs(u.mean() - measured.protocol.norms[group]["out_mean"]) < u.std(), group
