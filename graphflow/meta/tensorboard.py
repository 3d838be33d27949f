"""TensorBoard event files of a meta-training run, in ``<run folder>/tb/`` (``tensorboard --logdir RUN``).

A :class:`TensorBoardLog` listens to a :class:`~graphflow.meta.trainer.Trainer`'s records (the
lines of ``log.jsonl``) and writes, with the meta-step as TensorBoard's step:

* ``meta/<field>`` for every number of a meta-step record: ``meta/meta_loss``, ``meta/grad_norm``,
  ``meta/learning_rate``, ``meta/seconds``;
* ``eval/<metric>/inner_step_<k>`` for every evaluation: the mean over the eval tasks after ``k``
  inner steps (``eval/l2/inner_step_0`` is the loss before any step);
* at every evaluation (every ``eval_every`` meta-steps and at the end), per learner group,
  ``updates/<group>`` and ``messages/<group>``: histograms of the updates applied to the group's
  parameters and of the messages its nodes send, over one inner loop of one task (drawn from the
  meta-step, so a resumed run draws the same one). They are collected through the engine's
  recorder interface (:class:`graphflow.engine.record.EngineHooks`), at most ``SAMPLE`` values per
  group and inner step (an even stride through the group's values).

Rollbacks stay in ``log.jsonl`` only. Each :class:`TensorBoardLog` writes one new event file,
synchronously (every record is on disk when the trainer's next meta-step starts). A resumed run
reads the event files already there and skips every (tag, step) they hold: a run that died after
logging meta-steps its checkpoint does not have redoes them with the same values (exact resume)
without logging them twice. A fresh run (meta-step 0) removes the event files a run that left no
checkpoint wrote. The event files are TFRecord files of ``Event`` protocol buffers, written and read
(:func:`read_events`) with tensorboardX's, so neither TensorFlow nor TensorBoard is needed.

This module needs the ``tensorboard`` extra (``pip install 'graphflow[tensorboard]'``), imported
only when a log is made.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

from graphflow.engine.record import EngineHooks
from graphflow.errors import GraphflowError

FOLDER = "tb"
"""The event files' folder inside a run folder."""
SAMPLE = 100_000
"""At most this many values per learner group and inner step go into a histogram."""
BINS = 64
MISSING = "--tensorboard needs tensorboardX: pip install 'graphflow[tensorboard]'"


def require_tensorboardx():
    """The tensorboardX module, or a :class:`GraphflowError` saying how to install it."""
    try:
        import tensorboardX
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "tensorboardX":
            raise
        raise GraphflowError(MISSING) from None
    return tensorboardX


class TensorBoardLog:
    """Writes ``trainer``'s records into ``<trainer.out>/tb/`` from now on (see the module's docstring).

    >>> import tempfile
    >>> from graphflow.meta.trainer import Trainer
    >>> from graphflow.spec import ExperimentSpec
    >>> from graphflow.presets import sinusoid
    >>> exp = ExperimentSpec.model_validate({"graph": sinusoid().model_dump(), "eval_every": 2, "eval_tasks": 2,
    ...     "learner": {"hidden": 2, "message_size": 2, "mlp_hidden": [4, 4]},
    ...     "meta": {"outer_batch": 2, "inner_steps": 2, "steps": 2}})
    >>> trainer = Trainer(exp, tempfile.mkdtemp())
    >>> log = TensorBoardLog(trainer)
    >>> _ = trainer.train(progress=False); log.close()
    >>> events = read_events(trainer.out / "tb")
    >>> [step for step, _ in events.scalars["meta/meta_loss"]], sorted(events.histograms)[:2]
    ([1, 2], ['messages/dense0/b', 'messages/dense0/w'])
    """

    def __init__(self, trainer):
        require_tensorboardx()
        if trainer.out is None:
            raise GraphflowError("tensorboard: the trainer has no run folder to write tb/ into")
        self.trainer = trainer
        self.folder = Path(trainer.out) / FOLDER
        self.fresh = trainer.step == 0
        self.logged: dict[str, set[int]] = {}
        self._writer = None  # opened at the first record, while the trainer holds the run folder's lock
        trainer.listeners.append(self)

    def __call__(self, trainer, record: dict) -> None:
        if self._writer is None:
            self._open()
        step = record["step"]
        if "meta_loss" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._scalar(f"meta/{key}", value, step)
        elif "eval" in record:
            ev = record["eval"]
            for k, mean in zip(ev["steps"], ev["mean"]):
                self._scalar(f"eval/{ev['metric']}/inner_step_{k}", mean, step)
            self._histograms(trainer, step)
        else:
            return
        self._writer.flush()

    def close(self) -> None:
        """Close the event file (the trainer stops calling this log)."""
        if self in self.trainer.listeners:
            self.trainer.listeners.remove(self)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self) -> None:
        from tensorboardX.event_file_writer import EventsWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            for stale in event_files(self.folder):  # from a run that died before its first checkpoint
                stale.unlink()
        self.logged = {tag: {step for step, _ in points} for tag, points in read_events(self.folder).all().items()}
        self._writer = EventsWriter(str(self.folder / "events"), f".graphflow.{uuid.uuid4().hex[:8]}")

    # ------------------------------------------------------------------ writing
    def _new(self, tag: str, step: int) -> bool:
        seen = self.logged.setdefault(tag, set())
        if step in seen:
            return False
        seen.add(step)
        return True

    def _event(self, summary, step: int) -> None:
        import time

        from tensorboardX.proto.event_pb2 import Event

        self._writer.write_event(Event(wall_time=time.time(), step=step, summary=summary))

    def _scalar(self, tag: str, value, step: int) -> None:
        from tensorboardX.summary import scalar

        if self._new(tag, step):
            self._event(scalar(tag, float(value)), step)

    def _histograms(self, trainer, step: int) -> None:
        from tensorboardX.summary import histogram

        values = inner_loop_values(trainer, seed=step)
        for kind, groups in values.items():
            for group, parts in sorted(groups.items()):
                a = np.concatenate(parts).astype(np.float64)
                a = a[np.isfinite(a)]
                tag = f"{kind}/{group}"
                if a.size and self._new(tag, step):
                    self._event(histogram(tag, a, BINS), step)


class _GroupValues(EngineHooks):
    """Per learner group, a strided sample of the updates applied and the messages sent in each
    inner step (engine hooks: sees what every learner call produces, keeps at most ``SAMPLE``)."""

    def __init__(self):
        self.values = {"updates": defaultdict(list), "messages": defaultdict(list)}

    def _keep(self, engine, kind: str, group: str, a) -> None:
        flat = a.reshape(-1)
        stride = max(1, math.ceil(flat.shape[0] / SAMPLE))
        self.values[kind][group].append(engine.be.to_numpy(flat[::stride]))

    def on_learner(self, engine, slot, raw, streams, carry, msg, update) -> None:
        self._keep(engine, "messages", slot.group, msg)

    def on_update(self, engine, slot_key: str, delta) -> None:
        self._keep(engine, "updates", engine.graph.slots[slot_key].group, delta)


def inner_loop_values(trainer, seed: int) -> dict[str, dict[str, list[np.ndarray]]]:
    """``{"updates"|"messages": {group: [arrays]}}`` of one inner loop of ``trainer``'s protocol on
    one task of its family drawn from ``seed`` (the trainer's own generators are not touched)."""
    engine = trainer.engine
    engine.set_protocol(trainer.protocol)
    steps = trainer.exp.meta.inner_steps
    batch, init = trainer.draws.task(seed, steps)
    state = engine.network_from_arrays(init)
    hooks = _GroupValues()
    for k in range(steps):
        state, _ = engine.step(state, _inner_step(batch.x, k), _inner_step(batch.y, k), recorder=hooks)
    return {kind: dict(groups) for kind, groups in hooks.values.items()}


def _inner_step(a, k: int):
    """Inner step ``k`` of a meta-batch's [T, steps, B, n] data (or a dict of them, by block)."""
    return {name: v[:, k] for name, v in a.items()} if isinstance(a, dict) else a[:, k]


# ----------------------------------------------------------------------------------------------
# reading


class Events:
    """What :func:`read_events` found: ``scalars`` (tag -> [(step, value)]) and ``histograms``
    (tag -> [(step, HistogramProto)]), each in the order written."""

    def __init__(self):
        self.scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.histograms: dict[str, list[tuple[int, object]]] = defaultdict(list)

    def all(self) -> dict[str, list[tuple[int, object]]]:
        return {**self.scalars, **self.histograms}


def event_files(folder: str | Path) -> list[Path]:
    """The event files in ``folder``, oldest first (by the time in their names)."""
    folder = Path(folder)
    files = list(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
    return sorted(files, key=lambda p: (p.name.split(".")[3], p.stat().st_mtime_ns, p.name))


def read_events(folder: str | Path) -> Events:
    """The scalars and histograms of every event file in ``folder`` (none for a missing folder).

    A record cut short at the end of a file (a writer killed mid-record) ends that file; a record
    whose checksum is wrong is a :class:`GraphflowError` naming the file and offset.
    """
    require_tensorboardx()
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    found = Events()
    for path in event_files(folder):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            header = data[pos:pos + 8]
            (length,) = struct.unpack("<Q", header)
            end = pos + 12 + length + 4
            if end > len(data):
                break
            (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
            body = data[pos + 12:pos + 12 + length]
            (body_crc,) = struct.unpack("<I", data[end - 4:end])
            if header_crc != masked_crc32c(header) or body_crc != masked_crc32c(body):
                raise GraphflowError(f"{path}: a damaged event record at byte {pos} (checksum mismatch)")
            event = Event.FromString(body)
            for value in event.summary.value:
                if value.HasField("histo"):
                    found.histograms[value.tag].append((event.step, value.histo))
                elif value.HasField("simple_value"):
                    found.scalars[value.tag].append((event.step, value.simple_value))
                elif value.HasField("tensor") and value.tensor.float_val:
                    found.scalars[value.tag].append((event.step, value.tensor.float_val[0]))
            pos = end
    return found
