"""``graphflow metagrad``: one meta-gradient estimate of an experiment, by any estimator, to compare them.

The estimate is the one the experiment's first meta-step would make (after the normalization
rounds, as ``graphflow train`` starts): bptt and es on the first outer batch; truncated, pes and
nres on the first truncation of their first tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from graphflow.cli import app, fail

SHARED_FIELDS = ("unroll", "truncation", "stagger", "population", "sigma", "fitness_shaping", "recompute_every")
"""Estimator options carried over when ``--estimator`` names another kind than the config's."""


def estimator_data(current: dict, kind: str, inner_steps: int) -> dict:
    """The options of a ``kind`` estimator: the config's own when it is that kind, else the config's
    options that ``kind`` shares, and for truncations missing from the config one truncation of
    ``meta.inner_steps`` steps (a whole inner loop).

    >>> estimator_data({"kind": "es", "population": 8, "sigma": 0.1, "fitness_shaping": "none"}, "pes", 5)
    {'kind': 'pes', 'population': 8, 'sigma': 0.1, 'unroll': 5, 'truncation': 5}
    """
    if kind == current["kind"]:
        return dict(current)
    from graphflow.spec.experiment import ESTIMATOR_SPECS

    model = ESTIMATOR_SPECS[kind]
    data = {"kind": kind}
    data.update({k: v for k, v in current.items() if k in SHARED_FIELDS and k in model.model_fields})
    if "unroll" in model.model_fields and "unroll" not in data:
        data.update(unroll=inner_steps, truncation=inner_steps)
    return data


class _NoiseSeed:
    """The run's draws, with the outer step's noise seed given."""

    def __init__(self, draws, seed: int):
        self.draws, self.seed = draws, seed

    def __getattr__(self, name):
        return getattr(self.draws, name)

    def noise_seed(self) -> int:
        return self.seed


@app.command()
def metagrad(
    config: Path = typer.Argument(..., metavar="CONFIG", help="An experiment spec (JSON)."),
    out: Path = typer.Option(..., help="Where to write meta_loss and grad/<protocol key> (.npz)."),
    estimator: str = typer.Option(None, help="bptt, truncated, es, pes or nres (default: the config's meta.estimator); "
                                             "options the config gives for another kind are carried over where they "
                                             "apply, truncations not given are one whole inner loop."),
    population: int = typer.Option(None, help="The population of es, pes or nres (even)."),
    seed: int = typer.Option(None, min=0, help="The seed of the estimate's perturbations (es, pes, nres) or truncation "
                                               "length (truncated); default: the one the first meta-step draws."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """One meta-gradient estimate on the experiment's first outer batch, with its meta-loss."""
    from graphflow.errors import SpecError
    from graphflow.io import atomic_write
    from graphflow.meta.trainer import Trainer
    from graphflow.spec import ExperimentSpec, load_spec, parse_experiment_spec
    from graphflow.spec.experiment import ESTIMATOR_KINDS, POPULATION_KINDS

    if out.suffix != ".npz":
        fail(f"--out {out}: the gradients are written as an .npz archive; name it {out.stem}.npz")
    if out.is_dir():
        fail(f"--out {out}: a folder; name the file to write")
    if out.exists() and not force:
        fail(f"--out {out} exists: pass --force to replace it")
    if estimator is not None and estimator not in ESTIMATOR_KINDS:
        fail(f"--estimator {estimator!r}: use one of {', '.join(ESTIMATOR_KINDS)}")
    spec = load_spec(config)
    if not isinstance(spec, ExperimentSpec):
        fail(f"{config}: a graph spec, not an experiment spec (it needs a 'graph' field and training settings)")
    current = spec.meta.estimator.model_dump(mode="json")
    kind = estimator or current["kind"]
    if population is not None and kind not in POPULATION_KINDS:
        fail(f"--population {population}: the {kind} estimator has no population ({', '.join(POPULATION_KINDS[:-1])} "
             f"and {POPULATION_KINDS[-1]} have)")
    if seed is not None and kind == "bptt":
        fail(f"--seed {seed}: the bptt estimator draws no noise")
    data = estimator_data(current, kind, spec.meta.inner_steps)
    if population is not None:
        data["population"] = population
    experiment = spec.model_dump(mode="json")
    experiment["meta"]["estimator"] = data
    try:
        spec = parse_experiment_spec(experiment)
    except SpecError as err:  # what the options made of the config's estimator, on one line
        details = "; ".join(line.strip() for line in str(err).splitlines()[1:]) or str(err)
        fail(f"the {kind} estimator {json.dumps(data)}: {details}")

    trainer = Trainer(spec)
    trainer.setup()
    draws = trainer.draws if seed is None else _NoiseSeed(trainer.draws, seed)
    loss, grads = trainer.estimator.estimate(trainer.protocol, draws)
    payload = {"meta_loss": np.asarray(loss, np.float64),
               "estimator": np.asarray(json.dumps(spec.meta.estimator.model_dump(mode="json"), sort_keys=True))}
    payload.update({f"grad/{key}": np.asarray(g) for key, g in grads.items()})
    atomic_write(out, lambda f: np.savez(f, **payload))
    norm = float(np.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values())))
    typer.echo(f"{kind}: meta_loss {loss:.6g}, gradient norm {norm:.6g}; {len(grads)} gradients -> {out}")
