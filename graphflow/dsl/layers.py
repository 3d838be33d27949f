"""Keras-like layer constructors and :func:`stack`.

A layer (``dense``, ``activation``, ``softmax``, ``loss``) becomes one or two blocks when built: a
dense layer ``dense0`` is a weights block and a neurons block, both named ``dense0``. This module
writes specs only: it never imports the graph.

>>> import graphflow as gf
>>> spec = gf.stack(144, gf.Dense(50), gf.Sigmoid(), gf.Dense(10), gf.Softmax(), gf.CrossEntropy())
>>> [layer.kind for layer in spec.layers]
['dense', 'activation', 'dense', 'softmax', 'loss']
"""

from __future__ import annotations

from pydantic import ValidationError

from graphflow.errors import SpecError
from graphflow.spec import format_validation_error
from graphflow.spec.graph import ActivationLayer, DenseLayer, LossLayer, SoftmaxLayer, StackSpec


def Dense(units: int, name: str | None = None) -> DenseLayer:
    """A dense layer of ``units`` neurons (weights, sums and biases)."""
    return DenseLayer(units=units, name=name)


def Activation(fn: str | list[str], name: str | None = None) -> ActivationLayer:
    """An activation layer; ``fn`` is one function or one per unit (``["relu", "tanh", ...]``)."""
    return ActivationLayer(fn=fn, name=name)


def ReLU(name: str | None = None) -> ActivationLayer:
    """An activation layer applying ``relu`` to every unit."""
    return Activation("relu", name)


def Sigmoid(name: str | None = None) -> ActivationLayer:
    """An activation layer applying ``sigmoid`` to every unit."""
    return Activation("sigmoid", name)


def Tanh(name: str | None = None) -> ActivationLayer:
    """An activation layer applying ``tanh`` to every unit."""
    return Activation("tanh", name)


def Step(name: str | None = None) -> ActivationLayer:
    """An activation layer applying ``step`` to every unit."""
    return Activation("step", name)


def Identity(name: str | None = None) -> ActivationLayer:
    """An activation layer applying ``identity`` to every unit."""
    return Activation("identity", name)


def Softmax(name: str | None = None) -> SoftmaxLayer:
    """A softmax layer over the units of the dense layer before it."""
    return SoftmaxLayer(name=name)


def Loss(fn: str, name: str | None = None) -> LossLayer:
    """A loss layer: ``l2``, ``l1`` or ``ce``."""
    return LossLayer(fn=fn, name=name)


def L2Loss(name: str | None = None) -> LossLayer:
    """A loss layer, ``l2``: (target - out)² / 2 per unit."""
    return Loss("l2", name)


def L1Loss(name: str | None = None) -> LossLayer:
    """A loss layer, ``l1``: |target - out| per unit."""
    return Loss("l1", name)


def CrossEntropy(name: str | None = None) -> LossLayer:
    """A loss layer, ``ce``: -target · log out per unit."""
    return Loss("ce", name)


def stack(inputs: int, *layers, sharing: str = "layer", groups: dict[str, str] | None = None) -> StackSpec:
    """A layer stack spec: ``stack(1, Dense(20), ReLU(), Dense(1), L2Loss())``.

    Raises :class:`~graphflow.errors.SpecError` naming the field at fault.

    >>> stack(1, Dense(20), ReLU(), Dense(1), L2Loss()).inputs
    1
    """
    data = {"inputs": inputs, "layers": list(layers), "sharing": sharing, "groups": groups or {}}
    try:
        return StackSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, "layer stack", data)) from None


def quick_stack(layers: list[int], activation: str = "relu", loss: str = "l2") -> StackSpec:
    """A stack from sizes: ``quick_stack([784, 1000, 10], "relu", "ce")`` (softmax before a ce loss).

    >>> [l.kind for l in quick_stack([4, 3, 2], "relu", "ce").layers]
    ['dense', 'activation', 'dense', 'softmax', 'loss']
    """
    if len(layers) < 2:
        raise SpecError(f"layers {list(layers)}: give the input size and at least one layer size, e.g. 784,100,10")
    body: list[dict] = []
    for k, units in enumerate(layers[1:]):
        body.append({"kind": "dense", "units": units})
        if k < len(layers) - 2:
            body.append({"kind": "activation", "fn": activation})
    if loss == "ce":
        body.append({"kind": "softmax"})
    body.append({"kind": "loss", "fn": loss})
    return stack(layers[0], *body)
