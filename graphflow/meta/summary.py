"""Reading a trainer's log (``log.jsonl``): its meta-step, eval and rollback records, and a compact
summary of them (what a checkpoint's history looked like, for the header of an exported protocol).

The one place that knows the records' fields; the pictures (:func:`graphflow.viz.run_plots.plot_meta_log`)
and ``graphflow inspect --kind meta`` read logs through :func:`read_meta_log` too. Plain files only:
nothing here runs a network.

>>> import json, tempfile
>>> from pathlib import Path
>>> log = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> rows = [{"step": s, "meta_loss": 1.0 / s, "seconds": 0.5} for s in range(1, 5)]
>>> rows.append({"step": 4, "eval": {"metric": "l2", "steps": [0, 1], "mean": [0.02, 0.01]}})
>>> _ = log.write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> s = summarize_log(log, window=2)
>>> s["meta_steps"], s["meta_loss_by_window"][0]["mean"], s["evals"][0]["final"]
(4, 0.75, 0.01)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.io.jsonl import numbered_records


def meta_log_path(path: str | Path) -> Path:
    """The ``log.jsonl`` inside a training run folder (a :class:`~graphflow.meta.trainer.Trainer`'s
    ``out``), or ``path`` itself when it is not a folder."""
    path = Path(path)
    return path / "log.jsonl" if path.is_dir() else path


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_meta_log(path: str | Path) -> dict[str, list]:
    """``{"step", "meta_loss", "seconds", "eval_step", "eval", "rollback"}`` lists from a trainer's
    ``log.jsonl`` (or from the ``log.jsonl`` of a training run folder).

    Raises :class:`~graphflow.errors.GraphflowError` naming the file (and line) when it is missing,
    not text, has a line that is not a JSON object, a meta-step, eval or rollback record without its
    fields, or no meta-step record at all. Lines of other kinds are skipped.
    """
    path = meta_log_path(path)
    out: dict[str, list] = {"step": [], "meta_loss": [], "seconds": [], "eval_step": [], "eval": [], "rollback": []}
    for n, rec in numbered_records(path):
        kind = ("meta-step" if "meta_loss" in rec else "eval" if "eval" in rec
                else "rollback" if rec.get("event") == "rollback" else None)
        if kind is None:
            continue
        if not isinstance(rec.get("step"), int) or isinstance(rec["step"], bool):
            raise GraphflowError(f"{path}:{n}: a {kind} record without a whole-number 'step'")
        if kind == "meta-step":
            if not _is_number(rec["meta_loss"]):
                raise GraphflowError(f"{path}:{n}: 'meta_loss' is {rec['meta_loss']!r}, not a number")
            if not _is_number(rec.get("seconds", 0.0)):
                raise GraphflowError(f"{path}:{n}: 'seconds' is {rec['seconds']!r}, not a number")
            out["step"].append(rec["step"])
            out["meta_loss"].append(rec["meta_loss"])
            out["seconds"].append(rec.get("seconds", 0.0))
        elif kind == "eval":
            ev = rec["eval"]
            if not (isinstance(ev, dict) and all(isinstance(ev.get(k), list) and ev[k] for k in ("steps", "mean"))
                    and all(_is_number(v) for v in ev["mean"])):
                raise GraphflowError(f"{path}:{n}: an eval record needs 'steps' and 'mean' lists (as "
                                     f"EvalCurve.to_json() writes them)")
            out["eval_step"].append(rec["step"])
            out["eval"].append(ev)
        else:
            out["rollback"].append(rec["step"])
    if not out["step"]:
        raise GraphflowError(f"{path}: no meta-step records (lines with 'meta_loss')")
    return out


def summarize_log(path: str | Path, window: int = 500) -> dict:
    """Meta-steps, compute seconds, mean meta-loss per ``window`` steps, every eval and rollbacks
    (the log's problems are :func:`read_meta_log`'s errors)."""
    log = read_meta_log(path)
    losses = np.asarray(log["meta_loss"], np.float64)
    windows = [{"steps": [k + 1, min(k + window, len(losses))], "mean": float(losses[k:k + window].mean())}
               for k in range(0, len(losses), window)]
    evals = [{"step": step, "metric": ev.get("metric"), "mean": ev["mean"], "final": ev["mean"][-1]}
             for step, ev in zip(log["eval_step"], log["eval"])]
    return {"meta_steps": len(log["step"]), "compute_seconds": round(sum(log["seconds"]), 1),
            "meta_loss_by_window": windows, "evals": evals, "rollbacks": len(log["rollback"])}
