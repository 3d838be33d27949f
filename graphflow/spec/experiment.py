"""Pydantic model of a meta-training experiment: graph, learner, task and regime."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class ConstantLength(_Model):
    """Every draw is the same length."""

    kind: Literal["constant"] = "constant"
    length: PositiveInt
    """Inner steps."""

    def bounds(self) -> tuple[int, int]:
        return self.length, self.length


class LogUniformLength(_Model):
    """Lengths drawn log-uniformly from ``low`` to ``high`` (inclusive, rounded down), as the
    ``LogUniformLengthSchedule`` of learned_optimization."""

    kind: Literal["log_uniform"] = "log_uniform"
    low: PositiveInt
    """The shortest length (inner steps)."""
    high: PositiveInt
    """The longest length (inner steps)."""

    @model_validator(mode="after")
    def _ordered(self) -> "LogUniformLength":
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def bounds(self) -> tuple[int, int]:
        return self.low, self.high


LengthSchedule = Annotated[ConstantLength | LogUniformLength, Field(discriminator="kind")]
"""A length of inner steps drawn anew each time it is needed."""


class BpttEstimatorSpec(_Model):
    """Exact reverse mode through the whole unrolled inner loop of ``meta.inner_steps`` steps (the
    reference regime). Memory grows with the unroll unless ``recompute_every`` is set."""

    kind: Literal["bptt"] = "bptt"
    recompute_every: PositiveInt | None = None
    """Differentiate the unroll in segments of this many inner steps, each recomputed from the
    network state at its start: memory of one segment's tape for one more forward pass; the same
    gradient up to rounding."""


class _Truncations(_Model):
    unroll: PositiveInt | LengthSchedule
    """T: the inner steps of a task's whole inner loop; a task (fresh data, fresh initial network)
    replaces it when its unroll ends. A schedule draws each new task's T (learned_optimization's
    truncation schedules)."""
    truncation: PositiveInt | LengthSchedule
    """K: the inner steps each outer step runs of every task's inner loop; a schedule draws one K
    per outer step, the same for all tasks. A truncation never runs past the end of its task's unroll."""
    stagger: StrictBool = True
    """Start the first tasks at spread positions of their unrolls (reached by running their first
    steps with the initial protocol, no estimate), so that not all tasks restart at once."""

    @model_validator(mode="after")
    def _truncation_fits(self):
        longest = self.unroll if isinstance(self.unroll, int) else self.unroll.bounds()[1]
        shortest = self.truncation if isinstance(self.truncation, int) else self.truncation.bounds()[0]
        if shortest > longest:
            raise ValueError(f"truncations of {shortest} inner steps are longer than the longest unroll, {longest}")
        return self


class _Population(_Model):
    population: PositiveInt = 16
    """P, the number of perturbed protocols per estimate: P/2 antithetic pairs (+eps, -eps)."""
    sigma: FiniteFloat = Field(0.01, gt=0)
    """Standard deviation of the Gaussian perturbation of every trained protocol entry."""

    @field_validator("population")
    @classmethod
    def _even(cls, population: int) -> int:
        if population % 2:
            raise ValueError(f"population {population} is odd; antithetic pairs need an even population")
        return population


class TruncatedEstimatorSpec(_Truncations):
    """Truncated backprop: each outer step differentiates the next K inner steps of every task's
    persistent inner loop, treating the network state at the truncation's start as a constant.
    Memory of K steps; biased (it cannot see how the protocol shaped the state it starts from)."""

    kind: Literal["truncated"] = "truncated"


class EsEstimatorSpec(_Population):
    """Antithetic evolution strategies on the protocol over whole unrolls of ``meta.inner_steps``
    steps: forward passes only, no tape, memory independent of the unroll. Unbiased for the
    Gaussian-smoothed meta-loss."""

    kind: Literal["es"] = "es"
    fitness_shaping: Literal["none", "centered_rank"] = "none"
    """``centered_rank`` replaces the meta-losses of the population by their centred ranks: robust
    to outliers, but then the estimate is a direction, no longer on the gradient's scale."""


class PesEstimatorSpec(_Truncations, _Population):
    """Persistent evolution strategies over truncated unrolls: every population member keeps its
    own inner state and the sum of the perturbations it ran with since its task started, which
    makes the estimate unbiased for the whole unroll (Vicol et al. 2021). Forward passes only."""

    kind: Literal["pes"] = "pes"


class NresEstimatorSpec(_Truncations, _Population):
    """Noise-reuse evolution strategies over truncated unrolls (Li et al., NeurIPS 2023): every
    population member keeps its own inner state, and each task draws its perturbations once, when
    its unroll starts, and runs every truncation of that unroll with them: unbiased for the whole
    unroll like ``pes``, with nothing accumulated and a lower variance. Forward passes only."""

    kind: Literal["nres"] = "nres"


EstimatorSpec = Annotated[BpttEstimatorSpec | TruncatedEstimatorSpec | EsEstimatorSpec | PesEstimatorSpec
                          | NresEstimatorSpec, Field(discriminator="kind")]
"""How meta-training estimates the meta-gradient (docs/estimators.md)."""
ESTIMATOR_SPECS = {"bptt": BpttEstimatorSpec, "truncated": TruncatedEstimatorSpec, "es": EsEstimatorSpec,
                   "pes": PesEstimatorSpec, "nres": NresEstimatorSpec}
"""Estimator kind -> its spec model (what it takes: ``unroll``/``truncation``, ``population``/``sigma``)."""
ESTIMATOR_KINDS = tuple(ESTIMATOR_SPECS)
TRUNCATED_KINDS = tuple(k for k, m in ESTIMATOR_SPECS.items() if "truncation" in m.model_fields)
"""The kinds that walk persistent tasks through their unrolls, K inner steps per meta-step."""
POPULATION_KINDS = tuple(k for k, m in ESTIMATOR_SPECS.items() if "population" in m.model_fields)
"""The kinds that estimate from a population of perturbed protocols."""


class MetaTrainingSpec(_Model):
    """The reference regime (MPLP_SPEC.md, "Meta-training")."""

    steps: PositiveInt = 1000
    """Number of meta-training (outer) steps."""
    outer_batch: PositiveInt = 4
    """Tasks per outer step, run as one vectorized batch axis."""
    inner_steps: PositiveInt = 5
    """Inner steps of a task's inner loop (updates of the network by the protocol): the unroll of the
    meta-loss for the ``bptt`` and ``es`` estimators (``truncated``, ``pes`` and ``nres`` set their
    own), and of every evaluation."""
    shots: PositiveInt = 10
    """Examples per inner step."""
    heldout: PositiveInt = 10
    """Held-out examples per task for the final term of the meta-loss."""
    hint_weight: FiniteFloat = Field(0.7, ge=0)
    """Weight in the meta-loss of the mean hint loss: after each inner step, the loss on that step's
    own examples with the updated network (0.7 in the reference regime)."""
    heldout_weight: FiniteFloat = Field(0.3, ge=0)
    """Weight in the meta-loss of the loss on ``heldout`` held-out examples after the last inner step
    (0.3 in the reference regime)."""
    learning_rate: FiniteFloat = Field(1e-4, gt=0)
    """Adam's learning rate in the outer loop (each gradient tensor divided by its own norm). The
    default 1e-4 is the reference regime's (MPLP_SPEC.md, "Meta-training"), which the published
    checkpoints were trained with; graphflow's examples start higher: 1e-3 with a cosine to
    ``learning_rate_final`` (``examples/sinusoid_5x10.json``, the bundled demo protocol) and 3e-3
    for a tiny learner trained 150 steps (``examples/tiny_sinusoid.json``)."""
    learning_rate_final: Annotated[FiniteFloat, Field(gt=0)] | None = None
    """When set, the learning rate follows a cosine from ``learning_rate`` at step 0 to this value
    at ``steps`` (constant otherwise, as in the reference regime)."""
    init_pool: PositiveInt = 100
    """Size of the pool of random initial networks."""
    normalization_rounds: PositiveInt = 6
    """Rounds of inner loops run before the first meta-step to measure the protocol's fixed
    normalization: each stream's input standardization (then each f's output mean, in one more
    pass)."""
    normalization_blend: FiniteFloat = Field(0.5, gt=0, le=1)
    """Weight p of each later round's moments: new = old * (1 - p) + measured * p (the first round
    sets them)."""
    maml: StrictBool = False
    """Meta-train the initial network too (one shared set instead of the pool)."""
    train_g: StrictBool = True
    """Train the stateless message MLPs g (the reference did not)."""
    start_from: Text | None = None
    """Start from this protocol instead of a freshly initialized one (fine-tuning, a longer unroll,
    another estimator): a protocol file, a training checkpoint, a run folder, a bundled protocol's
    name, or a published MPLP checkpoint (a flat ``.npy``, matched to the preset it fits; the MAML
    one with the prior published beside it, ``maml_sin_prior_weights_N.npy``). It
    must have this experiment's learner and fit its graph (the same learner groups and shapes). Its
    normalization is kept (``normalization_rounds`` is not measured) and, for ``maml``, its initial
    network when it has one; the outer optimizer starts afresh. A relative path is read from the
    working directory, as ``task.data_dir`` is."""
    on_nonfinite: Literal["rollback", "stop"] = "rollback"
    """When a meta-loss or gradient is NaN/inf: restore the last good state and skip the batch
    (stopping after 3 in a row), or stop at once."""
    estimator: EstimatorSpec = BpttEstimatorSpec()
    """How the meta-gradient is estimated: ``bptt`` (exact, the default), ``truncated``, ``es``,
    ``pes`` or ``nres`` (docs/estimators.md)."""

    @model_validator(mode="after")
    def _estimator_fits(self) -> "MetaTrainingSpec":
        if self.maml and self.estimator.kind != "bptt":
            raise ValueError(f"maml meta-trains the initial network, which only the bptt estimator "
                             f"differentiates so far, not {self.estimator.kind}")
        return self


class DistributedSpec(_Model):
    """Where the meta-gradient is computed: Ray workers, each a slice of the outer batch (bptt,
    truncated) or of the population (es, pes) (``docs/distributed.md``; ``pip install 'graphflow[ray]'``)."""

    engine: Literal["ray"] = "ray"
    """The distributed engine (Ray, the only one so far)."""
    workers: PositiveInt
    """Ray actors, each computing the meta-gradient of a slice of the outer batch's tasks (bptt;
    truncated, whose tasks' inner networks stay on their worker), or the meta-losses of a slice of
    the population (es; pes, whose members' inner networks stay on their worker)."""
    address: Text | None = None
    """The Ray cluster to join: ``auto`` (the one ``ray start --head`` started on this machine) or
    ``ray://host:port``; null starts a local Ray instance sized to this machine."""


class ExperimentSpec(_Model):
    """Everything ``graphflow train`` needs to run and resume an experiment."""

    name: Text = "experiment"
    """Experiment name; ``graphflow train`` writes into ``runs/<name>`` unless told otherwise."""
    graph: GraphSpec
    """The network the protocol learns to train: a layer stack or a free-form block graph
    (``docs/graph.md``)."""
    learner: LearnerSpec = LearnerSpec()
    """The protocol: the learners f and g every node group runs, their sizes and initialization."""
    task: SinusoidTaskSpec | MnistTaskSpec = Field(SinusoidTaskSpec(), discriminator="kind")
    """The family of tasks the inner loops learn: sinusoid regression or MNIST classification."""
    meta: MetaTrainingSpec = MetaTrainingSpec()
    """The meta-training regime: meta-steps, batches, the meta-loss, the outer optimizer, the
    normalization."""
    seed: NonNegativeInt = 0
    """Seed of every random generator of the run (numpy seeds are non-negative)."""
    backend: Literal["numpy", "cupy"] = "numpy"
    """Where the arrays live: ``numpy`` (the CPU) or ``cupy`` (a CUDA GPU, ``pip install graphflow[gpu]``)."""
    threads: PositiveInt = 1
    """Split each outer batch into this many shards of tasks whose meta-gradients are computed in
    parallel threads (numpy releases the GIL in large array operations)."""
    eval_every: PositiveInt = 100
    """Evaluate the protocol every this many meta-steps (and after the last), on ``eval_tasks``
    fresh tasks; the evals go to the run's log."""
    checkpoint_every: PositiveInt = 100
    """Save the run folder's ``checkpoint.npz`` every this many meta-steps (and after the last);
    ``--resume`` continues from the latest."""
    eval_tasks: PositiveInt = 20
    """Tasks of each evaluation during training (the same tasks every time)."""
    distributed: DistributedSpec | None = None
    """Compute each meta-gradient on Ray workers (every estimator), or in this process (null).
    The meta-losses are those of one process: within float32 summation order (bptt, truncated),
    bit for bit (es, pes)."""

    @model_validator(mode="after")
    def _distributed_estimator(self) -> "ExperimentSpec":
        if self.distributed is not None and self.meta.estimator.kind == "nres":
            raise ValueError("distributed runs support bptt, truncated, es and pes; nres runs in one process so far "
                             "(set distributed to null, or use pes)")
        return self

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        """The name becomes a folder (``runs/<name>``): one path component, nothing that escapes it."""
        if not name or name != name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError(f"name {name!r} must be a non-empty folder name: no / or \\, not . or .., "
                             "no spaces around it")
        return name
