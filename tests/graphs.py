"""Small graphs shared by several test files (imported as ``from graphs import ...``).

``tests/`` has no ``__init__.py``, so pytest (rootdir-relative, the default "prepend" import mode)
puts ``tests/`` on ``sys.path`` when it loads ``tests/conftest.py``; every test file below it can
therefore import this module by its bare name. It holds builders only, no fixtures and no tests.
"""

from __future__ import annotations

import graphflow as gf
from graphflow.graph import Graph
from graphflow.presets import PRESETS


def sinusoid() -> Graph:
    """The sinusoid preset: 1 -> 20 relu -> 20 relu -> 1, L2, learners per layer."""
    return gf.build(PRESETS["sinusoid"]())


def mnist() -> Graph:
    """The MNIST preset: 144 -> 50 sigmoid -> 10 softmax, ce, learners shared by kind."""
    return gf.build(PRESETS["mnist"]())


def skip_two_losses(activation: str | list[str] = "relu", sharing: str = "layer") -> Graph:
    """x(3) -> h(4) -> ``activation`` -> out(2) (masked) with a skip x -> out (edges); softmax + ce on
    out, l2 on the activation.

    ``activation`` is one function for all four nodes or a list of four (a mixed activation).
    """
    net = gf.FreeForm(sharing=sharing)
    x = net.input(3)
    h = net.neurons(4)
    net.connect(x, h)
    a = net.activation(h, activation)
    o = net.neurons(2)
    net.connect(a, o, mask=[[1, 0], [0, 1], [1, 1], [1, 0]])
    net.connect(x[0], o[1])
    net.connect(x[2], o[0])
    net.loss(net.softmax(o), "ce")
    net.loss(a, "l2")
    return gf.build(net)
