"""The execution path of a harness run: the `--path` and `--compile` options both harnesses share, the FastConfig
each part of a run uses, and what run.json records about them.

Why a module of its own: bench/sr.py and bench/style.py must choose the path the same way and record it under the
same run.json keys (`path`, `fast_config`), so reports and resumed runs can read either harness alike.

- `--path fast` (default): training through perceptual.fast.FastTrainer (bench.steps), Gatys on the fast
  objective, inference through FastStylizer; each with best_config(device, task). On a CPU that is the reference
  arithmetic, so results.csv is the same as with `--path reference` (wall-clock columns aside).
- `--path reference`: the plain eager code the suite was validated with.
- `--compile` / `--no-compile`: torch.compile on the fast path (default: best_config's choice, i.e. on with CUDA,
  off on a CPU, where it costs 60-90 s per shape before it pays off). Compile time is reported apart from the
  steady-state step time (the training summaries' `first_step_s` and `later_steps_s`). On CUDA, switching compile
  off also switches the layout (perceptual.fast.with_compile: NCHW without compile), and run.json records it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from bench.steps import PATHS
from perceptual.fast import FastConfig, Task, best_config, with_compile

__all__ = ["PATHS", "ExecPath"]


@dataclass(frozen=True)
class ExecPath:
    """The path of one run on one device; `config(task)` is the FastConfig of that part of the run (None on the
    reference path)."""

    path: str
    device: torch.device
    compile: bool | None = None

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"--path must be one of {', '.join(PATHS)}, got {self.path!r}")
        object.__setattr__(self, "device", torch.device(self.device))

    @property
    def fast(self) -> bool:
        return self.path == "fast"

    def config(self, task: Task) -> FastConfig | None:
        if not self.fast:
            return None
        cfg = best_config(self.device, task)
        if self.compile is not None and task != "gatys":  # Gatys stays eager (L-BFGS runs Python in between)
            cfg = with_compile(cfg, self.device, self.compile)
        return cfg

    def eval_config(self) -> FastConfig | None:
        """Inference over images of many sizes, each seen once or a few times (SR evaluation, style outputs):
        compile only when asked for with --compile (it compiles once per shape) and no CUDA graphs (one capture per
        shape, replayed too rarely to pay). Table 1's timed feed-forward keeps config('inference')."""
        cfg = self.config("inference")
        return None if cfg is None else replace(with_compile(cfg, self.device, bool(self.compile)), cuda_graphs=False)

    def describe(self) -> dict[str, Any]:
        """run.json's `fast_config`: per task, the FastConfig as a dict with its label (None on reference)."""
        out: dict[str, Any] = {}
        tasks: tuple[Task, ...] = ("train", "gatys", "inference")
        for task in tasks:
            cfg = self.config(task)
            out[task] = None if cfg is None else cfg.as_dict() | {"label": cfg.label()}
        ev = self.eval_config()
        out["evaluation"] = None if ev is None else ev.as_dict() | {"label": ev.label()}
        return out

    def run_json(self) -> dict[str, Any]:
        """The keys both harnesses add to run.json."""
        return {"path": self.path, "fast_config": self.describe()}
