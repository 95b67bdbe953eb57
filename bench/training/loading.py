"""How the training data loader is set up per device: worker processes, pinned memory, persistent workers.

Why a module of its own: on CUDA a step takes milliseconds, so decoding and cropping images in the training process
(0 workers, the CPU default of the style harness) would leave the GPU idle; on the CPU the same workers only compete
with the training step for the cores. Both harnesses and bench.training.loop.make_loader ask here.

Guarantees: CPU behaviour is what it was (the caller's worker count, no pinned memory, no persistent workers).
On CUDA: workers by default (`default_workers`), pinned host memory (so the `non_blocking` copies overlap), persistent
workers and a deeper prefetch when there are workers. Batches are a function of the sample index alone
(bench.training.loop's stream contract), so the number of workers never changes what is trained on.
"""
from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["CUDA_MAX_WORKERS", "default_workers", "loader_options"]

CUDA_MAX_WORKERS = 4


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(device: torch.device | str, requested: int | None, cpu_default: int) -> int:
    """The number of data-loading workers: `requested` when given (--num-workers); else `cpu_default` on CPU; on
    CUDA at least min(4, the CPUs this process may use per local rank, less one for the training process), and
    never fewer than `cpu_default`."""
    if requested is not None:
        return requested
    if torch.device(device).type != "cuda":
        return cpu_default
    per_rank = _usable_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(cpu_default, min(CUDA_MAX_WORKERS, max(1, per_rank - 1)))


def loader_options(device: torch.device | str, num_workers: int) -> dict[str, Any]:
    """DataLoader keyword arguments for this device and worker count (see the module docstring)."""
    on_cuda = torch.device(device).type == "cuda"
    opts: dict[str, Any] = {"num_workers": num_workers, "pin_memory": on_cuda,
                            "persistent_workers": on_cuda and num_workers > 0}
    if on_cuda and num_workers > 0:
        opts["prefetch_factor"] = 4
    return opts
