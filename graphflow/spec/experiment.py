"""Pydantic model of a meta-training experiment: graph, learner, task and regime."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from graphflow.spec.graph import GraphSpec
from graphflow.spec.learner import LearnerSpec


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SinusoidTaskSpec(_Model):
    """Sinusoid regression tasks: A ~ U(0.1, 0.5), phase ~ U(0, pi), x ~ U(-5, 5)."""

    kind: Literal["sinusoid"] = "sinusoid"


class MnistTaskSpec(_Model):
    """MNIST classification from local IDX files (12x12 bilinear, standardized)."""

    kind: Literal["mnist"] = "mnist"
    data_dir: str
    """Directory holding ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``."""


class MetaTrainingSpec(_Model):
    """The reference regime (MPLP_SPEC.md, "Meta-training")."""

    steps: int = Field(1000, gt=0)
    """Number of meta-training (outer) steps."""
    outer_batch: int = Field(4, gt=0)
    """Tasks per outer step, run as one vectorized batch axis."""
    inner_steps: int = Field(5, gt=0)
    shots: int = Field(10, gt=0)
    """Examples per inner step."""
    heldout: int = Field(10, gt=0)
    """Held-out examples per task for the final term of the meta-loss."""
    hint_weight: float = Field(0.7, ge=0)
    heldout_weight: float = Field(0.3, ge=0)
    learning_rate: float = Field(1e-4, gt=0)
    learning_rate_final: float | None = Field(None, gt=0)
    """When set, the learning rate follows a cosine from ``learning_rate`` at step 0 to this value
    at ``steps`` (constant otherwise, as in the reference regime)."""
    init_pool: int = Field(100, gt=0)
    """Size of the pool of random initial networks."""
    normalization_rounds: int = Field(6, ge=1)
    normalization_blend: float = Field(0.5, gt=0, le=1)
    maml: bool = False
    """Meta-train the initial network too (one shared set instead of the pool)."""
    train_g: bool = True
    """Train the stateless message MLPs g (the reference did not)."""
    on_nonfinite: Literal["rollback", "stop"] = "rollback"
    """When a meta-loss or gradient is NaN/inf: restore the last good state and skip the batch
    (stopping after 3 in a row), or stop at once."""


class ExperimentSpec(_Model):
    """Everything ``graphflow train`` needs to run and resume an experiment."""

    name: str = "experiment"
    graph: GraphSpec
    learner: LearnerSpec = LearnerSpec()
    task: SinusoidTaskSpec | MnistTaskSpec = Field(SinusoidTaskSpec(), discriminator="kind")
    meta: MetaTrainingSpec = MetaTrainingSpec()
    seed: int = 0
    backend: Literal["numpy", "cupy"] = "numpy"
    threads: int = Field(1, ge=1)
    """Split each outer batch into this many shards of tasks whose meta-gradients are computed in
    parallel threads (numpy releases the GIL in large array operations)."""
    eval_every: int = Field(100, gt=0)
    checkpoint_every: int = Field(100, gt=0)
    eval_tasks: int = Field(20, gt=0)
