"""Benchmarks of graphflow against a dense numpy baseline, the per-node interpreter and the stored
figures of the reference implementation (``graphflow bench``, ``benchmarks/run.py``,
docs/performance.md).

- :mod:`graphflow.bench.workloads`: what each case runs (graphs, protocol sizes, data, the
  reference implementation's stored timings);
- :mod:`graphflow.bench.dense_baseline`: the hand-written dense MPLP inner step;
- :mod:`graphflow.bench.machine`: machine description, BLAS threads, matmul and bandwidth limits;
- :mod:`graphflow.bench.runner`: runs the cases; :mod:`graphflow.bench.report`: table and JSON;
- :mod:`graphflow.bench.scaling`: linear fit and plot of the inner-step scaling sweep.

It only reads graphflow (engine, meta, reference): nothing in graphflow depends on it.
"""

from graphflow.bench.report import format_table, to_json, write_json
from graphflow.bench.runner import CASE_GROUPS, run_benchmarks
from graphflow.bench.workloads import REFERENCE_LABEL, REFERENCE_SECONDS

__all__ = ["CASE_GROUPS", "REFERENCE_LABEL", "REFERENCE_SECONDS", "format_table", "run_benchmarks", "to_json", "write_json"]
