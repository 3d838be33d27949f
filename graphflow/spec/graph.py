"""Pydantic models of graph specs: layer stacks and free-form block graphs.

A spec is plain data (JSON in, JSON out). It knows nothing of numpy or of the built graph;
:func:`graphflow.graph.build` turns it into one and does the structural validation that needs
the whole picture (cycles, dangling nodes, fan-in, learner groups).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graphflow.spec.types import PositiveInt, StrictInt, Text

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
    units: PositiveInt
    """Number of output neurons M."""
    name: Text | None = None
    """Layer name; defaults to ``dense<position>``."""


class ActivationLayer(_Model):
    """One activation node per unit; ``fn`` may list one function per unit (mixed layer)."""

    kind: Literal["activation"] = "activation"
    fn: ActivationName | list[ActivationName]
    """Activation function, or one per unit."""
    name: Text | None = None
    """Layer name; defaults to ``<fn><position>`` (``mixed<position>`` for a list)."""


class SoftmaxLayer(_Model):
    """One softmax node per unit, each keeping the shared denominator."""

    kind: Literal["softmax"] = "softmax"
    name: Text | None = None
    """Layer name; defaults to ``softmax<position>``."""


class LossLayer(_Model):
    """One loss node per output unit, each fed by a target node of the same index."""

    kind: Literal["loss"] = "loss"
    fn: LossName
    """Loss function: ``l2`` (d^2/2), ``l1`` (|d|) or ``ce`` (cross-entropy)."""
    name: Text | None = None
    """Layer name; defaults to ``loss<position>``."""


Layer = Annotated[Union[DenseLayer, ActivationLayer, SoftmaxLayer, LossLayer], Field(discriminator="kind")]


class StackSpec(_Model):
    """A layer stack: inputs, then dense / activation / softmax layers, ending in one loss."""

    kind: Literal["stack"] = "stack"
    inputs: PositiveInt
    """Number of input units."""
    layers: list[Layer] = Field(min_length=1)
    """Layers in forward order; positions count from 0 and name the layers."""
    sharing: Sharing = "layer"
    """Learner sharing: per layer, one per node kind (normalization per layer), or one per kind
    with shared normalization too."""
    groups: dict[Text, Text] = Field(default_factory=dict)
    """User-assigned learner groups: ``{"dense0/w": "mygroup", ...}`` (keys are learner slots,
    see :meth:`graphflow.graph.Graph.slots`)."""

    @field_validator("layers")
    @classmethod
    def _names_usable(cls, layers):
        for p, layer in enumerate(layers):
            _check_name(layer.name, f"layer {p}", optional=True)
        return layers


# ----------------------------------------------------------------------------------------------
# Free-form graphs


class InputBlock(_Model):
    """Input units."""

    kind: Literal["input"] = "input"
    name: Text
    """Block name; node ids are ``<name>/x[i]``."""
    size: PositiveInt
    """Number of input units."""


class TargetBlock(_Model):
    """Target units, read by loss nodes."""

    kind: Literal["target"] = "target"
    name: Text
    """Block name; node ids are ``<name>/y[i]``."""
    size: PositiveInt
    """Number of target units."""


class NeuronBlock(_Model):
    """Neuron sums, each with one bias node: z_j = sum_i w_ij x_i + b_j."""

    kind: Literal["neurons"] = "neurons"
    name: Text
    """Block name; node ids are ``<name>/sum[j]`` and ``<name>/b[j]``."""
    size: PositiveInt
    """Number of neurons (and of bias nodes)."""
    bias_edges: list[tuple[StrictInt, StrictInt]] | None = None
    """Explicit (bias, neuron) pairs; default: bias j feeds neuron j. Each bias feeds exactly one
    neuron and each neuron has exactly one bias."""


class WeightBlock(_Model):
    """Weight nodes from the units of ``src`` to the neuron sums of ``dst``.

    Connectivity is dense unless ``mask`` ([n_src][n_dst] of 0/1) or ``edges`` ((i, j) pairs)
    is given.
    """

    kind: Literal["weights"] = "weights"
    name: Text
    """Block name (may equal ``dst``); node ids are ``<name>/w[i,j]``."""
    src: Text
    """Block whose units feed these weights (input, neurons, activation or softmax)."""
    dst: Text
    """Neuron block the weights sum into."""
    mask: list[list[StrictInt]] | None = None
    """0/1 connectivity, ``mask[i][j] == 1`` for a weight from unit i of ``src`` to neuron j."""
    edges: list[tuple[StrictInt, StrictInt]] | None = None
    """Explicit (i, j) pairs, one weight node each."""
    fan_in: PositiveInt | None = None
    """Optional declared number of source units; must match ``src``'s size."""


class ActivationBlock(_Model):
    """Activation units, one per unit of ``src``; ``fn`` may list one function per unit."""

    kind: Literal["activation"] = "activation"
    name: Text
    """Block name; node ids are ``<name>/act[j]``."""
    src: Text
    """Neuron block whose sums (after their biases) these units read."""
    fn: ActivationName | list[ActivationName]
    """Activation function, or one per unit."""


class SoftmaxBlock(_Model):
    """Softmax units over all units of ``src``."""

    kind: Literal["softmax"] = "softmax"
    name: Text
    """Block name; node ids are ``<name>/unit[j]``."""
    src: Text
    """Neuron block the softmax normalizes."""


class LossBlock(_Model):
    """Loss nodes comparing ``src`` with ``target`` unit by unit."""

    kind: Literal["loss"] = "loss"
    name: Text
    """Block name; node ids are ``<name>/loss[j]``."""
    src: Text
    """Block whose units are compared with the targets (neurons, activation or softmax)."""
    fn: LossName
    """Loss function: ``l2``, ``l1`` or ``ce``."""
    target: Text | None = None
    """Target block of the same size as ``src`` (required)."""


Block = Annotated[
    Union[InputBlock, TargetBlock, NeuronBlock, WeightBlock, ActivationBlock, SoftmaxBlock, LossBlock],
    Field(discriminator="kind"),
]


class FreeFormSpec(_Model):
    """A graph of blocks joined by explicit connections: skips, masks, mixed activations, several losses."""

    kind: Literal["freeform"] = "freeform"
    blocks: list[Block] = Field(min_length=1)
    """Blocks in any order; names are unique (a weights block may share its ``dst``'s name)."""
    sharing: Sharing = "layer"
    """Learner sharing: per block part, one per node kind (normalization per part), or one per
    kind with shared normalization too."""
    groups: dict[Text, Text] = Field(default_factory=dict)
    """User-assigned learner groups, keyed by learner slot (see ``Graph.slots``)."""

    @field_validator("blocks")
    @classmethod
    def _names_present(cls, blocks):
        for p, b in enumerate(blocks):
            _check_name(b.name, f"block {p}")
        return blocks


def _check_name(name: str | None, where: str, optional: bool = False) -> None:
    """Names become the first part of node ids (``<name>/<label>[i]``), so they cannot hold ``/[]``."""
    if name is None and optional:
        return
    if not name or any(c in name for c in "/[]*?,") or name != name.strip():
        raise ValueError(f"{where}: name {name!r} must be non-empty, without spaces around it and without / [ ] * ? ,")


GraphSpec = Annotated[Union[StackSpec, FreeFormSpec], Field(discriminator="kind")]
