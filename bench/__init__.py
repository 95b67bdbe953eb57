"""The suite's commands and what they are built from, one subpackage per job.

- sr/, style/: the two harnesses (`python -m bench.sr`, `python -m bench.style`), each with the `evaluate` of a
  user's method; gpu/: the GPU check.
- tools/: applying trained networks, loading a user's; benchmarks/: the pytest-benchmark throughput cases.
- run/: what every run is built from (run folder, options, inputs, profiles, plans, provenance).
- training/: the training loop and its parts.
- metrics.py: PSNR / SSIM as published.
Each line imports only the lines below it (import-linter, pyproject.toml); docs/architecture.md has the map.
"""
