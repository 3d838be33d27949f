"""Pydantic model of a meta-training experiment: graph, learner, task and regime."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graphflow.spec.graph import GraphSpec
from graphflow.spec.learner import LearnerSpec
from graphflow.spec.types import FiniteFloat, NonNegativeInt, PositiveInt, StrictBool, Text


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SinusoidTaskSpec(_Model):
    """Sinusoid regression tasks: A ~ U(0.1, 0.5), phase ~ U(0, pi), x ~ U(-5, 5)."""

    kind: Literal["sinusoid"] = "sinusoid"


class MnistTaskSpec(_Model):
    """MNIST classification from local IDX files (12x12 bilinear, standardized)."""

    kind: Literal["mnist"] = "mnist"
    data_dir: Text
    """Directory holding ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``."""


class MetaTrainingSpec(_Model):
    """The reference regime (MPLP_SPEC.md, "Meta-training")."""

    steps: PositiveInt = 1000
    """Number of meta-training (outer) steps."""
    outer_batch: PositiveInt = 4
    """Tasks per outer step, run as one vectorized batch axis."""
    inner_steps: PositiveInt = 5
    shots: PositiveInt = 10
    """Examples per inner step."""
    heldout: PositiveInt = 10
    """Held-out examples per task for the final term of the meta-loss."""
    hint_weight: FiniteFloat = Field(0.7, ge=0)
    heldout_weight: FiniteFloat = Field(0.3, ge=0)
    learning_rate: FiniteFloat = Field(1e-4, gt=0)
    learning_rate_final: Annotated[FiniteFloat, Field(gt=0)] | None = None
    """When set, the learning rate follows a cosine from ``learning_rate`` at step 0 to this value
    at ``steps`` (constant otherwise, as in the reference regime)."""
    init_pool: PositiveInt = 100
    """Size of the pool of random initial networks."""
    normalization_rounds: PositiveInt = 6
    normalization_blend: FiniteFloat = Field(0.5, gt=0, le=1)
    maml: StrictBool = False
    """Meta-train the initial network too (one shared set instead of the pool)."""
    train_g: StrictBool = True
    """Train the stateless message MLPs g (the reference did not)."""
    on_nonfinite: Literal["rollback", "stop"] = "rollback"
    """When a meta-loss or gradient is NaN/inf: restore the last good state and skip the batch
    (stopping after 3 in a row), or stop at once."""


class ExperimentSpec(_Model):
    """Everything ``graphflow train`` needs to run and resume an experiment."""

    name: Text = "experiment"
    """Experiment name; ``graphflow train`` writes into ``runs/<name>`` unless told otherwise."""
    graph: GraphSpec
    learner: LearnerSpec = LearnerSpec()
    task: SinusoidTaskSpec | MnistTaskSpec = Field(SinusoidTaskSpec(), discriminator="kind")
    meta: MetaTrainingSpec = MetaTrainingSpec()
    seed: NonNegativeInt = 0
    """Seed of every random generator of the run (numpy seeds are non-negative)."""
    backend: Literal["numpy", "cupy"] = "numpy"
    threads: PositiveInt = 1
    """Split each outer batch into this many shards of tasks whose meta-gradients are computed in
    parallel threads (numpy releases the GIL in large array operations)."""
    eval_every: PositiveInt = 100
    checkpoint_every: PositiveInt = 100
    eval_tasks: PositiveInt = 20

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        """The name becomes a folder (``runs/<name>``): one path component, nothing that escapes it."""
        if not name or name != name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError(f"name {name!r} must be a non-empty folder name: no / or \\, not . or .., "
                             "no spaces around it")
        return name
