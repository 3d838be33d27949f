"""The MNIST protocol's generalization probes (issue 13; docs/reproduction.md): the protocol at
meta-test time on its own network, with the sigmoid swapped for a step function, and moved to
28x28 inputs with 100 hidden units, each against Adam and SGD on the same tasks and initial
networks. Prints one JSON line per probe: step-20 accuracy mean and std per learner.

Run it from the repository root on the published checkpoint (read from ../shared, never copied)::

    python examples/mnist_probes.py --reference ../shared/reference/mnist_weights_00005000.npy \
        --data ../shared/data/mnist --tasks 20

or on a graphflow protocol (a protocol file, checkpoint or run folder)::

    python examples/mnist_probes.py --protocol examples/runs/mnist-20x8-seeds/points/seed=0 --data ../shared/data/mnist

The same probes from the command line: ``graphflow eval PROTOCOL --activation sigmoid=step`` and
``graphflow eval PROTOCOL --graph mnist-784``.
"""

from __future__ import annotations

import argparse
import json
import time

PROBES = (("as trained", {}), ("sigmoid -> step", {"activations": {"sigmoid": "step"}}),
          ("784-100-10, 28x28", {"graph": "mnist-784"}))


def main(argv=None) -> None:
    from graphflow.api import evaluate, load_protocol

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--reference", help="the published MNIST checkpoint (flat float32 .npy)")
    source.add_argument("--protocol", help="a graphflow protocol file, training checkpoint or run folder "
                                           "(or a published checkpoint)")
    parser.add_argument("--data", required=True, help="the MNIST folder (IDX files)")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    trained = load_protocol(args.reference or args.protocol)  # a published .npy: its preset and regime
    for label, probe in PROBES:
        start = time.perf_counter()
        curves = evaluate(trained, tasks=args.tasks, seed=args.seed, data=args.data, **probe)
        print(json.dumps({"probe": label, "tasks": args.tasks, "seed": args.seed,
                          "step": curves["graphflow"].steps[-1],
                          **{name: {"mean": round(c.mean[-1], 4), "std": round(c.std[-1], 4)}
                             for name, c in curves.items()},
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
