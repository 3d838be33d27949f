"""The Trainer as users rely on it: exact resume (also after SIGKILL), non-finite handling,
determinism, MAML, and the experiment folder it writes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graphflow.errors import GraphflowError
from graphflow.meta import metaloss
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.meta.trainer import NonFiniteError, Trainer
from graphflow.presets import sinusoid
from graphflow.spec import ExperimentSpec

REPO = Path(__file__).resolve().parents[2]


def tiny_experiment(seed: int = 0, **meta) -> ExperimentSpec:
    """The sinusoid graph with a small learner: a meta-step takes tens of milliseconds."""
    return ExperimentSpec.model_validate({
        "name": "tiny", "graph": sinusoid().model_dump(mode="json"), "seed": seed,
        "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [8, 8]},
        "meta": {"outer_batch": 2, "inner_steps": 2, "steps": 6, **meta},
        "checkpoint_every": 2, "eval_every": 100, "eval_tasks": 4,
    })


def log_records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def meta_losses(folder: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["meta_loss"]) for r in log_records(folder) if "meta_loss" in r]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    Trainer(tiny_experiment(), folder).train(progress=False)
    return folder


# ----------------------------------------------------------------------------------------------
# resume


def test_uninterrupted_run_writes_its_folder(uninterrupted):
    losses = meta_losses(uninterrupted)
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6] and all(math.isfinite(v) for _, v in losses)
    assert [r["step"] for r in log_records(uninterrupted) if "eval" in r] == [6]  # eval_every 100: the last step
    arrays, meta = load_checkpoint(uninterrupted / "checkpoint.npz")
    assert meta["step"] == 6 and meta["kind"] == "graphflow-training-checkpoint"
    assert any(k.startswith("optimizer/m::") for k in arrays) and "protocol/norm::dense0/w::in_scale" in arrays
    assert ExperimentSpec.model_validate_json((uninterrupted / "experiment.json").read_text()) == tiny_experiment()


def test_resume_in_process_continues_exactly(uninterrupted, tmp_path):
    Trainer(tiny_experiment(), tmp_path).train(steps=4, progress=False)
    resumed = Trainer.resume(tmp_path / "checkpoint.npz")
    assert resumed.step == 4
    resumed.train(progress=False)
    assert meta_losses(tmp_path) == meta_losses(uninterrupted)


KILLED_RUN = """
import sys, time
from pathlib import Path
from graphflow.meta.trainer import Trainer

marker = Path(sys.argv[1])
meta_step = Trainer.meta_step


def hangs_before_step_6(self):
    if self.step == 5:  # steps 1-5 are logged; the last checkpoint holds step 4
        marker.write_text("ready")
        time.sleep(600)
    return meta_step(self)


Trainer.meta_step = hangs_before_step_6
from graphflow.cli import main

sys.exit(main(sys.argv[2:]))
"""


def test_resume_after_sigkill_continues_exactly(uninterrupted, tmp_path, capsys):
    """``graphflow train`` killed with SIGKILL after the checkpoint at step 4 (and the log line of
    step 5, which no checkpoint holds), then ``--resume``: the log equals an uninterrupted run's."""
    from graphflow.cli import main

    config, folder, marker = tmp_path / "tiny.json", tmp_path / "run", tmp_path / "marker"
    config.write_text(tiny_experiment().model_dump_json())
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(marker), "train", str(config), "--out", str(folder),
                             "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the training process never reached step 5"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(folder / "checkpoint.npz")[1]["step"] == 4
    assert [s for s, _ in meta_losses(folder)] == [1, 2, 3, 4, 5]

    assert main(["train", str(config), "--out", str(folder), "--resume", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "resuming tiny at meta-step 4" in err and json.loads(out)["step"] == 6
    assert meta_losses(folder) == meta_losses(uninterrupted)
    assert main(["train", str(config), "--out", str(folder), "--no-progress"]) == 2  # no silent overwrite
    assert "--resume" in capsys.readouterr().err


def test_resume_refuses_other_checkpoints(tmp_path):
    save_checkpoint(tmp_path / "p.npz", {"protocol/x": np.zeros(1, np.float32)}, {"kind": "graphflow-protocol"})
    with pytest.raises(GraphflowError, match="not a training checkpoint"):
        Trainer.resume(tmp_path / "p.npz")


# ----------------------------------------------------------------------------------------------
# non-finite meta-losses and gradients


def poison(monkeypatch, at_calls, loss=float("nan"), grad_key=None):
    """Make the meta-gradient return a non-finite loss (or one non-finite gradient tensor) on the
    given 1-based calls."""
    call = metaloss.MetaGradient.__call__
    calls = []

    def poisoned(self, *args, **kwargs):
        value, grads = call(self, *args, **kwargs)
        calls.append(1)
        if len(calls) in at_calls:
            if grad_key is None:
                return loss, grads
            grads = dict(grads)
            grads[grad_key] = grads[grad_key] * np.inf
        return value, grads

    monkeypatch.setattr(metaloss.MetaGradient, "__call__", poisoned)
    return calls


def test_stop_names_the_step(monkeypatch, tmp_path):
    poison(monkeypatch, {3})
    trainer = Trainer(tiny_experiment(on_nonfinite="stop"), tmp_path)
    with pytest.raises(NonFiniteError, match=r"meta-step 3: meta-loss nan; stopped \(last good state: meta-step 2, saved in .*checkpoint.npz\)"):
        trainer.train(progress=False)
    assert trainer.step == 2 and [s for s, _ in meta_losses(tmp_path)] == [1, 2]


def test_a_non_finite_gradient_names_its_tensor(monkeypatch):
    key = "learner::dense2/w::gru.W_update_x"
    poison(monkeypatch, {1}, grad_key=key)
    trainer = Trainer(tiny_experiment(on_nonfinite="stop"))
    with pytest.raises(NonFiniteError, match=f"meta-step 1: meta-loss .*, non-finite gradient in {key}"):
        trainer.train(progress=False)


@pytest.mark.filterwarnings("ignore:.*(overflow|invalid value).*:RuntimeWarning")
def test_an_infinite_update_scale_stops_training():
    """No mock: an infinite update scale sends the network's weights, then the meta-loss, to inf/NaN."""
    trainer = Trainer(tiny_experiment(on_nonfinite="stop"))
    trainer.setup()
    trainer.protocol.norms["dense2/w"]["out_scale"] = np.asarray(np.inf, np.float32)
    with pytest.raises(NonFiniteError, match="meta-step 1: meta-loss (nan|inf)"):
        trainer.train(progress=False)


def test_rollback_skips_the_batch_and_continues(monkeypatch, tmp_path):
    poison(monkeypatch, {3}, loss=float("inf"))
    trainer = Trainer(tiny_experiment(on_nonfinite="rollback"), tmp_path)
    records = trainer.train(progress=False)
    assert trainer.step == 6 and [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    log = log_records(tmp_path)
    events = [r for r in log if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == 2 and "meta-step 3: meta-loss inf" in events[0]["reason"]
    assert all(math.isfinite(v) for _, v in meta_losses(tmp_path))


def test_rollback_gives_up_after_three_failures_in_a_row(monkeypatch, tmp_path):
    poison(monkeypatch, {3, 4, 5})
    trainer = Trainer(tiny_experiment(on_nonfinite="rollback"), tmp_path)
    with pytest.raises(NonFiniteError, match="stopped"):
        trainer.train(progress=False)
    assert sum(r.get("event") == "rollback" for r in log_records(tmp_path)) == 2


# ----------------------------------------------------------------------------------------------
# determinism and MAML


def test_same_seed_same_losses():
    def losses(seed):
        return [r["meta_loss"] for r in Trainer(tiny_experiment(seed, steps=3)).train(progress=False)]

    first = losses(0)
    assert losses(0) == first
    assert losses(1) != first


def test_maml_trains_the_initial_network_too():
    trainer = Trainer(tiny_experiment(steps=2, maml=True, train_g=False))
    trainer.setup()
    before = {k: v.copy() for k, v in trainer.init.items()}
    assert set(before) == set(trainer.engine.parameter_shapes())
    records = trainer.train(progress=False)
    assert len(records) == 2 and all(math.isfinite(r["meta_loss"]) for r in records)
    assert all(not np.array_equal(trainer.init[k], before[k]) for k in before)


def test_cosine_learning_rate_schedule():
    def trainer(**meta):
        return Trainer(ExperimentSpec.model_validate({"graph": sinusoid().model_dump(mode="json"), "meta": meta}))

    tr = trainer(steps=100, learning_rate=1e-3, learning_rate_final=1e-4)
    assert tr.learning_rate(0) == pytest.approx(1e-3)
    assert tr.learning_rate(50) == pytest.approx(5.5e-4)
    assert tr.learning_rate(100) == pytest.approx(1e-4) and tr.learning_rate(150) == pytest.approx(1e-4)
    constant = trainer(learning_rate=3e-4)
    assert constant.learning_rate(0) == constant.learning_rate(10**6) == 3e-4


def test_task_shards_share_the_cores(tmp_path):
    """``threads`` splits an outer batch into shards computed in parallel; each shard's engine then
    splits its large learner calls over its share of the cores only, and the sharded meta-gradient
    is the unsharded one."""
    from graphflow.engine.inner import default_threads

    spec = tiny_experiment().model_dump(mode="json")
    one = Trainer(ExperimentSpec.model_validate({**spec, "threads": 1}), tmp_path / "one")
    two = Trainer(ExperimentSpec.model_validate({**spec, "threads": 2}), tmp_path / "two")
    one.setup()
    two.setup()
    assert [m.engine.threads for m in one.metagrads] == [default_threads()]
    assert [m.engine.threads for m in two.metagrads] == [max(1, default_threads() // 2)] * 2
    batch = one.tasks.sample(np.random.default_rng(5), 2)
    init = one._initial(np.array([0, 1]))
    loss1, grads1 = one._sharded_metagrad(batch, init)
    loss2, grads2 = two._sharded_metagrad(batch, init)
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    for key in grads1:
        np.testing.assert_allclose(grads2[key], grads1[key], rtol=1e-3, atol=1e-6, err_msg=key)
