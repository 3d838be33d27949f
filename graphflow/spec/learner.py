"""Pydantic model of a learned protocol's configuration (the learners f and g)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from graphflow.spec.types import FiniteFloat, NonNegativeInt, PositiveInt


class LearnerSpec(BaseModel):
    """How every node group's learner is built (MPLP_SPEC.md, "Learners" and "Normalization")."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kind: Literal["stateful", "stateless"] = "stateful"
    """``stateful``: one GRU-like cell per group; ``stateless``: MLPs f (update) and g (message)."""
    message_size: PositiveInt = 8
    """k, the width of backward messages."""
    hidden: NonNegativeInt = 15
    """Hidden carry channels of the stateful cell (ignored when stateless)."""
    mlp_hidden: tuple[PositiveInt, PositiveInt] = (80, 40)
    """Hidden widths of the learners' MLPs (f and g, and the stateful cell's MLPx and MLPc): exactly
    two entries, because two hidden layers are the published MPLP architecture (80 and 40, MPLP_SPEC.md
    "Learners") and the layout of its checkpoints, which graphflow reads; the widths are free, the
    depth is not."""
    gru_mlp_activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation of the cell's MLPx/MLPc (the checkpoints use tanh; the seed text says relu)."""
    aggregation: Literal["mean", "sum"] = "mean"
    """How a unit combines the messages of its consumers (seed eq. 9 uses the mean)."""
    init_std: FiniteFloat = Field(0.05, gt=0)
    """Std of the inner network's initial weights (biases start at zero)."""
    out_scale_factor: FiniteFloat = Field(0.2, gt=0)
    """Initial update scale = out_scale_factor * init_std."""


STATEFUL_ONLY_FIELDS = ("hidden", "gru_mlp_activation")
"""The :class:`LearnerSpec` fields of the stateful cell alone, which a stateless learner ignores."""
