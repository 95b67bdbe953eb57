"""Fixtures and options for the throughput benchmarks (bench/test_bench_*.py, run by `pytest --benchmark-only`).

Why this file: every benchmark must time the same way (warm-up, synchronised device, enough rounds, FLOPs counted
once, out-of-memory and time limits recorded instead of crashing), and put the reference and fast paths of one
workload side by side in one pytest-benchmark group with their ratio in `extra_info`.

Options (pytest command line):
  --bench-heavy          also run the heavy cases (1024 Gatys/L-BFGS, paper-size training steps of the style and SR
                         networks, batched inference); they take minutes on a CPU
  --bench-device DEV     cpu or cuda (default: cuda when available)
  --bench-sweep          also time fast-path variants (compile off, CUDA graphs off, padded RGB convs, ...) at the
                         cases the issue sets targets for (CUDA)
  --bench-compile MODE   auto (the device's best_config), on or off: torch.compile in the fast path
  --bench-case-timeout S seconds per case, build + warm-up + timing (0: no limit); a case over it is skipped with
                         the reason recorded, and the run goes on
  --bench-rounds N       timed rounds per case (default: chosen from the warm-up time; CPU few, CUDA many)
  --bench-paired MODE    auto (on for CPU), on, off: a fast-path case also times the reference path once before
                         each of its rounds (untimed by pytest-benchmark), giving speedup_paired = reference median /
                         fast median over interleaved rounds, robust to a shared machine's load changing between the
                         reference and fast benchmarks of a group

Timing: one call of a case = one unit of work (a forward pass, an objective evaluation, an L-BFGS iteration, a
training step) followed by a device synchronisation inside the timed function. Warm-up calls (compilation, CUDA
graph capture, cuDNN autotuning, oneDNN primitive creation) run before timing and are not timed.
extra_info per benchmark: device, device_name, dtype, torch version, threads, image_size, batch, path and fast-path
config, gflop (the task's FLOPs, counted once per group with torch.utils.flop_counter.FlopCounterMode on the
'meta' device at the benchmark's exact shapes), gflops (achieved: task FLOPs / median time; for the fast path an
effective rate, since it may do less work, e.g. truncated content targets), pixels_per_s (output pixels / median),
speedup_vs_reference (reference median / this median, same group), speedup_paired (see --bench-paired).
The loss network uses random weights (LossNetwork(weights="random")): timings do not depend on weight values, and no
weight file is read. Skipped cases (heavy, CUDA-only, out of memory with the size that failed, over the time limit)
are listed under "skipped" in the benchmark JSON.
"""
from __future__ import annotations

import os

import pytest
import torch

from bench.benchmark_runner import DEVICE_SETTINGS, SKIPS, BenchRunner, bench_device
from bench.runinfo import cpu_model, device_name

_LOAD: dict[str, list[float] | None] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perceptual-bench", "perceptual-repro benchmarks")
    group.addoption("--bench-heavy", action="store_true", default=False,
                    help="also run the heavy benchmark cases (1024 Gatys, paper-size training steps)")
    group.addoption("--bench-device", default=None, help="cpu or cuda (default: cuda when available)")
    group.addoption("--bench-sweep", action="store_true", default=False,
                    help="also time fast-path variants at the target cases")
    group.addoption("--bench-compile", default="auto", choices=("auto", "on", "off"),
                    help="torch.compile in the fast path: auto (best_config), on, off")
    group.addoption("--bench-case-timeout", type=float, default=0.0,
                    help="seconds per benchmark case (0: no limit)")
    group.addoption("--bench-rounds", type=int, default=0, help="timed rounds per case (0: automatic)")
    group.addoption("--bench-paired", default="auto", choices=("auto", "on", "off"),
                    help="fast-path cases also time the reference between their rounds (speedup_paired); auto: on "
                         "for CPU, where a shared machine's load changes between the two benchmarks of a group")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench_heavy: heavy benchmark case, needs --bench-heavy")
    config.addinivalue_line("markers", "bench_cuda_only: benchmark case run on CUDA only (2048/4096 px)")
    config.addinivalue_line("markers", "bench_sweep: fast-path variant, needs --bench-sweep")


def pytest_sessionstart(session: pytest.Session) -> None:
    _LOAD["start"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    heavy, sweep = config.getoption("--bench-heavy", default=False), config.getoption("--bench-sweep", default=False)
    on_cuda = bench_device(config).type == "cuda"
    for item in items:
        if item.get_closest_marker("bench_heavy") and not heavy:
            item.add_marker(pytest.mark.skip(reason="heavy case: run with --bench-heavy"))
        if item.get_closest_marker("bench_cuda_only") and not on_cuda:
            item.add_marker(pytest.mark.skip(reason="CUDA-only size (2048/4096 px)"))
        if item.get_closest_marker("bench_sweep") and not sweep:
            item.add_marker(pytest.mark.skip(reason="fast-path variant: run with --bench-sweep"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "test_bench_" in report.nodeid and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        SKIPS.append({"nodeid": report.nodeid, "reason": reason.removeprefix("Skipped: ")})


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Add what pytest-benchmark does not record: skipped cases with reasons, options, load and device."""
    device = bench_device(config)
    output_json["skipped"] = list(SKIPS)
    output_json["perceptual_bench"] = {
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "load_average_at_start": _LOAD.get("start"),
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "options": {k: config.getoption(k) for k in ("--bench-heavy", "--bench-sweep", "--bench-compile",
                                                      "--bench-case-timeout", "--bench-rounds", "--bench-paired")},
        "vgg_weights": "random (timings do not depend on weight values)",
        "device_settings": dict(DEVICE_SETTINGS) or None,  # None: no benchmark case ran (flags never set)
        "note": "CPU runs on a shared machine are noisy; compare paths within one run (speedup_vs_reference)",
    }


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> BenchRunner:
    """The shared benchmark runner (device, options, timing rules)."""
    return BenchRunner(request.config, bench_device(request.config))
