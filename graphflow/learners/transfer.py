"""A protocol moved onto another graph: the generalization probes of meta-test time (another
activation, other layer sizes, other inputs), where the learners stay and the network changes.

A learner (or normalization) group of the target graph takes the source group of the same name;
failing that, the source group of the block at the same position in the stack with the same part
(``step1/act`` takes ``sigmoid1/act``: the block index and the part after the slash). Learner
parameters do not depend on layer sizes (every node is a scalar), so a protocol trained on
144-50-10 runs 784-100-10 as is; a target group no source group fits is an error naming it.

>>> import graphflow as gf
>>> from graphflow.learners import Protocol
>>> small = gf.build(gf.stack(2, gf.Dense(3), gf.Sigmoid(), gf.Dense(1), gf.L2Loss()))
>>> protocol = Protocol.init(small, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=(4, 4)))
>>> big = gf.build(gf.stack(5, gf.Dense(7), gf.Step(), gf.Dense(1), gf.L2Loss()))
>>> moved = transfer_protocol(protocol, small, big)
>>> sorted(moved.learners) == sorted(big.groups)
True
>>> bool((moved.learners["step1/act"]["gru.next_x_net.dense0.kernel"]
...       == protocol.learners["sigmoid1/act"]["gru.next_x_net.dense0.kernel"]).all())
True
"""

from __future__ import annotations

import re

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.learners.protocol import Protocol

_POSITION = re.compile(r"^[A-Za-z_]+?(\d+)/(.+)$")


def _position(group: str) -> tuple[str, str] | None:
    """``("1", "act")`` for ``sigmoid1/act``; None for a group not named after one block."""
    match = _POSITION.match(group)
    return (match.group(1), match.group(2)) if match else None


def group_map(source_groups, target_groups, what: str = "learner") -> dict[str, str]:
    """Target group -> the source group it takes (same name, else same block position and part).

    >>> group_map(["W", "sigmoid1/act"], ["W", "step1/act"])
    {'W': 'W', 'step1/act': 'sigmoid1/act'}
    >>> group_map(["W"], ["W", "relu1/act"])
    Traceback (most recent call last):
    ...
    graphflow.errors.GraphflowError: learner group relu1/act: the protocol has no group of that name or at that position (it has: W)
    """
    source_groups = list(source_groups)
    by_position: dict[tuple[str, str], list[str]] = {}
    for group in source_groups:
        position = _position(group)
        if position is not None:
            by_position.setdefault(position, []).append(group)
    out = {}
    for group in target_groups:
        if group in source_groups:
            out[group] = group
            continue
        candidates = by_position.get(_position(group) or ("", ""), [])
        if len(candidates) != 1:
            reason = "no group of that name or at that position" if not candidates else \
                f"{len(candidates)} groups at that position ({', '.join(candidates)})"
            raise GraphflowError(f"{what} group {group}: the protocol has {reason} (it has: {', '.join(source_groups)})")
        out[group] = candidates[0]
    return out


def transfer_protocol(protocol: Protocol, source_graph, target_graph) -> Protocol:
    """``protocol`` (of ``source_graph``) for ``target_graph``: every group's learner and
    normalization parameters copied from the source group :func:`group_map` names; shapes are
    checked against what ``target_graph`` needs (a mismatch names the array)."""
    expected = Protocol.init(target_graph, protocol.spec)
    learners_from = group_map(protocol.learners, expected.learners, "learner")
    norms_from = group_map(protocol.norms, expected.norms, "normalization")
    learners = {g: {n: a.copy() for n, a in protocol.learners[src].items()} for g, src in learners_from.items()}
    norms = {g: {n: a.copy() for n, a in protocol.norms[src].items()} for g, src in norms_from.items()}
    moved = Protocol(protocol.spec, learners, norms, dict(protocol.meta))
    want = expected.flat()
    for key, a in moved.flat().items():
        if key not in want or np.shape(a) != want[key].shape:
            raise GraphflowError(f"protocol array {key}: shape {list(np.shape(a))} does not fit the target graph "
                                 f"(needs {list(want[key].shape) if key in want else 'no such array'})")
    missing = sorted(set(want) - set(moved.flat()))
    if missing:
        raise GraphflowError(f"protocol array {missing[0]}: the target graph needs it and the protocol lacks it")
    return moved


__all__ = ["group_map", "transfer_protocol"]
