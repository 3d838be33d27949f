"""Oracles: slow, literal implementations of MPLP_SPEC.md that faster paths are tested against.

- :class:`Interpreter` — the per-node reference interpreter (one scalar node at a time, float64);
- :mod:`graphflow.reference.random_graphs` — random stacks, free-form graphs, protocols and data
  for equivalence tests.

Nothing here is used by the engine; everything here may be slow.
"""

from graphflow.reference.interpreter import Interpreter

__all__ = ["Interpreter"]
