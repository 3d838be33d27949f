"""Meta-training runs users can trust: the reference regime, logs, evals, checkpoints, resume.

A :class:`Trainer` owns one experiment folder::

    <out>/experiment.json   the experiment spec
    <out>/log.jsonl         one line per meta-step (and per eval)
    <out>/checkpoint.npz    the latest checkpoint (atomic, checksummed)

The meta-gradient comes from the estimator the experiment names (``meta.estimator``,
:mod:`graphflow.meta.estimators`). Everything random comes from generators seeded by the
experiment's seed whose states are saved in the checkpoint, with what the estimator carries
between outer steps (persistent inner networks, accumulated perturbations, task seeds and
positions), so that a resumed run continues with exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from graphflow.engine import Engine
from graphflow.engine.inner import default_threads
from graphflow.errors import GraphflowError, SpecError
from graphflow.graph import build
from graphflow.io import FolderLock, atomic_write_text, kill_point, read_records, remove_temporaries, rewrite_records
from graphflow.io.jsonl import append_record
from graphflow.learners.protocol import ParamKey, Protocol
from graphflow.meta.checkpoint import load_checkpoint, non_finite_arrays, save_checkpoint
from graphflow.meta.estimators import make_estimator
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.meta.normalization import measure_normalization
from graphflow.meta.optim import Adam
from graphflow.meta.protocol_file import check_initial_network, header_experiment, split_arrays, validated
from graphflow.spec.experiment import ExperimentSpec

RUN_FILES = ("checkpoint.npz", "log.jsonl", "experiment.json")
"""What a run folder holds (besides its ``.lock`` while a trainer uses it)."""
RUNTIME_FIELDS = ("eval_every", "checkpoint_every", "eval_tasks", "threads", "distributed")
"""Experiment fields that change when things are logged and saved, or how the work is split over
threads and Ray workers, but not the protocol a run learns: a resumed run takes them from the new config."""
MAX_FAILURES_IN_A_ROW = 3
MAX_ROLLBACKS = 100
"""A run stops after this many rollbacks in all (a run that keeps failing is not learning)."""


class NonFiniteError(GraphflowError):
    """A meta-loss, a gradient or the protocol after an update became NaN or infinite."""


class _RngState(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    bit_generator: Literal["PCG64"]
    state: dict


class TrainingHeader(BaseModel):
    """The header of a training checkpoint (besides the experiment, checked on its own)."""

    model_config = ConfigDict(extra="allow", strict=True)

    kind: Literal["graphflow-training-checkpoint"]
    step: int = Field(ge=0)
    rng: _RngState


def spec_differences(old: BaseModel, new: BaseModel, skip: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths of the fields where ``new`` differs from ``old`` (``meta.learning_rate: 0.001 -> 0.01``).

    >>> from graphflow.presets import sinusoid
    >>> a = ExperimentSpec(graph=sinusoid())
    >>> spec_differences(a, a.model_copy(update={"seed": 3}))
    ['seed: 0 -> 3']
    """
    out: list[str] = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if path or key not in skip:
                    walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}" if not isinstance(a, (dict, list)) and not isinstance(b, (dict, list))
                       else f"{path}: changed")

    walk(old.model_dump(mode="json"), new.model_dump(mode="json"), "")
    return out


class TaskSource:
    """Samples outer batches of the experiment's task family."""

    def __init__(self, exp: ExperimentSpec, graph=None):
        self.exp = exp
        self.mnist = None
        if graph is not None:
            check_task_fits(exp, graph)
        if exp.task.kind == "mnist":
            from graphflow.tasks import load_mnist_task

            self.mnist = load_mnist_task(exp.task.data_dir)

    def sample(self, rng: np.random.Generator, tasks: int, steps: int | None = None) -> MetaBatch:
        """``tasks`` tasks of ``steps`` inner steps (default: ``meta.inner_steps``)."""
        m = self.exp.meta
        steps = steps or m.inner_steps
        if self.mnist is None:
            from graphflow.tasks import sample_sinusoid_meta_batch

            b = sample_sinusoid_meta_batch(rng, tasks, steps, m.shots, m.heldout)
            return MetaBatch(b["x"], b["y"], b["xe"], b["ye"])
        from graphflow.tasks import mnist_meta_batch

        b = mnist_meta_batch(self.mnist, rng, tasks, steps, m.shots, m.heldout)
        return MetaBatch(b["x"], b["y"], b["xe"], b["ye"])


def check_task_fits(exp: ExperimentSpec, graph) -> None:
    """A clear error when the experiment's task cannot feed the graph's inputs and targets."""
    need = {"sinusoid": (1, 1, "one input unit (x) and one target (y)"),
            "mnist": (144, 10, "144 input units (12x12 images) and 10 targets (one-hot digits)")}[exp.task.kind]
    sizes = ([b.size for b in graph.inputs], [b.size for b in graph.targets])
    if sizes != ([need[0]], [need[1]]):
        raise SpecError(f"experiment {exp.name!r}: the {exp.task.kind} task needs a graph with {need[2]}; this graph "
                        f"has input blocks of {sizes[0]} units and target blocks of {sizes[1]}")


def check_meta_trainable(exp: ExperimentSpec, graph) -> None:
    """Refuse graphs whose meta-gradient is zero by construction: a loss fed by step activations
    (through softmax or other activations only) is piecewise constant in the protocol."""
    from graphflow.graph.blocks import ActivationNodes, SoftmaxNodes

    for loss in graph.losses:
        block = graph.units.get(loss.src)
        while isinstance(block, (ActivationNodes, SoftmaxNodes)):
            if isinstance(block, ActivationNodes) and "step" in block.fns:
                raise SpecError(f"experiment {exp.name!r}: the step activation {block.name!r} feeds loss {loss.name!r} "
                                f"with no weights in between, so the meta-loss is piecewise constant in the protocol "
                                f"and its meta-gradient is zero; meta-train with a smooth activation there (a step "
                                f"can replace it at meta-test time)")
            block = graph.units.get(block.src)


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def _restore_rng(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


class RunDraws:
    """A trainer's tasks as its estimator draws them (:class:`graphflow.meta.estimators.TaskDraws`):
    outer batches and seeds from the run's generator, one task per seed from a generator of its own."""

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer

    def batch(self, tasks: int, steps: int) -> tuple[MetaBatch, dict]:
        t = self.trainer
        batch = t.tasks.sample(t.rng, tasks, steps)
        return batch, t._initial(t.rng.integers(0, t.exp.meta.init_pool, size=tasks))

    def task(self, seed: int, steps: int) -> tuple[MetaBatch, dict]:
        t = self.trainer
        rng = np.random.default_rng([t.exp.seed, 4, seed])
        batch = t.tasks.sample(rng, 1, steps)
        return batch, t._initial(rng.integers(0, t.exp.meta.init_pool, size=1))

    def task_seed(self) -> int:
        return int(self.trainer.rng.integers(2**63))

    noise_seed = task_seed


class Trainer:
    """Meta-trains a protocol for an experiment spec."""

    def __init__(self, exp: ExperimentSpec, out_dir: str | Path | None = None):
        self.exp = exp
        self.out = Path(out_dir) if out_dir else None
        self.graph = build(exp.graph)
        check_meta_trainable(exp, self.graph)
        self.tasks = TaskSource(exp, self.graph)
        self.engine = Engine(self.graph, Protocol.init(self.graph, exp.learner, exp.seed), exp.backend)
        self.protocol: Protocol = self.engine.protocol
        self.step = 0
        self.rng = np.random.default_rng([exp.seed, 1])
        self.pool = self._make_pool()
        self.init = None  # MAML: the shared, meta-trained initial network
        self.optimizer = Adam(exp.meta.learning_rate)
        self.estimator = None  # built by setup() or restore()
        self._ray = None  # (what they were built for, the Ray workers) of a distributed run
        self.draws = RunDraws(self)
        self.history: list[dict] = []
        self.listeners: list = []  # listener(trainer, record) after each record (graphflow.meta.tensorboard)

    @property
    def metagrads(self) -> list[MetaGradient]:
        """The bptt estimator's :class:`MetaGradient` of every shard of the outer batch (none for other estimators)."""
        return getattr(self.estimator, "metagrads", [])

    # ------------------------------------------------------------------ setup
    def _make_pool(self) -> dict[str, np.ndarray]:
        from graphflow.graph.memory import require_memory

        per_network = sum(math.prod(shape) for shape in self.engine.parameter_shapes().values())
        # the pool, plus the float64 draws numpy makes before the float32 copy
        require_memory(self.exp.meta.init_pool * per_network * 12, f"experiment {self.exp.name!r}",
                       f"meta.init_pool {self.exp.meta.init_pool} initial networks of {per_network} parameters",
                       doing="for its pool of initial networks")
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

        if m.start_from is not None:
            self._start_from(m.start_from)
        else:
            measure_normalization(self.engine, self.protocol, lambda _r: self.tasks.sample(rng, m.outer_batch),
                                  init_network, rounds=m.normalization_rounds, blend=m.normalization_blend)
        self._make_metagrad()

    def _start_from(self, source: str) -> None:
        """The protocol (normalization included) and, for MAML, the initial network of ``source``
        (``meta.start_from``) in place of the fresh ones."""
        from graphflow.meta.warm_start import starting_protocol

        protocol, init = starting_protocol(source, self.graph, self.exp.learner)
        self.protocol = protocol
        self.engine.set_protocol(protocol)
        if self.init is not None and init is not None:
            self.init = check_initial_network(self.engine, init, Path(f"meta.start_from {source}"))

    def _make_metagrad(self):
        m = self.exp.meta
        trainable = self.protocol.trainable(train_g=m.train_g)
        if self.init is not None:
            trainable = trainable + [str(ParamKey.init(k)) for k in self.init]
        shards = 1 if self.exp.distributed else min(self.exp.threads, m.outer_batch)
        # The cores are shared: each shard's engine splits its large learner calls over its share.
        per_shard = max(1, default_threads() // shards)
        self.estimator = make_estimator(m.estimator, self.graph, self.protocol, trainable, m, self.exp.backend,
                                        init_trainable=self.init is not None, shards=shards, threads_per_shard=per_shard)
        if not self.exp.distributed:
            return
        if m.estimator.kind == "bptt":  # its one shard, the whole outer batch, is split over Ray workers
            self.estimator.metagrads = [self._ray_workers(trainable)]
        elif m.estimator.kind == "es":  # its population is split over Ray workers
            from graphflow.distributed.population import DistributedEs

            self.estimator = DistributedEs(self.estimator, self._ray_workers(trainable))
        elif m.estimator.kind == "pes":  # its population, and its members' inner networks, over Ray workers
            from graphflow.distributed.persistent import DistributedPes

            self.estimator = DistributedPes(self.estimator, self._ray_workers(trainable))
        else:  # truncated: its task slots, and their inner networks, over Ray workers
            from graphflow.distributed.truncated import DistributedTruncated

            self.estimator = DistributedTruncated(self.estimator, self._ray_workers(trainable))

    def _ray_workers(self, trainable: list[str]):
        """The Ray workers that ``distributed`` asks for, started once (a restore, a rollback or a
        resume keeps them): a :class:`graphflow.distributed.sharded.ShardedMetaGradient` for bptt,
        an :class:`graphflow.distributed.population.EsPopulation` for es, a
        :class:`graphflow.distributed.persistent.PesPopulation` for pes, a
        :class:`graphflow.distributed.truncated.TruncatedShards` for truncated (these two built on
        ``self.estimator``, the one-process estimator, whose engine each worker builds)."""
        d, m = self.exp.distributed, self.exp.meta
        key = (tuple(trainable), d, m.estimator)
        if self._ray is None or self._ray[0] != key:
            self.close()
            if m.estimator.kind == "es":
                from graphflow.distributed.population import EsPopulation

                workers = EsPopulation(self.estimator, workers=d.workers, address=d.address)
            elif m.estimator.kind == "pes":
                from graphflow.distributed.persistent import PesPopulation

                workers = PesPopulation(self.estimator, workers=d.workers, address=d.address)
            elif m.estimator.kind == "truncated":
                from graphflow.distributed.truncated import TruncatedShards

                workers = TruncatedShards(self.estimator, workers=d.workers, address=d.address)
            else:
                from graphflow.distributed.sharded import ShardedMetaGradient

                workers = ShardedMetaGradient(self.graph, self.protocol, self.exp.backend, trainable=trainable,
                                              workers=d.workers, address=d.address,
                                              recompute_every=m.estimator.recompute_every)
            self._ray = (key, workers)
        return self._ray[1]

    def close(self) -> None:
        """Stop the Ray workers of a ``distributed`` run now (a later meta-step starts new ones)."""
        if self._ray is not None:
            self._ray[1].close()
            self._ray = None

    # ------------------------------------------------------------------ one meta-step
    def meta_step(self) -> dict:
        if self.exp.distributed and self._ray is None and self.estimator is not None:
            self._make_metagrad()  # its workers were stopped (close); bptt carries no state to lose
        t0 = time.perf_counter()
        loss, grads = self.estimator.estimate(self.protocol, self.draws)
        bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
        if not math.isfinite(loss) or bad:
            raise NonFiniteError(f"meta-step {self.step + 1}: meta-loss {loss}" +
                                 (f", non-finite gradient in {bad[0]}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                                  if bad else ""))
        params = {k: v for k, v in self.protocol.flat().items() if k in grads}
        if self.init is not None:
            params.update({str(ParamKey.init(k)): v for k, v in self.init.items()})
        self.optimizer.lr = self.learning_rate(self.step)
        new = self.optimizer.step(params, grads)
        bad = [k for k in grads if not np.all(np.isfinite(new[k]))]
        if bad:
            raise NonFiniteError(f"meta-step {self.step + 1}: the update (learning rate {self.optimizer.lr:g}) made "
                                 f"{bad[0]} non-finite" + (f", and {len(bad) - 1} more" if len(bad) > 1 else ""))
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
        """The bptt estimator's meta-loss and gradient of one outer batch (its tasks split over the shards)."""
        return self.estimator.gradient(self.protocol, batch, init)

    def _apply(self, flat: dict[str, np.ndarray]) -> None:
        for text, value in flat.items():
            key = ParamKey.parse(text)
            if key.table == "init":
                self.init[key.group] = value
            else:
                self.protocol.table(key)[key.group][key.name] = value

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"protocol/{k}": v for k, v in self.protocol.flat().items()}
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state().items()})
        if self.init is not None:
            arrays.update({f"init/{k}": v for k, v in self.init.items()})
        if self.estimator is not None:
            arrays.update({f"estimator/{k}": v for k, v in self.estimator.state_arrays().items()})
        return arrays

    def state_meta(self) -> dict:
        return {
            "kind": "graphflow-training-checkpoint",
            "experiment": self.exp.model_dump(mode="json"),
            "graph": self.exp.graph.model_dump(mode="json"),
            "learner": self.exp.learner.model_dump(mode="json"),
            "step": self.step,
            "rng": _rng_state(self.rng),
            "estimator": self.estimator.state_meta() if self.estimator is not None else {},
        }

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else self.out / "checkpoint.npz"
        save_checkpoint(path, self.state_arrays(), self.state_meta())
        return path

    def restore(self, arrays: dict[str, np.ndarray], meta: dict, source: str = "checkpoint", check: bool = True) -> None:
        """Continue from a training state: a checkpoint's (checked against this trainer's graph and
        learner), or, with ``check=False``, one of this trainer's own :meth:`snapshot`."""
        if check:
            validated(TrainingHeader, meta, "training checkpoint header", Path(source))
            self.protocol = Protocol.checked(self.graph, self.exp.learner, split_arrays(arrays, "protocol"), source)
        else:
            self.protocol = Protocol.from_flat(self.exp.learner, split_arrays(arrays, "protocol"))
        self.engine.set_protocol(self.protocol)
        init = split_arrays(arrays, "init") or None
        if check and (init is not None) != self.exp.meta.maml:
            raise GraphflowError(f"{source}: {'an' if init else 'no'} initial network (init/...) in a checkpoint of an "
                                 f"experiment with maml {self.exp.meta.maml}")
        self.init = check_initial_network(self.engine, init, Path(source)) if check and init is not None else init
        optimizer = split_arrays(arrays, "optimizer")
        self.optimizer = Adam(self.exp.meta.learning_rate)
        self.optimizer.load_state(self._checked_optimizer(optimizer, source) if check else optimizer)
        self.step = int(meta["step"])
        try:
            self.rng = _restore_rng(meta["rng"])
        except (TypeError, ValueError, KeyError) as err:
            raise GraphflowError(f"{source}: the header's random generator state is malformed ({err})") from None
        self._make_metagrad()
        estimator_meta = meta.get("estimator", {})
        if check and not isinstance(estimator_meta, dict):
            raise GraphflowError(f"{source}: the header's estimator state is not a JSON object")
        self.estimator.load_state(split_arrays(arrays, "estimator"), estimator_meta, source, check)

    def _checked_optimizer(self, state: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
        params = {k: v for k, v in self.protocol.flat().items()}
        if self.init is not None:
            params.update({str(ParamKey.init(k)): v for k, v in self.init.items()})
        t = state.get("t")
        if t is None or t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            raise GraphflowError(f"{source}: optimizer/t must be a non-negative integer scalar")
        for key, a in state.items():
            if key == "t":
                continue
            moment, _, name = key.partition("::")  # Adam's m::<key> and v::<key>
            name = name if moment in ("m", "v") else None
            if name not in params:
                raise GraphflowError(f"{source}: optimizer/{key} is not the state of a trainable parameter")
            if a.shape != params[name].shape:
                raise GraphflowError(f"{source}: optimizer/{key} has shape {list(a.shape)}; its parameter has "
                                     f"{list(params[name].shape)}")
            if not np.all(np.isfinite(a)):
                raise GraphflowError(f"{source}: optimizer/{key} holds NaN or infinite values")
        return state

    @classmethod
    def resume(cls, path: str | Path, out_dir: str | Path | None = None, config: ExperimentSpec | None = None,
               accept_checkpoint: bool = False) -> "Trainer":
        """A trainer continuing exactly where the checkpoint at ``path`` left off.

        With ``config`` (the experiment the user asks to continue), a checkpoint of a different
        experiment is refused with the differing fields named, unless ``accept_checkpoint``: then
        the checkpoint's experiment is used. Fields of ``RUNTIME_FIELDS`` are taken from ``config``.
        """
        path = Path(path)
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != "graphflow-training-checkpoint":
            raise GraphflowError(f"{path}: not a training checkpoint")
        exp = header_experiment(meta, path)
        if config is not None:
            differ = spec_differences(exp, config, skip=RUNTIME_FIELDS)
            if differ and not accept_checkpoint:
                raise GraphflowError(f"{path} is a checkpoint of another experiment than the config: "
                                     f"{'; '.join(differ[:5])}" + (f" (and {len(differ) - 5} more)" if len(differ) > 5 else "")
                                     + "; pass --accept-checkpoint to continue the checkpoint's experiment")
            exp = exp.model_copy(update={k: getattr(config, k) for k in RUNTIME_FIELDS})
        trainer = cls(exp, out_dir or path.parent)
        trainer.restore(arrays, meta, str(path))
        return trainer

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        """A copy of the whole training state, to roll back to."""
        return {k: np.array(v, copy=True) for k, v in self.state_arrays().items()}, copy.deepcopy(self.state_meta())

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, progress: bool = True, log: bool = True) -> list[dict]:
        """Run meta-steps up to ``steps`` (default: the spec's), with logs, evals and checkpoints.

        The run folder is locked while it runs. After every meta-step the trainer keeps a copy of
        the state in memory; a NaN or infinite meta-loss, gradient or updated protocol rolls back to
        it and skips the batch (``on_nonfinite: rollback``), and the run stops after
        ``MAX_FAILURES_IN_A_ROW`` failures in a row or ``MAX_ROLLBACKS`` in all, or at the first one
        (``stop``), saving the last good state.
        """
        if progress:
            from tqdm.auto import tqdm
        else:  # a notebook's tqdm warns without ipywidgets even when disabled
            from tqdm import tqdm

        total = steps or self.exp.meta.steps
        lock = FolderLock(self.out).acquire() if self.out else None
        try:
            if self.out:
                remove_temporaries(self.out, RUN_FILES)
                atomic_write_text(self.out / "experiment.json", self.exp.model_dump_json(indent=2))
                self._truncate_log()
            if self.estimator is None:
                self.setup()
            good = self.snapshot()
            saved_step = self._checkpoint_step()
            failures = rollbacks = 0
            bar = tqdm(total=total, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
            records = []
            while self.step < total:
                try:
                    rec = self.meta_step()
                except NonFiniteError as err:
                    failures += 1
                    rng_after = self.rng
                    self.restore(*good, check=False)
                    self.rng = rng_after  # skip the offending batch
                    self.estimator.abandon_tasks()  # and the inner networks that may have diverged
                    if (self.exp.meta.on_nonfinite == "stop" or failures >= MAX_FAILURES_IN_A_ROW
                            or rollbacks >= MAX_ROLLBACKS):
                        bar.close()
                        why = ("" if self.exp.meta.on_nonfinite == "stop" else
                               f" after {failures} failures in a row" if failures >= MAX_FAILURES_IN_A_ROW
                               else f" after {rollbacks} rollbacks")
                        raise NonFiniteError(f"{err}; stopped{why} ({self._keep_last_good(saved_step)})") from None
                    rollbacks += 1
                    self._write({"step": self.step, "event": "rollback", "reason": str(err)})
                    continue
                failures = 0
                kill_point("meta-step")
                records.append(rec)
                self._write(rec)
                bar.set_postfix(meta_loss=f"{rec['meta_loss']:.5f}", s_per_step=f"{rec['seconds']:.3f}")
                bar.update(1)
                if self.step % self.exp.eval_every == 0 or self.step == total:
                    self._write({"step": self.step, "eval": self.evaluate().to_json()})
                if self.out and (self.step % self.exp.checkpoint_every == 0 or self.step == total):
                    self.save()
                    saved_step = self.step
                good = self.snapshot()
            bar.close()
            return records
        finally:
            if lock is not None:
                lock.release()

    def _checkpoint_step(self) -> int | None:
        path = self.out / "checkpoint.npz" if self.out else None
        if path is None or not path.exists():
            return None
        return int(load_checkpoint(path)[1]["step"])

    def _keep_last_good(self, saved_step: int | None) -> str:
        """Save the state rolled back to (when newer than the checkpoint); where the last good state is."""
        if self.out is None:
            return f"the trainer holds the last good state, meta-step {self.step}"
        path = self.out / "checkpoint.npz"
        if non_finite_arrays(self.state_arrays()):
            return f"the state before meta-step {self.step + 1} was not finite either; nothing was saved"
        if self.step == 0:
            return "no meta-step succeeded; no checkpoint was written" if saved_step is None else \
                f"the last good state is the checkpoint at meta-step {saved_step}"
        if saved_step != self.step:
            self.save()
        return f"last good state: meta-step {self.step}, saved in {path}"

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
            append_record(self.out / "log.jsonl", record)
        for listener in self.listeners:
            listener(self, record)

    def _truncate_log(self) -> None:
        """Drop log lines past the current step (written by a run that died before its checkpoint),
        and a torn last line; the log is replaced atomically."""
        path = self.out / "log.jsonl"
        if not path.exists():
            return
        with warnings.catch_warnings(record=True) as torn:
            warnings.simplefilter("always")
            records = read_records(path)
        for w in torn:
            warnings.warn(str(w.message), stacklevel=3)
        keep = [r for r in records if _step_of(r, path) <= self.step]
        if torn or len(keep) != len(records):
            rewrite_records(path, keep)


def _step_of(record: dict, path: Path) -> int:
    step = record.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool):
        raise GraphflowError(f"{path}: a record with step {step!r}, not a whole number")
    return step
