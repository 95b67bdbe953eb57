"""The execution path of a harness run: the `--path` and `--compile` options both harnesses share, the FastConfig
each part of a run uses, and what run.json records about them.

Why a module of its own: bench/sr/harness.py and bench/style/harness.py must choose the path the same way and record it under the
same run.json keys (`path`, `fast_config`), so reports and resumed runs can read either harness alike.

- `--path fast` (default): training through perceptual.fast.FastTrainer (bench.training.steps), Gatys on the fast
  objective, inference through FastStylizer; each with best_config(device, task). On a CPU that is the reference
  arithmetic, so results.csv is the same as with `--path reference` (wall-clock columns aside).
- `--path reference`: the plain eager code the suite was validated with.
- `--compile auto` (default) / `on` (`--compile`) / `off` (`--no-compile`): torch.compile on the fast path. `auto`
  decides per training and per forward use by the measured break-even (bench.training.compile_policy), never for the smoke
  profile; each decision and its reason goes into run.json's `fast_config.compile` (and each training's summary).
  Gatys stays eager whatever the mode (L-BFGS runs Python between evaluations). Compile time is reported apart from
  the steady-state step time (the training summaries' `first_step_s` and `later_steps_s`).
  On CUDA, switching compile off also switches the layout (perceptual.fast.with_compile: NCHW without compile),
  and run.json records it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from bench.training.compile_policy import Decision, forward_decision, normalise_mode, training_decision
from bench.training.steps import PATHS
from perceptual.fast import FastConfig, Task, best_config, with_compile

__all__ = ["PATHS", "ExecPath"]


@dataclass(frozen=True)
class ExecPath:
    """The path of one run on one device; `config(task)` is the FastConfig of that part of the run (None on the
    reference path); `train_config` and `forward_config` add the `--compile` decision of one training or one forward
    use and record it (`decisions`, shared by the copies `on(path)` makes)."""

    path: str
    device: torch.device
    compile: bool | str | None = None  # auto / on / off (True, False, None read as on, off, auto)
    profile: str = ""
    decisions: dict[str, dict[str, Any]] = field(default_factory=lambda: {"training": {}, "forward": {}},
                                                 compare=False)

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"--path must be one of {', '.join(PATHS)}, got {self.path!r}")
        object.__setattr__(self, "device", torch.device(self.device))
        object.__setattr__(self, "compile", normalise_mode(self.compile))

    @property
    def fast(self) -> bool:
        return self.path == "fast"

    def on(self, path: str) -> ExecPath:
        """The same run on another path (Table 1's second path), recording into the same decisions."""
        return self if path == self.path else replace(self, path=path, decisions=self.decisions)

    def config(self, task: Task) -> FastConfig | None:
        """The task's FastConfig before any per-use decision: on/off applied; auto keeps the device default except
        that the smoke profile never compiles."""
        if not self.fast:
            return None
        cfg = best_config(self.device, task)
        if task == "gatys":  # Gatys stays eager (L-BFGS runs Python in between)
            return cfg
        if self.compile != "auto":
            return with_compile(cfg, self.device, self.compile == "on")
        return with_compile(cfg, self.device, False) if self.profile == "smoke" else cfg

    def train_config(self, name: str, network: str, steps: int, pixels: int,
                     compilations: int = 1) -> FastConfig | None:
        """The FastConfig of training `name` (`steps` planned steps of `pixels` output pixels, a
        bench.training.compile_policy network name), with its compile decision recorded."""
        cfg = self.config("train")
        if cfg is None:
            return None
        decision = training_decision(self.compile, self.device, self.profile, network, steps, pixels, compilations)
        self.decisions["training"][name] = decision.as_dict()
        return with_compile(cfg, self.device, decision.compile)

    def forward_config(self, use: str, network: str, shapes: Iterable[tuple[int, int]],
                       timed: bool = False) -> FastConfig | None:
        """The FastConfig of one forward use (evaluation, outputs, Table 1 when `timed`) over images of these output
        shapes, with its compile decision recorded. Untimed uses see each shape once or a few times: no CUDA graphs
        (one capture per shape, replayed too rarely to pay)."""
        cfg = self.config("inference")
        if cfg is None:
            return None
        decision = forward_decision(self.compile, self.device, self.profile, network, shapes,
                                    default=timed and best_config(self.device, "inference").compile)
        self.decisions["forward"][use] = decision.as_dict()
        cfg = cfg if timed else replace(cfg, cuda_graphs=False)
        return with_compile(cfg, self.device, decision.compile)

    def decision(self, kind: str, name: str) -> Decision | None:
        """A recorded decision (kind: training or forward), or None."""
        d = self.decisions[kind].get(name)
        return None if d is None else Decision(bool(d["compile"]), str(d["why"]))

    def eval_config(self) -> FastConfig | None:
        """Inference over images of many sizes before any decision: compile only with `--compile on`, no CUDA
        graphs (the configuration run.json describes as `evaluation`)."""
        cfg = self.config("inference")
        return None if cfg is None else replace(with_compile(cfg, self.device, self.compile == "on"),
                                                cuda_graphs=False)

    def describe(self) -> dict[str, Any]:
        """run.json's `fast_config`: per task, the FastConfig as a dict with its label (None on reference); on the
        fast path also `compile`: the mode and every decision made so far, with its reason."""
        out: dict[str, Any] = {}
        tasks: tuple[Task, ...] = ("train", "gatys", "inference")
        for task in tasks:
            cfg = self.config(task)
            out[task] = None if cfg is None else cfg.as_dict() | {"label": cfg.label()}
        ev = self.eval_config()
        out["evaluation"] = None if ev is None else ev.as_dict() | {"label": ev.label()}
        if self.fast:
            out["compile"] = {"mode": self.compile, "training": dict(self.decisions["training"]),
                              "forward": dict(self.decisions["forward"])}
        return out

    def run_json(self) -> dict[str, Any]:
        """The keys both harnesses add to run.json."""
        return {"path": self.path, "fast_config": self.describe()}
