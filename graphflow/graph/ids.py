"""Stable, readable node ids and glob patterns over them.

An id is ``<block>/<label>[<index>]``: ``dense2/w[3,7]`` (weight from input 3 to neuron 7 of the
block ``dense2``), ``dense2/b[7]``, ``dense2/sum[7]``, ``relu1/act[5]``, ``softmax3/unit[2]``,
``loss4/loss[0]``, ``input/x[0]``, ``target/y[0]``. Patterns glob each part:
``dense2/w[*,7]``, ``relu1/act[*]``, ``loss4/*``, ``dense*/b[0:3]`` (a ``a:b`` range).

>>> parse_pattern("dense2/w[*,7]")
('dense2', 'w', ('*', '7'))
>>> match_index("3:5", np.arange(8)).nonzero()[0].tolist()
[3, 4]
"""

from __future__ import annotations

import fnmatch
import re

import numpy as np

from graphflow.errors import GraphError

_PATTERN = re.compile(r"^(?P<block>[^/\[\]]+)/(?P<label>[^/\[\]]+)(?:\[(?P<index>[^\]]*)\])?$")


def format_id(block: str, label: str, *index: int) -> str:
    """The id of one node: ``format_id("dense2", "w", 3, 7) == "dense2/w[3,7]"``."""
    return f"{block}/{label}[{','.join(str(int(i)) for i in index)}]"


def parse_pattern(pattern: str) -> tuple[str, str, tuple[str, ...] | None]:
    """Split a node id or pattern into (block glob, label glob, index globs or None)."""
    m = _PATTERN.match(pattern.strip())
    if not m:
        raise GraphError(
            f"{pattern!r} is not a node id or pattern; expected <block>/<label>[<index>], "
            "e.g. 'dense2/w[3,7]', 'relu1/act[*]' or 'loss4/*'"
        )
    index = m.group("index")
    return m.group("block"), m.group("label"), None if index is None else tuple(p.strip() for p in index.split(","))


def match_index(part: str, values: np.ndarray) -> np.ndarray:
    """Boolean mask of the integer ``values`` that one index glob selects."""
    if part in ("*", ""):
        return np.ones(values.shape, dtype=bool)
    if part.isdigit():
        return values == int(part)
    if re.fullmatch(r"\d*:\d*", part):
        lo, hi = part.split(":")
        mask = np.ones(values.shape, dtype=bool)
        if lo:
            mask &= values >= int(lo)
        if hi:
            mask &= values < int(hi)
        return mask
    uniq = np.unique(values)
    keep = np.array([fnmatch.fnmatchcase(str(v), part) for v in uniq], dtype=bool)
    return np.isin(values, uniq[keep])


def split_patterns(text: str) -> list[str]:
    """Split a comma-separated list of ids/patterns, keeping commas inside brackets.

    >>> split_patterns("dense4/w[3,0],relu3/act[*]")
    ['dense4/w[3,0]', 'relu3/act[*]']
    """
    out, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(text[start:k])
            start = k + 1
    out.append(text[start:])
    return [p.strip() for p in out if p.strip()]
