"""What ``docs/distributed.md`` measures: a meta-step with 1 and 2 Ray workers against one process,
where its time goes and how many bytes it moves.

Run it as ``python -m graphflow.distributed.measure --workload mnist --tasks 2 --rounds 3`` (a
bptt meta-step, its outer batch split over the workers), or with ``--estimator es --population 64``
(an ES step, its population split over the workers); it prints one JSON object. Rounds alternate between the setups (one process, 1 worker, 2 workers,
...), so that a machine whose load changes during the run weighs on all of them alike. Data are
the benchmark's synthetic minibatches of the workload's sizes (:mod:`graphflow.bench.workloads`):
step time does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import time

import numpy as np

from graphflow.distributed.cluster import require_ray
from graphflow.distributed.sharded import ShardedMetaGradient, array_bytes, shard_slices


def _pickled_bytes(obj) -> int:
    """Bytes of ``obj`` as Ray's serializer writes it (pickle protocol 5, arrays in place)."""
    buffers: list = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return len(head) + sum(b.raw().nbytes for b in buffers)


def _workload(workload: str, tasks: int, steps: int | None):
    """The bench workload's graph, a random protocol of its sizes, one outer batch of ``tasks`` and
    their initial networks (seed 0): what every setup of a measurement computes on."""
    from graphflow.bench.workloads import WORKLOADS, graph_and_protocol, meta_batch
    from graphflow.engine import Engine

    graph, protocol = graph_and_protocol(workload)
    rng = np.random.default_rng(0)
    batch = meta_batch(graph, WORKLOADS[workload], rng, tasks=tasks, steps=steps)
    engine = Engine(graph, protocol)
    init = {k: engine.be.to_numpy(v) for k, v in engine.init_network(rng, tasks).params.items()}
    return graph, protocol, batch, init


def measure(workload: str = "mnist", tasks: int = 2, workers: tuple[int, ...] = (1, 2), rounds: int = 7,
            steps: int | None = None) -> dict:
    """Median (and min, max) seconds per meta-step of each setup, its parts, and the bytes per step."""
    from graphflow.meta.metaloss import MetaGradient

    ray = require_ray()
    graph, protocol, batch, init = _workload(workload, tasks, steps)
    # Scheduling labels only: every setup's actors must be alive at once for the rounds to alternate.
    ray.init(address="local", num_cpus=2 * sum(workers) + 2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    setups = {"one process, 1 thread": MetaGradient(graph, protocol, threads=1)}
    for n in workers:
        setups[f"{n} worker{'s' if n > 1 else ''}"] = ShardedMetaGradient(graph, protocol, workers=n, threads=1)
    times: dict[str, list[float]] = {name: [] for name in setups}
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    parts: dict[str, list[dict]] = {name: [] for name in setups}
    load = [os.getloadavg()[0]]
    for name, mg in setups.items():  # warm up: numba compiles, first-touch memory
        mg(protocol, batch, init)
    for _ in range(rounds):
        for name, mg in setups.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            mg(protocol, batch, init)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)  # the driver's CPU time
            if isinstance(mg, ShardedMetaGradient):
                s = mg.stats
                shard = max(s.shard_seconds)
                parts[name].append({"put": s.put_seconds, "slowest_shard": shard, "reduce": s.reduce_seconds,
                                    "ray_overhead": s.seconds - s.put_seconds - shard - s.reduce_seconds,
                                    "slowest_shard_cpu": max(s.shard_cpu_seconds),
                                    "all_shards_cpu": sum(s.shard_cpu_seconds)})
        load.append(os.getloadavg()[0])
    out = {"workload": workload, "graph": f"{graph.inputs[0].size} inputs, {sum(w.size for w in graph.weights.values())} "
                                          f"weight nodes", "tasks": tasks, "inner_steps": batch.steps,
           "shots": batch.x.shape[2], "rounds": rounds, "cpus": os.cpu_count(), "load_average_1min": load, "setups": {}}
    local = setups["one process, 1 thread"]
    base = statistics.median(times["one process, 1 thread"])
    for name, ts in times.items():
        entry = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
                 "speedup_vs_one_process_1_thread": base / statistics.median(ts),
                 "driver_cpu_median_s": statistics.median(cpu[name])}
        if parts[name]:
            entry["parts_median_s"] = {k: statistics.median(p[k] for p in parts[name]) for k in parts[name][0]}
            mg = setups[name]
            s = mg.stats
            entry["bytes_per_step"] = {
                "protocol_put_once": s.protocol_bytes,
                "to_each_worker": s.shard_bytes,
                "from_each_worker": s.result_bytes,
                "serialized_protocol": _pickled_bytes(protocol),
                # what a worker sends back: its shard's (meta-loss, gradients, seconds)
                "serialized_results": [_pickled_bytes(local(protocol, batch.select(part),
                                                            {k: v[part] for k, v in init.items()}) + ((0.0, 0.0),))
                                       for part in shard_slices(tasks, len(s.shard_bytes))],
            }
        out["setups"][name] = entry
    out["protocol_array_bytes"] = array_bytes(protocol)
    for mg in setups.values():
        if isinstance(mg, ShardedMetaGradient):
            mg.close()
    ray.shutdown()
    return out


def measure_es(workload: str = "sinusoid", tasks: int = 4, population: int = 64, sigma: float = 0.01,
               workers: tuple[int, ...] = (1, 2), rounds: int = 3, steps: int | None = None,
               member_chunk: int | None = None) -> dict:
    """:func:`measure` for an ES step: the population's meta-losses and their reduction
    (``EsEstimator.gradient``) in one process on one thread, against :class:`~graphflow.distributed.population.DistributedEs`
    with 1, 2, ... workers on one thread each; where the time goes and the bytes of what is put and returned.
    ``member_chunk``: the estimator's members per engine run (1: one after another), where it has the option."""
    from graphflow.distributed.population import DistributedEs, EsPopulation, member_slices
    from graphflow.meta.estimators import EngineLoop, EsEstimator

    ray = require_ray()
    graph, protocol, batch, init = _workload(workload, tasks, steps)
    options = {"member_chunk": member_chunk} if member_chunk is not None else {}
    local = EsEstimator(EngineLoop(graph, protocol, protocol.trainable(), threads=1), tasks, batch.steps, population,
                        sigma, **options)
    ray.init(address="local", num_cpus=2 * sum(workers) + 2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    setups = {"one process, 1 thread": local}
    for n in workers:
        setups[f"{n} worker{'s' if n > 1 else ''}"] = DistributedEs(local, EsPopulation(local, workers=n, threads=1))
    times: dict[str, list[float]] = {name: [] for name in setups}
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    parts: dict[str, list[dict]] = {name: [] for name in setups}
    results: dict[str, tuple] = {}
    load = [os.getloadavg()[0]]
    for est in setups.values():  # warm up
        est.gradient(protocol, batch, init, 0)
    for r in range(rounds):
        for name, est in setups.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            results[name] = est.gradient(protocol, batch, init, r + 1)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            if isinstance(est, DistributedEs):
                s = est.population.stats
                shard = max(s.shard_seconds)
                # the driver's own work besides the population: the noise regenerated for the reduction
                combine = times[name][-1] - s.seconds
                parts[name].append({"put": s.put_seconds, "slowest_slice": shard, "concatenate": s.reduce_seconds,
                                    "combine": combine,
                                    "ray_overhead": s.seconds - s.put_seconds - shard - s.reduce_seconds,
                                    "slowest_slice_cpu": max(s.shard_cpu_seconds),
                                    "all_slices_cpu": sum(s.shard_cpu_seconds)})
        load.append(os.getloadavg()[0])
    one = results["one process, 1 thread"]
    out = {"workload": workload, "estimator": "es", "population": population, "sigma": sigma,
           "member_chunk": getattr(local, "member_chunk", 1),
           "members_per_engine_run": local.members_at_once(batch, population) if hasattr(local, "members_at_once") else 1,
           "graph": f"{graph.inputs[0].size} inputs, {sum(w.size for w in graph.weights.values())} weight nodes",
           "tasks": tasks, "inner_steps": batch.steps, "shots": batch.x.shape[2], "rounds": rounds, "cpus": os.cpu_count(),
           "load_average_1min": load, "setups": {}}
    base = statistics.median(times["one process, 1 thread"])
    for name, ts in times.items():
        entry = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
                 "speedup_vs_one_process_1_thread": base / statistics.median(ts),
                 "driver_cpu_median_s": statistics.median(cpu[name]),
                 "last_estimate_identical_to_one_process": bool(
                     results[name][0] == one[0] and all(np.array_equal(results[name][1][k], one[1][k]) for k in one[1]))}
        if parts[name]:
            entry["parts_median_s"] = {k: statistics.median(p[k] for p in parts[name]) for k in parts[name][0]}
            s = setups[name].population.stats
            slices = member_slices(population, len(s.shard_bytes))
            entry["bytes_per_step"] = {
                "protocol_put_once": s.protocol_bytes,
                "outer_batch_put_once": s.shard_bytes[0],
                "to_each_worker_besides": [_pickled_bytes((0, part)) for part in slices],  # the seed and its members
                "from_each_worker": s.result_bytes,
                "serialized_protocol": _pickled_bytes(protocol),
                "serialized_outer_batch": _pickled_bytes((batch, init)),
                # what a worker sends back: its members' losses and (seconds, CPU seconds)
                "serialized_results": [_pickled_bytes((np.zeros(len(part)), (0.0, 0.0))) for part in slices],
            }
        out["setups"][name] = entry
    for est in setups.values():
        if isinstance(est, DistributedEs):
            est.population.close()
    ray.shutdown()
    return out


def cpu_per_tasks(workload: str = "mnist", tasks: tuple[int, ...] = (1, 2, 4), rounds: int = 2) -> dict:
    """CPU seconds of one meta-step of ``tasks`` tasks in this process (one thread; the least of
    ``rounds`` after a warm-up), and the line ``fixed + per_task * tasks`` through them (least squares):
    what a worker's shard costs, whatever else the machine runs."""
    from graphflow.bench.workloads import WORKLOADS, graph_and_protocol, meta_batch
    from graphflow.engine import Engine
    from graphflow.meta.metaloss import MetaGradient

    graph, protocol = graph_and_protocol(workload)
    engine = Engine(graph, protocol)
    mg = MetaGradient(graph, protocol, threads=1)
    out = {}
    for n in tasks:
        rng = np.random.default_rng(0)
        batch = meta_batch(graph, WORKLOADS[workload], rng, tasks=n)
        init = {k: engine.be.to_numpy(v) for k, v in engine.init_network(rng, n).params.items()}
        mg(protocol, batch, init)
        seconds = []
        for _ in range(rounds):
            started = time.process_time()
            mg(protocol, batch, init)
            seconds.append(time.process_time() - started)
        out[n] = min(seconds)
    per_task, fixed = np.polyfit(list(out), list(out.values()), 1)
    return {"workload": workload, "cpu_s": out, "fixed_s": float(fixed), "per_task_s": float(per_task),
            "load_average_1min": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="mnist", help="sinusoid, mnist (144-50-10) or mnist784")
    parser.add_argument("--tasks", type=int, default=2, help="tasks of the outer batch")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=None, help="inner steps (default: the workload's)")
    parser.add_argument("--estimator", default="bptt", choices=("bptt", "es"),
                        help="bptt: the outer batch split over the workers; es: the population split over them")
    parser.add_argument("--population", type=int, default=64, help="ES population (with --estimator es)")
    parser.add_argument("--sigma", type=float, default=0.01, help="ES perturbation scale (with --estimator es)")
    parser.add_argument("--member-chunk", type=int, default=None,
                        help="ES members per engine run (1: one after another; default: the estimator's)")
    parser.add_argument("--cpu-per-tasks", default=None, metavar="N,N,...",
                        help="instead: CPU seconds of a meta-step of each number of tasks in this process, no Ray")
    args = parser.parse_args(argv)
    if args.cpu_per_tasks:
        tasks = tuple(int(n) for n in args.cpu_per_tasks.split(","))
        print(json.dumps(cpu_per_tasks(args.workload, tasks, args.rounds), indent=2))
        return
    workers = tuple(int(w) for w in args.workers.split(","))
    if args.estimator == "es":
        print(json.dumps(measure_es(args.workload, args.tasks, args.population, args.sigma, workers, args.rounds,
                                    args.steps, args.member_chunk), indent=2))
        return
    print(json.dumps(measure(args.workload, args.tasks, workers, args.rounds, args.steps), indent=2))


if __name__ == "__main__":
    main()
