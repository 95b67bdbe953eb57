"""One training step behind one interface, on either path, for the shared loop (bench.training.loop.train).

Why a module of its own: the loop must not care how a step is executed (`--path reference`: the plain eager step;
`--path fast`: perceptual.fast.FastTrainer, bit-identical to the reference on a CPU). Guarantees for both paths: a
step with a NaN or Inf never updates the model or optimiser (on the fast path nor does any later step), and either
path's checkpoint restores. In full: docs/training.md.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from perceptual.fast import FastConfig, FastTrainer, load_optimizer_state

__all__ = ["PATHS", "FastStep", "ReferenceStep", "StepOut"]

PATHS: tuple[str, ...] = ("fast", "reference")
LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
Reduce = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepOut:
    """One step's logged values: `values` on the device; `host` once read (reading synchronises)."""

    values: torch.Tensor
    host: list[float] | None = None

    def read(self) -> list[float]:
        if self.host is None:
            self.host = self.values.tolist()
        return self.host


class ReferenceStep:
    """The reference iteration: autocast per `amp`, per-term means read on the host before the backward pass (the
    NaN check), zero_grad, backward of the mean total (scaled when fp16), optimiser step."""

    path = "reference"

    def __init__(self, module: nn.Module, loss_fn: LossFn, groups: Sequence[dict[str, Any]], lr: float,
                 device: torch.device, amp: str | None):
        self.module, self.loss_fn, self.device = module, loss_fn, device
        self.optimizer = torch.optim.Adam([dict(g) for g in groups], lr=lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
        self.terms: list[str] = []
        self.config: FastConfig | None = None

    def load_optimizer_state(self, state: Mapping[str, Any]) -> None:
        load_optimizer_state(self.optimizer, state)  # stays the default Adam even from a fused-path checkpoint

    def step(self, batch: Any, reduce: Reduce | None = None) -> StepOut:
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            terms = self.loss_fn(self.module, batch)
        if "total" not in terms:
            raise KeyError(f"loss_fn returned {sorted(terms)}; it must include 'total'")
        names = ["total", *[k for k in terms if k != "total"]]
        self.terms = names
        means = torch.stack([terms[k].float().mean() for k in names])
        logged = means.detach() if reduce is None else reduce(means.detach())
        out = StepOut(logged, logged.tolist())
        if not all(math.isfinite(v) for v in out.read()):
            return out  # never applied: the loop raises NonFiniteLossError on reading it
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(means[0]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return out


class FastStep:
    """perceptual.fast.FastTrainer behind the loop's interface (see FastTrainer for the guard and the reads)."""

    path = "fast"

    def __init__(self, model: nn.Module, loss_fn: LossFn, groups: Sequence[dict[str, Any]], lr: float,
                 device: torch.device, config: FastConfig, wrap: Callable[[nn.Module], nn.Module]):
        self.trainer = FastTrainer(model, loss_fn, device=device, lr=lr, param_groups=groups, config=config,
                                   wrap=wrap)
        self.optimizer = self.trainer.optimizer
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)  # checkpoint format: always a scaler entry
        self.config = self.trainer.config

    @property
    def terms(self) -> list[str]:
        return self.trainer.terms

    def load_optimizer_state(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_optimizer_state(state)

    def step(self, batch: Any, reduce: Reduce | None = None) -> StepOut:
        values = self.trainer.step(batch, reduce)
        return StepOut(values, self.trainer.host_values)
