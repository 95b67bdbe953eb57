#!/usr/bin/env bash
# The one prepared GPU check of issue 5 (bench/gpu_check.py): fast-path checks on CUDA, the benchmarks including
# 2048/4096 px and the paper-size training steps, 500 L-BFGS iterations at 1024, and each target vs the issue.
#
# On a lent GPU machine (one device call; the GPU image has python3 with torch, pytest and pytest-benchmark but not
# resize_right, which data.resize imports: its wheel travels in the git-ignored folder .whl/):
#   run(command="scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results: results/bench/<gpu>_<date>.json (pytest-benchmark JSON + targets) and <gpu>_<date>_summary.md, copied to
# $OUT as well so they come back; copy them into results/bench/ here and commit them.
# To prepare .whl (once, on the development machine, from the repository root):
#   python -m pip download --no-deps --only-binary=:all: -d .whl resize-right==0.0.2 && echo /.whl/ >> .git/info/exclude
# Rehearsal on a CPU (a tiny subset of every step, a few minutes on 2 cores):
#   scripts/gpu_check.sh --device cpu --quick
# Other options: --budget-s SECONDS (default 420), --steps targets,gatys500,tests,rest,sweep, --case-timeout-s 150.
set -u
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    PY=.venv/bin/python
else
    PY=python3
fi
if ! "$PY" -c "import resize_right" >/dev/null 2>&1; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
            .whl/*.whl || exit 2
        export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
    fi
fi
export PYTHONPATH=$(pwd)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
exec "$PY" -m bench.gpu_check "$@"
