"""Training steps on the fast path (`FastTrainer`: Adam, optional compile and whole-step CUDA graphs, a guard
against non-finite losses), the reference step it is compared with, and optimiser-state loading across paths."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from perceptual.fast.config import CL, FastConfig, _autocast, _backend_flags, _compile, _resolve, _to_layout
from perceptual.fast.surgery import _shadow, pad_thin_convs_
from perceptual.norms import fuse_instance_norms_, preserve_channels_last_

LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


def reference_train_step(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                         batch: Any) -> dict[str, float]:
    """One iteration exactly as bench.training.loop.train's reference path (bench.training.steps.ReferenceStep) runs it (no
    autocast): per-term batch means (synchronised to floats, as its NaN check does), zero_grad, backward of the mean
    total, optimiser step."""
    terms = loss_fn(model, batch)
    names = ["total", *[k for k in terms if k != "total"]]
    means = torch.stack([terms[k].float().mean() for k in names])
    values = means.detach().tolist()
    optimizer.zero_grad(set_to_none=True)
    means[0].backward()
    optimizer.step()
    return dict(zip(names, values))


class _FastModel(nn.Module):
    """The trained network as the loss function sees it: input in the fast layout, forward under autocast, fp32
    output (so the loss arithmetic stays fp32)."""

    def __init__(self, model: nn.Module, config: FastConfig, device: torch.device):
        super().__init__()
        self.model, self.config, self.device = model, config, device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device, self.config):
            y = self.model(_to_layout(x, self.config))
        return y.float()


def _map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_map_tensors(b, fn) for b in batch)
    if isinstance(batch, dict):
        return {k: _map_tensors(v, fn) for k, v in batch.items()}
    return batch


def _copy_into(dst: Any, src: Any) -> None:
    if isinstance(dst, torch.Tensor):
        if dst.shape != src.shape:
            raise ValueError(f"FastTrainer with CUDA graphs needs a fixed batch shape: captured {tuple(dst.shape)}, "
                             f"got {tuple(src.shape)}; drop the last partial batch or set cuda_graphs=False")
        dst.copy_(src, non_blocking=True)
    elif isinstance(dst, (list, tuple)):
        for d, s in zip(dst, src):
            _copy_into(d, s)
    elif isinstance(dst, dict):
        for k in dst:
            _copy_into(dst[k], src[k])


class FastTrainer:
    """Training steps of `model` on `loss_fn(model, batch) -> {"total": (N,), term: (N,), ...}` (bench.training.loop's
    contract) with Adam, on the fast path. Trains `model` in place (its parameters; channels_last changes only
    their memory layout).

    `step(batch)` returns the per-term batch means as one fp32 tensor on `device` (order `self.terms`), a fresh
    tensor each call (safe to keep across steps). It does not synchronise before the backward pass: read it when
    you need the numbers. With CUDA graphs the first step captures the whole step (forward, backward, optimiser)
    after three warm-up steps whose effect on the weights and optimiser state is undone, so the trajectory is the
    reference one; later batches must have the captured shape.

    Non-finite losses: a step whose means (after `reduce`, so on any rank) hold a NaN or Inf does not update the
    model or the optimiser state, and neither does any later step (the guard is sticky), so the model stays the last
    good one until the caller reads the values and stops. How depends on the optimiser (`self.guard`):
    - "device" (fused Adam): the finiteness flag is computed on the device and handed to the fused kernel as
      `found_inf` (as GradScaler does): no host read at all inside the step; `host_values` stays None.
    - "host" (the default Adam, e.g. the CPU reference arithmetic): one read of the means after the backward pass,
      before the optimiser step (on a CPU this costs nothing); the values are kept in `host_values`.
    - "none": CUDA graphs with the default Adam (no found_inf input to capture): the caller's check is the only one.

    `wrap(module)` (e.g. DistributedDataParallel) is applied to the prepared module the loss function sees; `reduce`
    (a step argument) maps the local means to what every rank agrees on (an all-reduce), before the guard.
    Build the loss with the fast loss helpers (`fast_style_loss_fn`, `fast_feature_loss`) to put the loss network
    on the fast path too; fp16 is refused (it needs a GradScaler: use bf16, or bench.training.loop's path='reference').
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, *, device: torch.device | str = "cpu", lr: float = 1e-3,
                 param_groups: Sequence[dict[str, Any]] | None = None, config: FastConfig | None = None,
                 wrap: Callable[[nn.Module], nn.Module] | None = None, **overrides: Any):
        self.device = torch.device(device)
        self.config = _resolve(config, self.device, "train", **overrides)
        cfg = self.config
        if cfg.dtype == torch.float16:
            raise ValueError("FastTrainer: fp16 training needs loss scaling; use dtype=bfloat16 (or float32)")
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=CL)
            # in place (a subclass, same parameters and state_dict; NCHW inputs take torch's kernel), so a DDP
            # wrapper of self.model still sees every forward
            preserve_channels_last_(self.model)
        if cfg.fused_norm:
            fuse_instance_norms_(self.model)  # in place as well: statistics + one scale-and-shift pass
        module = self.model
        if cfg.pad_channels:
            module = _shadow(self.model)
            pad_thin_convs_(module, cfg.pad_channels)
        if wrap is not None:
            module = wrap(module)
        self._fmodel = _FastModel(module, cfg, self.device)
        self.loss_fn = loss_fn
        groups = [dict(g) for g in param_groups] if param_groups is not None else [{"params": list(model.parameters())}]
        kwargs: dict[str, Any] = {"lr": lr}
        if cfg.fused_adam:
            kwargs["fused"] = True
        if cfg.cuda_graphs:
            kwargs["capturable"] = True
        self.optimizer = torch.optim.Adam(groups, **kwargs)
        # graphs without fused Adam: no guard can be captured (the default Adam has no found_inf input)
        self.guard = "device" if cfg.fused_adam else "none" if cfg.cuda_graphs else "host"
        self._bad_host = False
        self._bad = torch.zeros((), dtype=torch.bool, device=self.device)  # sticky: some step was non-finite
        self._found_inf = torch.zeros((), dtype=torch.float32, device=self.device)
        self.host_values: list[float] | None = None
        self._loss = _compile(self._loss_means, cfg) if cfg.compile else self._loss_means
        self.terms: list[str] = []
        self._graph: tuple[torch.cuda.CUDAGraph, Any, torch.Tensor] | None = None
        self.steps = 0

    def load_optimizer_state(self, state: Mapping[str, Any]) -> None:
        """Load an Adam state_dict written by either path (bench.training.loop's checkpoints); see load_optimizer_state."""
        load_optimizer_state(self.optimizer, state)

    def _loss_means(self, batch: Any) -> dict[str, torch.Tensor]:
        terms = self.loss_fn(self._fmodel, batch)
        if "total" not in terms:
            raise KeyError(f"FastTrainer: loss_fn returned {sorted(terms)}; it must include 'total'")
        return {k: terms[k].float().mean() for k in ["total", *[k for k in terms if k != "total"]]}

    def _eager_step(self, batch: Any, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        means = self._loss(batch)
        if not self.terms:
            self.terms = list(means)
        logged = torch.stack([means[k].detach() for k in self.terms])
        if reduce is not None:
            logged = reduce(logged)
        if self.guard != "host":
            if self.guard == "none":
                means["total"].backward()
                self.optimizer.step()
                return logged
            torch.logical_or(self._bad, ~torch.isfinite(logged).all(), out=self._bad)
            self._found_inf.copy_(self._bad)
            self.optimizer.found_inf = self._found_inf  # type: ignore[attr-defined]  # read by the fused kernel
            means["total"].backward()
            self.optimizer.step()
            return logged
        means["total"].backward()
        values = logged.tolist()  # the one host read of the step, after the backward pass
        self.host_values = values
        self._bad_host = self._bad_host or not all(math.isfinite(v) for v in values)
        if not self._bad_host:
            self.optimizer.step()
        return logged

    def _to_device(self, batch: Any) -> Any:
        return _map_tensors(batch, lambda t: _to_layout(t.to(self.device, non_blocking=True), self.config)
                            if t.is_floating_point() else t.to(self.device, non_blocking=True))

    def step(self, batch: Any, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """One training step; returns the per-term batch means, after `reduce` when given (see the class
        docstring)."""
        self.model.train()
        self.host_values = None
        with _backend_flags(self.device, self.config):
            if not self.config.cuda_graphs:
                out = self._eager_step(self._to_device(batch), reduce)
            else:
                if reduce is not None:
                    raise ValueError("FastTrainer: CUDA graphs cannot capture a cross-rank reduce (DDP); set "
                                     "cuda_graphs=False under torchrun")
                with torch.cuda.device(self.device):  # capture and replay on the trainer's own device
                    if self._graph is None:
                        self._capture(self._to_device(batch))
                    graph, static, static_out = self._graph  # type: ignore[misc]
                    _copy_into(static, self._to_device(batch))
                    graph.replay()
                    out = static_out.clone()
        self.steps += 1
        return out

    def losses(self, out: torch.Tensor) -> dict[str, float]:
        """A step's result as {term: float} (synchronises)."""
        return dict(zip(self.terms, out.tolist()))

    def _state_tensors(self) -> list[torch.Tensor]:
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        return [t for t in tensors if isinstance(t, torch.Tensor)]

    def _capture(self, batch: Any) -> None:
        static = _map_tensors(batch, lambda t: t.clone())  # never alias the caller's tensors
        saved = [t.detach().clone() for t in self._state_tensors()]
        had_state = {id(p): {k: v.clone() for k, v in self.optimizer.state[p].items() if isinstance(v, torch.Tensor)}
                     for g in self.optimizer.param_groups for p in g["params"] if p in self.optimizer.state}
        bad = self._bad.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager_step(static)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():  # undo the warm-up: weights, buffers, optimiser state, guard as before
            for t, s in zip(self._state_tensors(), saved):
                t.copy_(s)
            for g in self.optimizer.param_groups:
                for p in g["params"]:
                    before = had_state.get(id(p))
                    for k, v in self.optimizer.state[p].items():
                        if isinstance(v, torch.Tensor):
                            v.copy_(before[k]) if before is not None and k in before else v.zero_()
            self._bad.copy_(bad)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # torch's default capture stream is the current device's; thread_local: the training DataLoader's pin-memory
        # thread calling cudaHostAlloc during the capture does not invalidate it (the default "global" mode would)
        with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
            out = self._eager_step(static)
        self._graph = (graph, static, out)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """optimizer.load_state_dict(state), keeping the optimizer's own execution flags (fused, capturable, foreach:
    torch would take the saved ones, so a reference run resumed on the fused path, or the reverse, would silently
    switch implementation), with the step counters where those flags need them (device for fused / capturable,
    CPU otherwise) and each moment tensor in its parameter's memory layout (channels_last)."""
    flags = [{k: g.get(k) for k in ("fused", "capturable", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(dict(state))
    for group, own in zip(optimizer.param_groups, flags):
        group.update(own)
        on_device = bool(own.get("fused") or own.get("capturable"))
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for k, v in list(st.items()):
                if not isinstance(v, torch.Tensor):
                    continue
                if k == "step":
                    st[k] = v.to(p.device if on_device else torch.device("cpu"), torch.float32)
                elif v.shape == p.shape:
                    st[k] = torch.empty_like(p, memory_format=torch.preserve_format).copy_(v)


def fast_train_step(trainer: FastTrainer, batch: Any) -> torch.Tensor:
    """Functional spelling of `trainer.step(batch)`."""
    return trainer.step(batch)
