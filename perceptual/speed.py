"""Wall-clock timing that means the same thing on CPU and CUDA: synchronise, warm up, take the median.

Why this module exists: CUDA kernels run asynchronously, so a `time.perf_counter()` pair around a forward pass measures
only the launch unless the device is synchronised first; the first calls also pay for cuDNN autotuning, allocator
growth and lazy initialisation. Every timing in the suite (Table 1's feed-forward seconds, the Gatys traces, the
benchmarks) goes through these helpers so that they agree on what "one pass took t seconds" means.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


def synchronize(device: str | torch.device) -> None:
    """Wait for every queued kernel on `device` (no-op on CPU) so that a clock read afterwards is honest."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":  # pragma: no cover - not available here
        torch.mps.synchronize()


class Stopwatch:
    """Seconds since `start()`, synchronising `device` before every read (monotonic clock)."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._t0: float | None = None

    def start(self) -> Stopwatch:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def elapsed(self) -> float:
        if self._t0 is None:
            raise RuntimeError("Stopwatch.elapsed() called before start()")
        synchronize(self.device)
        return time.perf_counter() - self._t0


@dataclass
class Timing:
    """Result of `time_fn`: per-repeat seconds and their median (the robust summary on a shared machine)."""

    median_s: float
    times_s: list[float] = field(default_factory=list)
    warmup: int = 0
    device: str = "cpu"

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"min_s": self.min_s}


def time_fn(
    fn: Callable[[], Any],
    device: str | torch.device = "cpu",
    warmup: int = 2,
    repeats: int = 5,
) -> Timing:
    """Median seconds of `repeats` synchronised calls of `fn()` after `warmup` untimed calls.

    `fn` should do the whole unit of work (e.g. one forward pass under `torch.inference_mode()`); its return value is
    discarded after the device is synchronised, so asynchronous CUDA work is inside the measurement.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_fn needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return Timing(median_s=statistics.median(times), times_s=times, warmup=warmup, device=str(device))


def time_forward(
    module: torch.nn.Module,
    x: torch.Tensor,
    warmup: int = 2,
    repeats: int = 5,
) -> Timing:
    """Median seconds of one inference pass `module(x)` (eval mode, no autograd) on x's device."""
    was_training = module.training
    module.eval()

    def run() -> None:
        with torch.inference_mode():
            module(x)

    try:
        return time_fn(run, x.device, warmup=warmup, repeats=repeats)
    finally:
        module.train(was_training)
