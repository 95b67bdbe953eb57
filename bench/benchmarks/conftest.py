"""Fixtures and options for the throughput benchmarks (bench/benchmarks/test_bench_*.py, run by `pytest --benchmark-only`).

Why this file: every benchmark times the same way (warm-up untimed, synchronised device, FLOPs counted once, out of
memory and time limits recorded instead of crashing), with the reference and fast paths of one workload side by
side in one group and their ratio in `extra_info`. Options (--bench-*), timing and extra_info: docs/gpu-check.md.
"""
from __future__ import annotations

import os

import pytest
import torch

from bench.benchmarks.runner import DEVICE_SETTINGS, SKIPS, BenchRunner, bench_device
from bench.run.provenance import cpu_model, device_name

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
