#!/usr/bin/env bash
# The prepared GPU check (issue 13): a compressed paper protocol in about 8 minutes on one H100/H200, one process per
# measurement, each number appended to gpu_check.jsonl the moment it exists (bench/gpu_protocol.py says what runs).
#
#   scripts/gpu_check.sh --device cuda     # on the GPU machine; fails loudly (exit 2) without CUDA
#   scripts/gpu_check.sh --rehearse        # the same steps on the CPU at tiny sizes, under 3 minutes (CI runs it)
#
# On a lent GPU machine (one device call), after preparing here, once (.gpu/ is git-ignored):
#   python -m bench.gpu_protocol --prepare-data .gpu/data          # ~10 MB of images the harness steps read
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl \
#       resize-right==0.0.2 pooch platformdirs                      # what bench.sr / bench.style import that the
#                                                                   # GPU image lacks (~170 kB; checked 2026-12-02)
#   run(command="scripts/gpu_check.sh --device cuda --data .gpu/data", carry=[".gpu"], timeout_s=600)
# Without .gpu the measurement steps still run; the two harness steps are skipped with the reason.
# Results come back from $OUT (gpu_check.jsonl, gpu_check_summary.md, gpu_check.log, style_run.tar.gz,
# sr_run.tar.gz, tests.xml); copy them into results/bench/ and commit them with the device name and date.
# Nothing here is required: a missing wheel, data folder, git, nvidia-smi or C compiler skips what needs it, and the
# summary says which target was not measured and why.
set -u
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY=$VIRTUAL_ENV/bin/python
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    PY=.venv/bin/python
else
    PY=python3
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
exec "$PY" -m bench.gpu_protocol "$@"
