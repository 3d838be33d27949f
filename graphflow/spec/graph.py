"""Pydantic models of graph specs: layer stacks and free-form block graphs.

A spec is plain data (JSON in, JSON out). It knows nothing of numpy or of the built graph;
:func:`graphflow.graph.build` turns it into one and does the structural validation that needs
the whole picture (cycles, dangling nodes, fan-in, learner groups).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

ActivationName = Literal["relu", "sigmoid", "tanh", "step", "identity"]
LossName = Literal["l2", "l1", "ce"]
Sharing = Literal["layer", "kind", "kind+norm"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# ----------------------------------------------------------------------------------------------
# Layer stacks


class DenseLayer(_Model):
    """A fully connected layer: N*M weight nodes, M neuron sums and M bias nodes."""

    kind: Literal["dense"] = "dense"
    units: int = Field(gt=0)
    """Number of output neurons M."""
    name: str | None = None
    """Layer name; defaults to ``dense<position>``."""


class ActivationLayer(_Model):
    """One activation node per unit; ``fn`` may list one function per unit (mixed layer)."""

    kind: Literal["activation"] = "activation"
    fn: ActivationName | list[ActivationName]
    """Activation function, or one per unit."""
    name: str | None = None
    """Layer name; defaults to ``<fn><position>`` (``mixed<position>`` for a list)."""


class SoftmaxLayer(_Model):
    """One softmax node per unit, each keeping the shared denominator."""

    kind: Literal["softmax"] = "softmax"
    name: str | None = None
    """Layer name; defaults to ``softmax<position>``."""


class LossLayer(_Model):
    """One loss node per output unit, each fed by a target node of the same index."""

    kind: Literal["loss"] = "loss"
    fn: LossName
    """Loss function: ``l2`` (d^2/2), ``l1`` (|d|) or ``ce`` (cross-entropy)."""
    name: str | None = None
    """Layer name; defaults to ``loss<position>``."""


Layer = Annotated[Union[DenseLayer, ActivationLayer, SoftmaxLayer, LossLayer], Field(discriminator="kind")]


class StackSpec(_Model):
    """A layer stack: inputs, then dense / activation / softmax layers, ending in one loss."""

    kind: Literal["stack"] = "stack"
    inputs: int = Field(gt=0)
    """Number of input units."""
    layers: list[Layer] = Field(min_length=1)
    """Layers in forward order; positions count from 0 and name the layers."""
    sharing: Sharing = "layer"
    """Learner sharing: per layer, one per node kind (normalization per layer), or one per kind
    with shared normalization too."""
    groups: dict[str, str] = Field(default_factory=dict)
    """User-assigned learner groups: ``{"dense0/w": "mygroup", ...}`` (keys are learner slots,
    see :meth:`graphflow.graph.Graph.slots`)."""


# ----------------------------------------------------------------------------------------------
# Free-form graphs


class InputBlock(_Model):
    """Input units."""

    kind: Literal["input"] = "input"
    name: str
    size: int = Field(gt=0)


class TargetBlock(_Model):
    """Target units, read by loss nodes."""

    kind: Literal["target"] = "target"
    name: str
    size: int = Field(gt=0)


class NeuronBlock(_Model):
    """Neuron sums, each with one bias node: z_j = sum_i w_ij x_i + b_j."""

    kind: Literal["neurons"] = "neurons"
    name: str
    size: int = Field(gt=0)
    bias_edges: list[tuple[int, int]] | None = None
    """Explicit (bias, neuron) pairs; default: bias j feeds neuron j. Each bias feeds exactly one
    neuron and each neuron has exactly one bias."""


class WeightBlock(_Model):
    """Weight nodes from the units of ``src`` to the neuron sums of ``dst``.

    Connectivity is dense unless ``mask`` ([n_src][n_dst] of 0/1) or ``edges`` ((i, j) pairs)
    is given.
    """

    kind: Literal["weights"] = "weights"
    name: str
    src: str
    """Block whose units feed these weights (input, neurons, activation or softmax)."""
    dst: str
    """Neuron block the weights sum into."""
    mask: list[list[int]] | None = None
    edges: list[tuple[int, int]] | None = None
    fan_in: int | None = None
    """Optional declared number of source units; must match ``src``'s size."""


class ActivationBlock(_Model):
    """Activation units, one per unit of ``src``; ``fn`` may list one function per unit."""

    kind: Literal["activation"] = "activation"
    name: str
    src: str
    fn: ActivationName | list[ActivationName]


class SoftmaxBlock(_Model):
    """Softmax units over all units of ``src``."""

    kind: Literal["softmax"] = "softmax"
    name: str
    src: str


class LossBlock(_Model):
    """Loss nodes comparing ``src`` with ``target`` unit by unit."""

    kind: Literal["loss"] = "loss"
    name: str
    src: str
    fn: LossName
    target: str | None = None
    """Target block of the same size as ``src`` (required)."""


Block = Annotated[
    Union[InputBlock, TargetBlock, NeuronBlock, WeightBlock, ActivationBlock, SoftmaxBlock, LossBlock],
    Field(discriminator="kind"),
]


class FreeFormSpec(_Model):
    """A graph of blocks joined by explicit connections: skips, masks, mixed activations, several losses."""

    kind: Literal["freeform"] = "freeform"
    blocks: list[Block] = Field(min_length=1)
    sharing: Sharing = "layer"
    groups: dict[str, str] = Field(default_factory=dict)
    """User-assigned learner groups, keyed by learner slot (see ``Graph.slots``)."""

    @field_validator("blocks")
    @classmethod
    def _names_present(cls, blocks):
        for b in blocks:
            if not b.name or "/" in b.name or "[" in b.name:
                raise ValueError(f"block name {b.name!r} must be non-empty without '/' or '['")
        return blocks


GraphSpec = Annotated[Union[StackSpec, FreeFormSpec], Field(discriminator="kind")]
