#!/usr/bin/env python
"""Run graphflow's benchmarks: the same code as ``graphflow bench`` (options: --json F, --backend,
--quick, --cases a,b, --plot F). See docs/performance.md.

    .venv/bin/python benchmarks/run.py --quick --json /tmp/bench.json
"""

import sys

from graphflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
