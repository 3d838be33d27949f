"""A compact summary of a training log (``log.jsonl``): what a checkpoint's history looked like.

>>> import json, tempfile
>>> from pathlib import Path
>>> log = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> rows = [{"step": s, "meta_loss": 1.0 / s, "seconds": 0.5} for s in range(1, 5)]
>>> rows.append({"step": 4, "eval": {"metric": "l2", "mean": [0.02, 0.01]}})
>>> _ = log.write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> s = summarize_log(log, window=2)
>>> s["meta_steps"], s["meta_loss_by_window"][0]["mean"], s["evals"][0]["final"]
(4, 0.75, 0.01)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphflow.io import read_records


def summarize_log(path: str | Path, window: int = 500) -> dict:
    """Meta-steps, compute seconds, mean meta-loss per ``window`` steps, every eval and rollbacks."""
    steps, losses, seconds, evals, rollbacks = [], [], 0.0, [], 0
    for rec in read_records(path):
        if "meta_loss" in rec:
            steps.append(rec["step"])
            losses.append(rec["meta_loss"])
            seconds += rec.get("seconds", 0.0)
        elif "eval" in rec:
            ev = rec["eval"]
            evals.append({"step": rec["step"], "metric": ev["metric"], "mean": ev["mean"], "final": ev["mean"][-1]})
        elif rec.get("event") == "rollback":
            rollbacks += 1
    losses_arr = np.asarray(losses)
    windows = [{"steps": [k + 1, min(k + window, len(losses))], "mean": float(losses_arr[k:k + window].mean())}
               for k in range(0, len(losses), window)]
    return {"meta_steps": len(steps), "compute_seconds": round(seconds, 1), "meta_loss_by_window": windows,
            "evals": evals, "rollbacks": rollbacks}
