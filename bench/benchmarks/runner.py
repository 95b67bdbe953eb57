"""The benchmarks' runner for bench/benchmarks/test_bench_*.py: warm-up, synchronised rounds, limits, FLOPs, extra_info.

Why this module: perceptual/speed.py (shared with the harnesses) times one function for Table 1; the pytest-benchmark cases
need more around it (pytest-benchmark's pedantic rounds, per-case time limits, out-of-memory as a recorded skip, a
FLOP count per group, the reference/fast ratio). The options that drive it live in bench/benchmarks/conftest.py.
"""
from __future__ import annotations

import contextlib
import gc
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from bench.run.provenance import device_name
from perceptual.speed import synchronize

HEAVY = pytest.mark.bench_heavy
CUDA_ONLY = pytest.mark.bench_cuda_only
SWEEP = pytest.mark.bench_sweep

SKIPS: list[dict[str, Any]] = []  # skipped benchmark cases with reasons (written into the JSON by conftest)
_REFERENCE: dict[str, dict[str, Any]] = {}  # group -> {"median", "min", "extra"}
_FLOPS: dict[str, float | None] = {}
DEVICE_SETTINGS: dict[str, Any] = {}  # perceptual.device.configure's result, set by the first BenchRunner


class CaseTimeout(BaseException):
    """A benchmark case ran past --bench-case-timeout (a BaseException so library code cannot swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"over the {seconds:g} s case limit")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass
class Case:
    """One benchmark: `build()` returns the unit of work (a no-argument callable); `flops()` returns the task's FLOP
    count (called once per group); `pixels` = output pixels per call."""

    group: str
    path: str
    size: int
    batch: int
    pixels: int
    build: Callable[[], Callable[[], Any]]
    flops: Callable[[], float] | None = None
    reference: Callable[[], Callable[[], Any]] | None = None  # builds the reference work, for paired rounds
    dtype: str = "float32"
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of one call of `fn` (build it on the 'meta' device: shapes only, no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


class BenchRunner:
    """Runs `Case`s with warm-up, synchronisation, adaptive rounds, limits and extra_info (the `bench` fixture)."""

    def __init__(self, config: pytest.Config, device: torch.device):
        from perceptual.device import configure

        self.device = device
        DEVICE_SETTINGS.clear()
        DEVICE_SETTINGS.update(configure(device))  # the harnesses' flags (TF32, cuDNN autotuning), recorded in the JSON
        self.heavy = config.getoption("--bench-heavy")
        self.compile_mode = config.getoption("--bench-compile")
        self.timeout = config.getoption("--bench-case-timeout")
        self.rounds = config.getoption("--bench-rounds")
        self.on_cuda = self.device.type == "cuda"
        paired = config.getoption("--bench-paired")
        self.paired = (not self.on_cuda) if paired == "auto" else paired == "on"

    def fast_config(self, task: str, **changes: Any) -> Any:
        """best_config(device, task) with --bench-compile applied, then `changes`."""
        from dataclasses import replace

        from perceptual.fast import best_config

        cfg = best_config(self.device, task)  # type: ignore[arg-type]
        if self.compile_mode != "auto":
            cfg = replace(cfg, compile=self.compile_mode == "on")
        return replace(cfg, **changes) if changes else cfg

    def _rounds(self, warm_s: float) -> int:
        if self.rounds:
            return self.rounds
        if self.on_cuda:
            return int(min(200, max(5, 1.0 / max(warm_s, 1e-6))))
        return int(min(5, max(1, round(10.0 / max(warm_s, 1e-6)))))

    def run(self, benchmark: Any, case: Case) -> None:
        benchmark.group = case.group
        device = self.device
        work: Callable[[], Any] | None = None
        ref_work: Callable[[], Any] | None = None
        ref_times: list[float] = []
        try:
            with _time_limit(self.timeout):
                work = case.build()
                if self.paired and case.path != "reference" and case.reference is not None:
                    ref_work = case.reference()
                    if case.group not in _REFERENCE:  # else the reference case just ran: shapes already warm
                        ref_work()
                        synchronize(device)

                def timed() -> None:
                    assert work is not None  # built above; cleared only after the case
                    work()
                    synchronize(device)

                def paired_reference() -> None:
                    """pedantic's untimed setup: one reference call timed here, so reference and fast rounds
                    alternate and a load change on a shared machine hits both alike."""
                    if ref_work is not None:
                        t0 = time.perf_counter()
                        ref_work()
                        synchronize(device)
                        ref_times.append(time.perf_counter() - t0)

                warm_s = 0.0
                for i in range(3 if self.on_cuda else 1):
                    t0 = time.perf_counter()
                    timed()
                    warm_s = time.perf_counter() - t0
                    if i == 0:  # torch.compile's compilation (and other first-call costs) happen here
                        case.extra["first_call_s"] = warm_s
                benchmark.pedantic(timed, setup=paired_reference, rounds=self._rounds(warm_s), warmup_rounds=0,
                                   iterations=1)
        except CaseTimeout as exc:
            pytest.skip(f"{case.group} {case.path}: {exc} (size {case.size})")
        except Exception as exc:  # only out-of-memory becomes a skip
            if not _is_oom(exc):
                raise
            if self.on_cuda:
                torch.cuda.empty_cache()
            pytest.skip(f"out of memory at {case.size}x{case.size} (batch {case.batch}) on {device_name(device)}: "
                        f"{case.group} {case.path}")
        finally:
            work = ref_work = None  # free the case's models, graphs and compiled code before the next case
            gc.collect()
            if self.on_cuda:
                torch._dynamo.reset()
                torch.cuda.empty_cache()
        if ref_times:
            case.extra["paired_reference_median_s"] = statistics.median(ref_times)
            case.extra["speedup_paired"] = statistics.median(ref_times) / float(benchmark.stats.stats.median)
        self._annotate(benchmark, case)

    def _annotate(self, benchmark: Any, case: Case) -> None:
        stats = benchmark.stats.stats
        median, best = float(stats.median), float(stats.min)
        if case.group not in _FLOPS:
            try:
                _FLOPS[case.group] = case.flops() if case.flops is not None else None
            except Exception as exc:  # noqa: BLE001 - a FLOP count must never fail the benchmark
                _FLOPS[case.group] = None
                case.extra["flop_count_error"] = f"{type(exc).__name__}: {exc}"
        flops = _FLOPS[case.group]
        info = benchmark.extra_info
        info.update({
            "device": str(self.device), "device_name": device_name(self.device), "dtype": case.dtype,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "path": case.path,
            "image_size": case.size, "batch": case.batch, "pixels_per_s": case.pixels / median,
            "gflop": flops / 1e9 if flops else None, "gflops": flops / 1e9 / median if flops else None,
            "config": case.config, **case.extra,
        })
        if self.on_cuda:
            info["tf32_conv"] = torch.backends.cudnn.allow_tf32
        if case.path == "reference":
            _REFERENCE[case.group] = {"median": median, "min": best, "extra": info}
            info["speedup_vs_reference"] = 1.0
        elif case.group in _REFERENCE:
            ref = _REFERENCE[case.group]
            info["speedup_vs_reference"] = ref["median"] / median
            info["speedup_vs_reference_min"] = ref["min"] / best
            ref["extra"][f"speedup_of_{case.path}"] = ref["median"] / median


def bench_device(config: pytest.Config) -> torch.device:
    """The device the benchmarks run on (--bench-device, else cuda when available)."""
    name = config.getoption("--bench-device", default=None) or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--bench-device cuda but torch.cuda.is_available() is False")
    return device


def rand(*shape: int, device: torch.device | str = "cpu", seed: int = 0) -> torch.Tensor:
    """Seeded uniform [0, 1) input made on the CPU (the same values on every device), then moved; on the 'meta'
    device an empty tensor of that shape (for FLOP counting)."""
    if torch.device(device).type == "meta":
        return torch.empty(shape, device="meta")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g).to(device)
