"""The throughput benchmarks (`pytest --benchmark-only`, pytest-benchmark): the cases, their runner
and options; skipped by a plain `pytest` run."""
