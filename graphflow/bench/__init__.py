"""Benchmarks of graphflow against a dense numpy baseline, the per-node interpreter and the reference
implementation, all measured in the same run (``graphflow bench``, ``benchmarks/run.py``,
docs/performance.md).

- :mod:`graphflow.bench.workloads`: what each case runs (graphs, protocol sizes, data) and which case
  of the reference's timing script it is compared with;
- :mod:`graphflow.bench.dense_baseline`: the hand-written dense MPLP inner step;
- :mod:`graphflow.bench.machine`: machine description, BLAS threads, matmul and bandwidth limits;
- :mod:`graphflow.bench.reference`: the reference's timing script in a subprocess, its rounds
  alternating with graphflow's;
- :mod:`graphflow.bench.runner`: runs the cases; :mod:`graphflow.bench.report`: table and JSON;
- :mod:`graphflow.bench.scaling`: linear fit and plot of the inner-step scaling sweep.

It only reads graphflow (engine, meta, reference): nothing in graphflow depends on it.
"""

from graphflow.bench.reference import ReferenceScript
from graphflow.bench.report import format_table, to_json, write_json
from graphflow.bench.runner import CASE_GROUPS, run_benchmarks

__all__ = ["CASE_GROUPS", "ReferenceScript", "format_table", "run_benchmarks", "to_json", "write_json"]
