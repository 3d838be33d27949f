"""Meta-training runs users can trust: the reference regime, logs, evals, checkpoints, resume.

A :class:`Trainer` owns one experiment folder::

    <out>/experiment.json   the experiment spec
    <out>/log.jsonl         one line per meta-step (and per eval)
    <out>/checkpoint.npz    the latest checkpoint (atomic, checksummed)

Everything random comes from generators seeded by the experiment's seed whose states are saved
in the checkpoint, so that a resumed run continues with exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from graphflow.engine import Engine, NetState
from graphflow.engine.inner import default_threads
from graphflow.errors import GraphflowError
from graphflow.graph import build
from graphflow.learners.protocol import Protocol
from graphflow.meta.checkpoint import load_checkpoint, save_checkpoint
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.meta.normalization import measure_normalization
from graphflow.meta.optim import Adam
from graphflow.spec.experiment import ExperimentSpec


class NonFiniteError(GraphflowError):
    """A meta-loss or gradient became NaN or infinite."""


class TaskSource:
    """Samples outer batches of the experiment's task family."""

    def __init__(self, exp: ExperimentSpec):
        self.exp = exp
        self.mnist = None
        if exp.task.kind == "mnist":
            from graphflow.tasks import load_mnist, prepare_mnist

            self.mnist = prepare_mnist(*load_mnist(exp.task.data_dir))

    def sample(self, rng: np.random.Generator, tasks: int) -> MetaBatch:
        m = self.exp.meta
        if self.mnist is None:
            from graphflow.tasks import sample_sinusoid_meta_batch

            b = sample_sinusoid_meta_batch(rng, tasks, m.inner_steps, m.shots, m.heldout)
            return MetaBatch(b["x"], b["y"], b["xe"], b["ye"])
        d = self.mnist
        idx = rng.integers(0, len(d.train_x), size=(tasks, m.inner_steps, m.shots))
        held = rng.integers(0, len(d.train_x), size=(tasks, m.heldout))
        return MetaBatch(d.train_x[idx], d.train_y[idx], d.train_x[held], d.train_y[held])


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def _restore_rng(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


class Trainer:
    """Meta-trains a protocol for an experiment spec."""

    def __init__(self, exp: ExperimentSpec, out_dir: str | Path | None = None):
        self.exp = exp
        self.out = Path(out_dir) if out_dir else None
        self.graph = build(exp.graph)
        self.tasks = TaskSource(exp)
        self.engine = Engine(self.graph, Protocol.init(self.graph, exp.learner, exp.seed), exp.backend)
        self.protocol: Protocol = self.engine.protocol
        self.step = 0
        self.rng = np.random.default_rng([exp.seed, 1])
        self.pool = self._make_pool()
        self.init = None  # MAML: the shared, meta-trained initial network
        self.optimizer = Adam(exp.meta.learning_rate)
        self.metagrads: list[MetaGradient] = []
        self.history: list[dict] = []

    # ------------------------------------------------------------------ setup
    def _make_pool(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.exp.seed, 2])
        state = self.engine.init_network(rng, self.exp.meta.init_pool)
        return {k: self.engine.be.to_numpy(v) for k, v in state.params.items()}

    def _initial(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self.init is not None:
            return {k: v for k, v in self.init.items()}
        return {k: v[indices] for k, v in self.pool.items()}

    def setup(self) -> None:
        """Measure the normalization on initial minibatches (before any meta-step)."""
        m = self.exp.meta
        rng = np.random.default_rng([self.exp.seed, 3])
        if m.maml:
            self.init = {k: v[0] for k, v in self.pool.items()}

        def init_network(_round):
            idx = rng.integers(0, m.init_pool, size=m.outer_batch)
            params = self._initial(idx)
            if self.init is not None:
                params = {k: np.broadcast_to(v, (m.outer_batch,) + v.shape) for k, v in params.items()}
            return self.engine.network_from_arrays(params)

        measure_normalization(self.engine, self.protocol, lambda _r: self.tasks.sample(rng, m.outer_batch),
                              init_network, rounds=m.normalization_rounds, blend=m.normalization_blend)
        self._make_metagrad()

    def _make_metagrad(self):
        trainable = self.protocol.trainable(train_g=self.exp.meta.train_g)
        if self.init is not None:
            trainable = trainable + [f"init::{k}" for k in self.init]
        shards = min(self.exp.threads, self.exp.meta.outer_batch)
        # The cores are shared: each shard's engine splits its large learner calls over its share.
        per_shard = max(1, default_threads() // shards)
        self.metagrads = [MetaGradient(self.graph, self.protocol, self.exp.backend, trainable=trainable, threads=per_shard)
                         for _ in range(shards)]

    # ------------------------------------------------------------------ one meta-step
    def meta_step(self) -> dict:
        m = self.exp.meta
        t0 = time.perf_counter()
        batch = self.tasks.sample(self.rng, m.outer_batch)
        idx = self.rng.integers(0, m.init_pool, size=m.outer_batch)
        loss, grads = self._sharded_metagrad(batch, self._initial(idx))
        bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
        if not math.isfinite(loss) or bad:
            raise NonFiniteError(f"meta-step {self.step + 1}: meta-loss {loss}" +
                                 (f", non-finite gradient in {bad[0]}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                                  if bad else ""))
        params = {k: v for k, v in self.protocol.flat().items() if k in grads}
        if self.init is not None:
            params.update({f"init::{k}": v for k, v in self.init.items()})
        self.optimizer.lr = self.learning_rate(self.step)
        new = self.optimizer.step(params, grads)
        self._apply(new)
        self.step += 1
        norm = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
        return {"step": self.step, "meta_loss": loss, "grad_norm": norm, "learning_rate": self.optimizer.lr,
                "seconds": time.perf_counter() - t0}

    def learning_rate(self, step: int) -> float:
        """The outer learning rate at meta-step ``step`` (constant, or a cosine to ``learning_rate_final``)."""
        m = self.exp.meta
        if m.learning_rate_final is None:
            return m.learning_rate
        t = min(step / max(m.steps, 1), 1.0)
        return m.learning_rate_final + 0.5 * (m.learning_rate - m.learning_rate_final) * (1 + math.cos(math.pi * t))

    def _sharded_metagrad(self, batch: MetaBatch, init: dict):
        """Meta-loss and gradient of the outer batch, its tasks split over the workers' threads."""
        m = self.exp.meta
        shards = np.array_split(np.arange(batch.x.shape[0]), len(self.metagrads))
        shared_init = self.init is not None

        def run(k):
            idx = shards[k]
            part = MetaBatch(batch.x[idx], batch.y[idx], batch.xe[idx], batch.ye[idx])
            part_init = init if shared_init else {key: v[idx] for key, v in init.items()}
            return self.metagrads[k](self.protocol, part, part_init, m.hint_weight, m.heldout_weight,
                                    init_trainable=shared_init)

        if len(shards) == 1:
            return run(0)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(shards)) as pool:
            results = list(pool.map(run, range(len(shards))))
        weights = [len(s) / batch.x.shape[0] for s in shards]
        loss = sum(w * r[0] for w, r in zip(weights, results))
        grads = {key: sum(w * r[1][key] for w, r in zip(weights, results)) for key in results[0][1]}
        return loss, grads

    def _apply(self, flat: dict[str, np.ndarray]) -> None:
        for key, value in flat.items():
            kind, group, *name = key.split("::")
            if kind == "init":
                self.init[group] = value
            else:
                table = self.protocol.learners if kind == "learner" else self.protocol.norms
                table[group][name[0]] = value

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"protocol/{k}": v for k, v in self.protocol.flat().items()}
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state().items()})
        if self.init is not None:
            arrays.update({f"init/{k}": v for k, v in self.init.items()})
        return arrays

    def state_meta(self) -> dict:
        return {
            "kind": "graphflow-training-checkpoint",
            "experiment": self.exp.model_dump(mode="json"),
            "graph": self.exp.graph.model_dump(mode="json"),
            "learner": self.exp.learner.model_dump(mode="json"),
            "step": self.step,
            "rng": _rng_state(self.rng),
        }

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else self.out / "checkpoint.npz"
        save_checkpoint(path, self.state_arrays(), self.state_meta())
        return path

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.protocol = Protocol.from_flat(self.exp.learner, {k[9:]: v for k, v in arrays.items() if k.startswith("protocol/")})
        self.engine.set_protocol(self.protocol)
        self.optimizer = Adam(self.exp.meta.learning_rate)
        self.optimizer.load_state({k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")})
        init = {k[5:]: v for k, v in arrays.items() if k.startswith("init/")}
        self.init = init or None
        self.step = int(meta["step"])
        self.rng = _restore_rng(meta["rng"])
        self._make_metagrad()

    @classmethod
    def resume(cls, path: str | Path, out_dir: str | Path | None = None) -> "Trainer":
        """A trainer continuing exactly where the checkpoint at ``path`` left off."""
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != "graphflow-training-checkpoint":
            raise GraphflowError(f"{path}: not a training checkpoint")
        trainer = cls(ExperimentSpec.model_validate(meta["experiment"]), out_dir or Path(path).parent)
        trainer.restore(arrays, meta)
        return trainer

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, progress: bool = True, log: bool = True) -> list[dict]:
        """Run meta-steps up to ``steps`` (default: the spec's), with logs, evals and checkpoints."""
        from tqdm.auto import tqdm

        total = steps or self.exp.meta.steps
        if not self.metagrads:
            self.setup()
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "experiment.json").write_text(self.exp.model_dump_json(indent=2))
            self._truncate_log()
        good = (self.state_arrays(), self.state_meta())
        failures = 0
        bar = tqdm(total=total, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        records = []
        while self.step < total:
            try:
                rec = self.meta_step()
                failures = 0
            except NonFiniteError as err:
                failures += 1
                if self.exp.meta.on_nonfinite == "stop" or failures >= 3:
                    bar.close()
                    raise NonFiniteError(f"{err}; stopped (last good checkpoint: step {good[1]['step']})") from None
                rng_after = self.rng
                self.restore(*good)
                self.rng = rng_after  # skip the offending batch
                self._write({"step": self.step, "event": "rollback", "reason": str(err)})
                continue
            records.append(rec)
            self._write(rec)
            bar.set_postfix(meta_loss=f"{rec['meta_loss']:.5f}", s_per_step=f"{rec['seconds']:.3f}")
            bar.update(1)
            if self.step % self.exp.eval_every == 0 or self.step == total:
                self._write({"step": self.step, "eval": self.evaluate().to_json()})
            if self.out and (self.step % self.exp.checkpoint_every == 0 or self.step == total):
                self.save()
                good = (self.state_arrays(), self.state_meta())
        bar.close()
        return records

    def evaluate(self, tasks: int | None = None, seed: int = 12345):
        from graphflow.evaluation import evaluate_mnist, evaluate_sinusoid

        self.engine.set_protocol(self.protocol)
        n = tasks or self.exp.eval_tasks
        m = self.exp.meta
        if self.tasks.mnist is not None:
            return evaluate_mnist(self.engine, self.tasks.mnist, tasks=n, seed=seed, steps=m.inner_steps, batch=m.shots)
        return evaluate_sinusoid(self.engine, tasks=n, seed=seed, steps=m.inner_steps, shots=m.shots, prior=self.init)

    def _write(self, record: dict) -> None:
        self.history.append(record)
        if self.out:
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _truncate_log(self) -> None:
        """Drop log lines past the current step (written by a run that died before its checkpoint)."""
        path = self.out / "log.jsonl"
        if not path.exists():
            return
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= self.step]
        path.write_text("".join(line + "\n" for line in keep))
