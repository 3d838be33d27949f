"""A stand-in for the reference's timing script (shared/reference/tf/timing.py) for tests without TensorFlow.

It takes the same options (``--cases a,b``, ``--repeat-scale F``) and prints one JSON object of seconds
per case, like the real script: ``SECONDS[case] x FACTORS[call]``, where ``call`` counts the earlier
calls logged in the file named by ``$FAKE_TIMING_LOG`` (one line per call: its ``--cases``).
``$FAKE_TIMING_FAIL`` set: it writes a 12-line traceback to stderr and exits with status 3.
"""

import argparse
import json
import os
import sys

SECONDS = {"sinusoid-inner": 0.010, "sinusoid-inner-4": 0.030, "sinusoid-meta": 0.400,
           "mnist-inner": 0.050, "mnist-meta": 2.0, "mnist784-inner": 0.450}
FACTORS = (1.0, 1.2, 0.9)
"""Round k's seconds are SECONDS x FACTORS[k % 3]: over three rounds, median 1.0x, min 0.9x, max 1.2x."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default=",".join(SECONDS))
    parser.add_argument("--repeat-scale", type=float, default=1.0)
    args = parser.parse_args()
    cases = args.cases.split(",")
    if os.environ.get("FAKE_TIMING_FAIL"):
        frames = "".join(f'  File "mplp/layer{i}.py", line {i}, in call\n' for i in range(10))
        print(f"Traceback (most recent call last):\n{frames}ImportError: no tensorflow here", file=sys.stderr)
        sys.exit(3)
    bad = [c for c in cases if c not in SECONDS]
    if bad:
        sys.exit(f"unknown case(s) {bad}; choose from {list(SECONDS)}")
    log = os.environ["FAKE_TIMING_LOG"]
    with open(log, "a+") as f:
        f.seek(0)
        call = len(f.read().splitlines())
        f.write(args.cases + "\n")
    print("reference parameter lists go to stderr", file=sys.stderr)
    print(json.dumps({c: SECONDS[c] * FACTORS[call % len(FACTORS)] for c in cases}))


if __name__ == "__main__":
    main()
