"""Named graph specs of the published MPLP runs, and the lookup the CLI uses for ``SPEC|PRESET``.

A preset is a function returning a fresh :class:`~graphflow.spec.StackSpec`; the layer names
follow from the positions (``dense0``, ``relu1``, ...), so node ids are the same in every tool.

>>> sorted(PRESETS)
['maml-sinusoid', 'mnist', 'mnist-784', 'sinusoid']
>>> [layer.kind for layer in PRESETS["mnist"]().layers]
['dense', 'activation', 'dense', 'softmax', 'loss']
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from graphflow.dsl.layers import CrossEntropy, Dense, L2Loss, ReLU, Sigmoid, Softmax, stack
from graphflow.errors import SpecError
from graphflow.spec import ExperimentSpec, FreeFormSpec, StackSpec, load_spec


def sinusoid() -> StackSpec:
    """1 -> 20 relu -> 20 relu -> 1 with an L2 loss, learners per layer (the sinusoid run).

    >>> import graphflow as gf
    >>> list(gf.build(sinusoid()).units)
    ['input', 'target', 'dense0', 'relu1', 'dense2', 'relu3', 'dense4', 'loss5']
    """
    return stack(1, Dense(20), ReLU(), Dense(20), ReLU(), Dense(1), L2Loss())


def maml_sinusoid() -> StackSpec:
    """The MAML sinusoid run's graph: the same network as :func:`sinusoid`."""
    return sinusoid()


def mnist() -> StackSpec:
    """144 -> 50 sigmoid -> 10 softmax with cross-entropy (the MNIST run).

    As in the published checkpoint, all weight nodes share one learner and all bias nodes
    another, with normalization per layer (``sharing="kind"``).

    >>> import graphflow as gf
    >>> gf.build(mnist()).groups["W"]
    ['dense0/w', 'dense2/w']
    """
    return stack(144, Dense(50), Sigmoid(), Dense(10), Softmax(), CrossEntropy(), sharing="kind")


def mnist_784() -> StackSpec:
    """784 -> 100 sigmoid -> 10 softmax with cross-entropy, on full-size MNIST images."""
    return stack(784, Dense(100), Sigmoid(), Dense(10), Softmax(), CrossEntropy(), sharing="kind")


PRESETS: dict[str, Callable[[], StackSpec]] = {
    "sinusoid": sinusoid,
    "maml-sinusoid": maml_sinusoid,
    "mnist": mnist,
    "mnist-784": mnist_784,
}
"""Preset name -> function returning its graph spec."""


def graph_spec_for(name_or_path: str | Path) -> StackSpec | FreeFormSpec:
    """The graph spec named by a preset name or stored in a JSON spec file.

    A file may hold a graph spec or an experiment spec (whose ``graph`` is returned).

    Parameters
    ----------
    name_or_path
        A key of :data:`PRESETS`, or the path of a ``.json`` spec file.

    Raises
    ------
    SpecError
        For an unknown name (listing the presets), a missing file or an invalid spec.

    >>> graph_spec_for("mnist").inputs
    144
    >>> graph_spec_for("mnsit")
    Traceback (most recent call last):
    ...
    graphflow.errors.SpecError: 'mnsit' is neither a preset nor a spec file; presets: maml-sinusoid, mnist, mnist-784, sinusoid
    """
    text = str(name_or_path)
    if text in PRESETS:
        return PRESETS[text]()
    path = Path(text)
    if not path.is_file() and path.suffix.lower() != ".json":
        raise SpecError(f"{text!r} is neither a preset nor a spec file; presets: {', '.join(sorted(PRESETS))}")
    spec = load_spec(path)
    return spec.graph if isinstance(spec, ExperimentSpec) else spec
