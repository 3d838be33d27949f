#!/usr/bin/env bash
# One prepared check of graphflow on a lent GPU machine (the device tool's nvidia-h200): the
# device-backend tests on real CuPy, then `graphflow bench --backend cupy`, everything written under
# $OUT (a log and JSON reports). From the repository root, through the device tool:
#
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=480)
#
# It needs $OUT, CuPy that sees a GPU, and graphflow's core packages; when one is missing it stops
# at once with one line and a non-zero exit. A failed step does not stop the later ones (device
# time is scarce): the script ends non-zero naming the failed steps. The steps' own time limits
# (the *_S settings below) add up to 440 s, so that one run and the machine's start fit in a
# session's 15 device minutes with time left for a shorter second try.
#
# The machine's image (python3 is 3.12) has numpy, networkx, matplotlib, typer, click, rich,
# shellingham, tqdm, pytest, pytest-timeout, hypothesis and CuPy, but not pydantic and its needs.
# Those travel as wheels in .whl/ (ignored by git: /.whl/ in .gitignore), filled here from the
# repository root, at the versions of the development venv (.venv/bin/python -m pip list):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#         typing-extensions==4.16.0
#
# If the import check below names another missing package, add it to that command (one version of
# each: two stop the whole install). graphflow itself runs from this checkout (PYTHONPATH).

set -uo pipefail

PYTHON=${PYTHON:-python3}
SITE=/tmp/site
BENCH_CASES=sinusoid-inner,sinusoid-inner-4,sinusoid-meta,sinusoid-meta-64,mnist-inner,mnist-meta,mnist784-inner
BENCH_CASES+=,build,memory
# TODO(bench): graphflow bench has no 256-task meta-batch case (only sinusoid-meta-64) and no
# 784-1000-1000-10 network among its timed cases (that stack appears in the build timings only);
# once graphflow/bench/workloads.py has them (e.g. sinusoid-meta-256, mnist784x1000x1000-inner and
# -meta), add them to BENCH_CASES.
SCALING_MAX_NODES=1000000
DEVICE_TESTS_S=120 CUPY_CASES_S=80 BENCH_S=160 SCALING_S=80

fail() {  # one line, then exit
    echo "gpu_check: $*" >&2
    exit 1
}

[ -n "${OUT:-}" ] || fail "OUT is not set: run this through the device tool, or as OUT=/some/folder bash $0"
mkdir -p "$OUT" || fail "cannot create OUT=$OUT"
cd "$(dirname "$0")/.." || fail "cannot enter the repository root"
LOG="$OUT/gpu_check.log"

# CuPy and a GPU first: without them nothing below means anything.
"$PYTHON" - <<'EOF' || exit 1
import sys
try:
    import cupy
    gpus = cupy.cuda.runtime.getDeviceCount()
except Exception as err:  # no CuPy, no driver, no GPU: one line
    sys.exit(f"gpu_check: no CuPy with a GPU here ({type(err).__name__}: {err}); this check is for a lent GPU machine")
if gpus < 1:
    sys.exit("gpu_check: CuPy sees no GPU; this check is for a lent GPU machine")
EOF

FAILED=()
step() {  # step "what" command...: its output to the screen and the log; a failure is noted, not fatal
    local what=$1
    shift
    echo "== $what" | tee -a "$LOG"
    if ! "$@" 2>&1 | tee -a "$LOG"; then
        FAILED+=("$what")
        echo "== failed: $what" | tee -a "$LOG"
    fi
}

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        >>"$LOG" 2>&1 || fail "installing the wheels of .whl/ failed (see $LOG)"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

"$PYTHON" - <<'EOF' || exit 1
import importlib.util
import sys

needed = ("numpy", "networkx", "pydantic", "matplotlib", "typer", "tqdm", "pytest", "pytest_timeout", "hypothesis")
missing = [name for name in needed if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {', '.join(missing)}: carry them as wheels in .whl/ "
             f"(the pip download command is in benchmarks/gpu_check.sh)")
try:
    import graphflow  # noqa: F401
except Exception as err:
    sys.exit(f"gpu_check: graphflow does not import ({type(err).__name__}: {err})")
EOF

step "machine" bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; $PYTHON -c \
    'import cupy, numpy, sys; print(\"python\", sys.version.split()[0], \"cupy\", cupy.__version__, \"numpy\", numpy.__version__)'"
# The device-backend tests with GRAPHFLOW_TEST_BACKEND=cupy: the tests' "numpy" backend is CuPy, each
# result compared with plain numpy; and the tests parametrized over every available backend, CuPy's half.
step "device-backend tests on CuPy" env GRAPHFLOW_TEST_BACKEND=cupy timeout "$DEVICE_TESTS_S" "$PYTHON" -m pytest \
    -p no:cacheprovider -q tests/test_device_backend.py --junitxml="$OUT/pytest-device-backend.xml"
XDIST=$("$PYTHON" -c "import xdist" 2>/dev/null && echo "-n 8")  # the interpreter oracle runs on the CPU cores
# shellcheck disable=SC2086  # XDIST is empty or two words
step "backend-parametrized tests, CuPy's cases" timeout "$CUPY_CASES_S" "$PYTHON" -m pytest -p no:cacheprovider -q \
    $XDIST -k cupy tests/engine/test_engine.py tests/engine/test_equivalence.py --junitxml="$OUT/pytest-cupy-cases.xml"
step "graphflow bench --backend cupy (timed cases)" timeout "$BENCH_S" "$PYTHON" -m graphflow.cli bench --backend cupy \
    --cases "$BENCH_CASES" --json "$OUT/bench-cupy-cases.json"
step "graphflow bench --backend cupy (scaling)" timeout "$SCALING_S" "$PYTHON" -m graphflow.cli bench --backend cupy \
    --cases scaling --max-nodes "$SCALING_MAX_NODES" --plot "$OUT/inner_step_scaling_cupy.png" \
    --json "$OUT/bench-cupy-scaling.json"

[ ${#FAILED[@]} -eq 0 ] || fail "failed steps: $(printf '%s; ' "${FAILED[@]}")see $LOG"
echo "gpu_check: all steps passed (log: $LOG)"
