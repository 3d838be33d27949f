"""A/B timing of two revisions of graphflow: inner steps and meta-gradients of the sinusoid and
MNIST presets, the revisions alternating in fresh processes (one core each), medians over rounds.

Run it with::

    .venv/bin/python benchmarks/ab_revisions.py BEFORE AFTER [--rounds 3]

``BEFORE`` and ``AFTER`` are git revisions (``AFTER`` may be ``WORKTREE``, the files as they are).
Each is checked out into a temporary git worktree and imported from there; asserts nothing
(timings depend on the machine). It prints one JSON line per revision and round, then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKLOAD = r'''
import json, time
import numpy as np
import graphflow as gf
from graphflow.engine import Engine
from graphflow.graph import build
from graphflow.learners import Protocol
from graphflow.meta.metaloss import MetaBatch, MetaGradient
from graphflow.presets import PRESETS

out = {}
for name, tasks, batch, hidden, k, steps in (("sinusoid", 4, 10, 15, 8, 5), ("mnist", 1, 8, 7, 4, 4)):
    g = build(PRESETS[name]())
    p = Protocol.init(g, gf.LearnerSpec(hidden=hidden, message_size=k), seed=0)
    eng = Engine(g, p, threads=1)
    rng = np.random.default_rng(0)
    st = eng.init_network(rng, tasks)
    n_in, n_out = g.inputs[0].size, g.targets[0].size
    x = rng.standard_normal((tasks, batch, n_in)).astype(np.float32)
    y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, (tasks, batch))] if n_out > 1 else x[..., :1]
    eng.step(st, x, y)
    times = []
    for _ in range(15):
        t = time.perf_counter(); eng.step(st, x, y); times.append(time.perf_counter() - t)
    out[f"{name}-inner"] = float(np.median(times))
    mg = MetaGradient(g, p, threads=1)
    batch_ = MetaBatch(np.repeat(x[:, None], steps, 1), np.repeat(y[:, None], steps, 1), x, y)
    init = {key: np.asarray(v) for key, v in st.params.items()}
    mg(p, batch_, init)
    times = []
    for _ in range(3):
        t = time.perf_counter(); mg(p, batch_, init); times.append(time.perf_counter() - t)
    out[f"{name}-meta{steps}"] = float(np.median(times))
print(json.dumps(out))
'''


def checkout(revision: str, folder: Path) -> Path:
    if revision == "WORKTREE":
        return REPO
    path = folder / revision.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path), revision], check=True,
                   capture_output=True)
    return path


def measure(source: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(source), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"before": checkout(args.before, Path(tmp)), "after": checkout(args.after, Path(tmp))}
        try:
            results: dict[str, list[dict]] = {"before": [], "after": []}
            for round_ in range(args.rounds):
                for side, source in sources.items():
                    results[side].append(measure(source))
                    print(json.dumps({"round": round_, "side": side, **results[side][-1]}), flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)
            for side, source in sources.items():
                if source != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(source)],
                                   capture_output=True)
    print(f"{'case':<16} {'before':>10} {'after':>10}   (median seconds over {args.rounds} rounds)")
    for case in results["before"][0]:
        med = {side: statistics.median(r[case] for r in results[side]) for side in results}
        print(f"{case:<16} {med['before']:>10.4f} {med['after']:>10.4f}")


if __name__ == "__main__":
    main()
