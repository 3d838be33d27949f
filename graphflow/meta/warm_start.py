"""Meta-training that starts from an existing protocol (``meta.start_from``).

The source is anything :func:`graphflow.meta.protocol_file.protocol_path` names (a protocol file,
a training checkpoint, a run folder, a bundled protocol) or a published MPLP checkpoint (a flat
``.npy``, read with the reference preset whose layout it fits; a maml-sinusoid one with the prior
published beside it, which a ``meta.maml`` experiment starts from). Either way the protocol is checked
against the experiment: the same learner spec, and the arrays the experiment's graph needs (names
and shapes), so a protocol of another sharing configuration or message size is refused with the
field or array named.
"""

from __future__ import annotations

import numpy as np

from graphflow.errors import GraphflowError
from graphflow.learners.protocol import Protocol
from graphflow.meta.protocol_file import load_protocol, protocol_path
from graphflow.spec import LearnerSpec
from graphflow.spec.learner import STATEFUL_ONLY_FIELDS


def starting_protocol(source: str, graph, learner: LearnerSpec) -> tuple[Protocol, dict[str, np.ndarray] | None]:
    """(protocol, initial network or None) to start meta-training ``graph`` with ``learner`` from."""
    where = f"meta.start_from {source}"
    path = protocol_path(source)
    if not path.exists():
        raise GraphflowError(f"{where}: no such protocol file, checkpoint, run folder or bundled protocol")
    if path.suffix == ".npy":  # a published checkpoint: read with the reference preset it fits
        from graphflow.interop.mplp import identify_checkpoint, load_published_prior

        preset, published_graph, protocol = identify_checkpoint(path)
        init = load_published_prior(published_graph, path) if preset == "maml-sinusoid" else None
        whose = f"a published {preset} checkpoint, whose learner"
    else:
        _, protocol, init, _ = load_protocol(path)
        whose = "its learner"
    differ = _learner_differences(protocol.spec, learner)
    if differ:
        raise GraphflowError(f"{where}: {whose} is not the experiment's ({'; '.join(differ)})")
    return Protocol.checked(graph, learner, protocol.flat(), where, protocol.meta), init


INITIALIZATION_ONLY = ("init_std",)
"""Learner fields that only shape a fresh protocol's initialization: a start may differ in them."""


def _learner_differences(have: LearnerSpec, want: LearnerSpec) -> list[str]:
    """The learner fields in which ``have`` and ``want`` differ, as text: all but
    :data:`INITIALIZATION_ONLY`, and between stateless learners but the stateful cell's fields
    (:data:`graphflow.spec.learner.STATEFUL_ONLY_FIELDS`), which they ignore."""
    a, b = have.model_dump(mode="json"), want.model_dump(mode="json")
    ignored = INITIALIZATION_ONLY + (STATEFUL_ONLY_FIELDS if a["kind"] == b["kind"] == "stateless" else ())
    return [f"learner.{k}: {a.get(k)!r} in the protocol, {b.get(k)!r} in the experiment"
            for k in sorted(set(a) | set(b)) if k not in ignored and a.get(k) != b.get(k)]
