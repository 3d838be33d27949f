"""Meta-training across processes and machines, on Ray: sharded meta-gradients and sweeps of experiments.

- :class:`graphflow.distributed.sharded.ShardedMetaGradient` is called like
  :class:`graphflow.meta.metaloss.MetaGradient`; Ray actors compute slices of the outer batch and
  the driver reduces them in a fixed order, so the result is the single-process one up to float32
  summation order.
- :class:`graphflow.distributed.population.EsPopulation` splits an ES population over Ray actors
  (each gets the step's seed and its members, and returns their meta-losses); the driver reduces
  them in member order, so an ES run logs the single-process meta-losses bit for bit.
- :class:`graphflow.distributed.persistent.PesPopulation` does the same for PES, each worker
  keeping its members' persistent inner networks across truncations.
- :class:`graphflow.distributed.truncated.TruncatedShards` splits truncated backprop's task slots
  over Ray actors, each keeping its slots' persistent inner networks and differentiating their
  windows under its own tape; the driver sums the gradients in slot order.
- :mod:`graphflow.distributed.sweep` runs a grid of experiments, each an ordinary resumable run
  folder, as Ray tasks or in this process, and tabulates and draws their results.
- :mod:`graphflow.distributed.cluster` joins or starts Ray.

Ray is optional (``pip install 'graphflow[ray]'``): this package imports it only inside the
functions that need it (:func:`graphflow.distributed.cluster.require_ray`), so that graphflow
imports and trains without it. It sits above :mod:`graphflow.meta`: nothing below imports it but
the trainer, and the trainer only where an experiment's ``distributed`` field asks for workers
(``docs/distributed.md``).
"""
