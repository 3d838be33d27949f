"""Meta-training learns: 100 meta-steps (Adam, lr 1e-3) lower a tiny protocol's meta-loss.

The meta-loss of single meta-steps is noisy (each draws new tasks), so the protocol is judged
before and after training on the same fixed tasks and initial networks: a deterministic
comparison that only training can change.
"""

from __future__ import annotations

import numpy as np

from graphflow.engine import Engine
from graphflow.meta.metaloss import meta_loss
from graphflow.meta.trainer import Trainer
from graphflow.presets import sinusoid
from graphflow.spec import ExperimentSpec


def test_meta_loss_decreases_over_100_meta_steps():
    exp = ExperimentSpec.model_validate({
        "name": "learns", "graph": sinusoid().model_dump(mode="json"),
        "learner": {"kind": "stateless", "hidden": 2, "message_size": 2, "mlp_hidden": [8, 8]},
        "meta": {"outer_batch": 4, "inner_steps": 2, "steps": 100, "learning_rate": 1e-3},
        "eval_every": 1000, "eval_tasks": 2,
    })
    trainer = Trainer(exp)
    trainer.setup()
    rng = np.random.default_rng(99)
    batch = trainer.tasks.sample(rng, 32)
    init = {k: v[rng.integers(0, len(v), 32)] for k, v in trainer.pool.items()}

    def held_out_meta_loss():
        engine = Engine(trainer.graph, trainer.protocol)
        return float(meta_loss(engine, engine.network_from_arrays(init), batch))

    before = held_out_meta_loss()
    records = trainer.train(progress=False)
    after = held_out_meta_loss()
    assert len(records) == 100
    assert after < 0.95 * before, (before, after)
    losses = [r["meta_loss"] for r in records]
    assert np.mean(losses[-25:]) < np.mean(losses[:25])
