#!/usr/bin/env bash
# The GPU check: the paper's numbers from one call of about 10 minutes on one CUDA GPU (bench/gpu/protocol.py says
# what runs and in which order; docs/gpu-check.md says why).
#
#   scripts/gpu_check.sh --device cuda --data .gpu/data    # on the GPU machine; exit 2 without CUDA
#   scripts/gpu_check.sh --rehearse                        # the same steps and arguments on the CPU at tiny sizes
#
# Prepare .gpu/ (git-ignored) once, on a machine with the data mirror and a package index, and carry it along:
#   python -m bench.gpu.protocol --prepare-data .gpu/data          # ~10 MB of images the harness steps read
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl \
#       resize-right==0.0.2 pooch platformdirs                      # packages bench.sr / bench.style import that
#                                                                   # a bare GPU image may lack (~170 kB)
# Give the command a 10-minute limit: 9 minutes of steps (the budget) plus start-up and packing.
# Without .gpu/data the measurement steps still run and the harness steps are skipped with the reason.
#
# What comes back (in --out, default $OUT when set, else results/bench/gpu-<date>): gpu_check.jsonl (every number,
# written the moment it exists), gpu_check_summary.md (each target: measured / not measured (why) / n/a on CPU),
# gpu_check.log, style_run.tar.gz and sr_run.tar.gz (the harness runs' small files), tests.xml. Copy them into
# results/bench/ and commit them with the device name and date.
#
# Python: $PYTHON, else the active virtual environment, else .venv/bin/python or .tox/py/bin/python (the first that
# imports torch), else python3; if that cannot import torch, the script stops and says to set PYTHON=.
set -u
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY=$VIRTUAL_ENV/bin/python
else
    PY=python3
    for cand in .venv/bin/python .tox/py/bin/python; do
        if [ -x "$cand" ] && "$cand" -c "import torch" >/dev/null 2>&1; then
            PY=$cand
            break
        fi
    done
fi
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "gpu_check: $PY cannot import torch; run with PYTHON=/path/to/python (an environment with the project installed, e.g. PYTHON=.tox/py/bin/python)" >&2
    exit 2
fi
for dir in .gpu/whl .whl; do  # optional wheels for packages the GPU image lacks; never required
    if ls "$dir"/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
            "$dir"/*.whl && export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH} \
            || echo "gpu_check: could not install the wheels in $dir; steps that need them are skipped" >&2
    fi
done
export PYTHONPATH=$(pwd)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
exec "$PY" -m bench.gpu.protocol "$@"
