"""One measurement of the GPU protocol (bench/gpu/protocol.py), run as its own process, appending each number to a
JSONL file the moment it has it.

Why its own process: a GPU is available rarely and for minutes; a crash, an out-of-memory, a hang in a compiler or a
killed step must not take the numbers measured before it. So every measurement is a process of its own with a time
limit, and every result line is appended (flushed and fsynced) before the next piece of work starts.

    python -m bench.gpu.measure gatys   --device cuda --size 1024 --iterations 500 --jsonl out.jsonl
    python -m bench.gpu.measure forward --device cuda --size 1024 --mode uncompiled --jsonl out.jsonl
    python -m bench.gpu.measure train   --device cuda --task style --size 256 --mode compiled --jsonl out.jsonl
    python -m bench.gpu.measure layout  --device cuda --size 1024 --train-size 256 --jsonl out.jsonl

Records: {"kind", "name", "path" (fast / reference), "mode" (compiled / uncompiled: torch.compile on or off),
"config" (what ran: the FastConfig label, e.g. bf16+graphs+fusednorm: autocast dtype, channels_last, CUDA graphs,
... ; "reference" for the plain fp32 eager module), "device", "device_name", "size", "batch", "median_s", "min_s",
"repeats", "warmup_s" (first calls: compile, capture, autotuning), "peak_mem_bytes" (CUDA), "time"}. The loss
network has random weights: timings do not depend on weight values.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch

from bench.gpu.protocol import append_jsonl
from bench.run.options import add_device_option  # the one --device declaration
from bench.run.provenance import device_name
from perceptual.speed import synchronize

KINDS = ("gatys", "forward", "train", "layout")


def device_info(device: torch.device) -> dict[str, Any]:
    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__}


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    """Warm-up calls (timed together as warmup_s), then `repeats` synchronised calls: median and min seconds."""
    _peak_reset(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    synchronize(device)
    warm = time.perf_counter() - t0
    times, events = [], []
    on_cuda = device.type == "cuda"
    for _ in range(repeats):
        t = time.perf_counter()
        if on_cuda:  # device-side time too: wall >> events means the call is launch-bound (CPU side)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        fn()
        if on_cuda:
            end.record()
            events.append((start, end))
        synchronize(device)
        times.append(time.perf_counter() - t)
    times.sort()
    out = {"median_s": times[len(times) // 2], "min_s": times[0], "repeats": repeats, "warmup_s": warm,
           "peak_mem_bytes": _peak(device)}
    if events:
        gpu = sorted(a.elapsed_time(b) / 1e3 for a, b in events)
        out["gpu_median_s"] = gpu[len(gpu) // 2]
    return out


def _rand(*shape: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def _fast_config(device: torch.device, task: str, mode: str, channels_last: bool | None = None) -> Any:
    """best_config with torch.compile on or off (and the layout that goes with it on CUDA: with_compile), or with
    the layout forced (the layout step)."""
    from perceptual.fast import best_config, with_compile

    cfg = with_compile(best_config(device, task), device, mode == "compiled")  # type: ignore[arg-type]
    return cfg if channels_last is None else replace(cfg, channels_last=channels_last)


# --------------------------------------------------------------------------------------------------- the kinds


def measure_gatys(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """L-BFGS on the fast objective at `size` for `iterations` (after a 5-iteration warm-up), with the L-BFGS the
    device's config names (baselines.lbfgs.DeviceLBFGS where `device_lbfgs`, else torch.optim.LBFGS), then the
    reference objective with torch.optim.LBFGS for as many of (iterations, 100, 20) as fit in --reference-budget-s
    at the measured rate x 3. Each record names the L-BFGS that ran."""
    from baselines.gatys import GatysConfig, stylise
    from perceptual.fast import best_config, fast_objective
    from perceptual.losses import PerceptualObjective
    from perceptual.vgg import LossNetwork

    torch.manual_seed(0)
    objective = PerceptualObjective(LossNetwork(weights="random", device=device),
                                    _rand(1, 3, 256, 256, device=device, seed=1))
    content = _rand(1, 3, args.size, args.size, device=device, seed=2)
    cfg = best_config(device, "gatys")
    fast = fast_objective(objective, cfg)
    lbfgs: Literal["torch", "device"] = "device" if cfg.device_lbfgs else "torch"
    base = {"kind": "gatys", "size": args.size, "mode": "uncompiled", "vgg_weights": "random"}
    t0 = time.perf_counter()
    stylise(fast, content, GatysConfig(iterations=5, lbfgs=lbfgs))  # warm-up: cuDNN autotuning, allocator growth
    synchronize(device)
    warm = time.perf_counter() - t0
    _peak_reset(device)
    run = stylise(fast, content, GatysConfig(iterations=args.iterations, lbfgs=lbfgs))
    at = {int(r["iteration"]): r["wall_time_s"] for r in run.trace if "iteration" in r}
    emit(base | {"name": f"gatys {args.iterations} L-BFGS iterations at {args.size} ({lbfgs} L-BFGS)",
                 "path": "fast", "config": f"{cfg.label()} ({lbfgs} L-BFGS)", "lbfgs": lbfgs,
                 "iterations": args.iterations, "seconds": run.trace[-1]["wall_time_s"], "warmup_s": warm,
                 "seconds_at": {str(n): at[n] for n in (100, 300, 500) if n in at},
                 "final_total": run.final["total"], "evaluations": run.evaluations, "peak_mem_bytes": _peak(device)})
    per_iter = run.trace[-1]["wall_time_s"] / max(args.iterations, 1)
    n_ref = next((n for n in (args.iterations, 100, 20) if n * per_iter * 3 <= args.reference_budget_s), 0)
    if n_ref:
        stylise(objective, content, GatysConfig(iterations=5))
        ref = stylise(objective, content, GatysConfig(iterations=n_ref))
        sec = ref.trace[-1]["wall_time_s"]
        emit(base | {"name": f"gatys {n_ref} L-BFGS iterations at {args.size} (torch L-BFGS)", "path": "reference",
                     "config": "reference (torch L-BFGS)", "lbfgs": "torch", "iterations": n_ref, "seconds": sec,
                     "seconds_per_iterations": sec * args.iterations / n_ref, "final_total": ref.final["total"]})


def _style_net() -> torch.nn.Module:
    from perceptual.nets import TransformNet

    torch.manual_seed(0)
    return TransformNet()


def measure_forward(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """The style network's forward at size x size, batch 1: the fast path in `mode`, then (uncompiled only) the
    reference (plain fp32 eager net(x) under inference_mode)."""
    from perceptual.fast import FastStylizer

    net = _style_net().to(device).eval()
    x = _rand(1, 3, args.size, args.size, device=device)
    base = {"kind": "forward", "name": f"style forward {args.size}", "size": args.size, "batch": 1}
    cfg = _fast_config(device, "inference", args.mode)
    fast = FastStylizer(net, device, config=cfg)
    emit(base | {"path": "fast", "mode": args.mode, "config": cfg.label()}
         | timed(lambda: fast(x), device, args.warmup, args.repeats))
    if args.mode == "uncompiled":
        def ref() -> None:
            with torch.inference_mode():
                net(x)
        emit(base | {"path": "reference", "mode": "uncompiled", "config": "reference"}
             | timed(ref, device, args.warmup, args.repeats))


def _train_problem(task: str, size: int, device: torch.device) -> tuple[torch.nn.Module, Any, Any, Any]:
    """(model, batch, reference loss_fn, fast loss builder) for the style or SR x4 training step."""
    from perceptual.fast import fast_feature_loss, fast_style_loss_fn
    from perceptual.losses import FeatureReconstructionLoss, PerceptualObjective
    from perceptual.nets import SRNet
    from perceptual.vgg import LossNetwork

    torch.manual_seed(0)
    if task == "style":
        objective = PerceptualObjective(LossNetwork(weights="random", device=device),
                                        _rand(1, 3, size, size, device=device, seed=1))
        return (_style_net().to(device), _rand(4, 3, size, size, device=device),
                lambda m, b: objective(m(b), objective.content_targets(b)),
                lambda cfg: fast_style_loss_fn(objective, cfg))
    crit = FeatureReconstructionLoss(LossNetwork(("relu2_2",), weights="random", device=device))

    def sr_loss(c: torch.nn.Module) -> Any:
        return lambda m, b: c(m(b[0]), b[1])
    batch = (_rand(4, 3, size // 4, size // 4, device=device), _rand(4, 3, size, size, device=device, seed=1))
    return SRNet(4).to(device), batch, sr_loss(crit), lambda cfg: sr_loss(fast_feature_loss(crit, cfg))


def measure_train(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """One training step (forward, loss, backward, Adam) of `task`, batch 4: fast path in `mode`, then
    (uncompiled only) the reference step (bench.training.loop's arithmetic: fp32, default Adam, the per-step sync)."""
    from perceptual.fast import FastTrainer, reference_train_step

    name = "style training step (4x{0})" if args.task == "style" else "SR x4 training step (4x{0})"
    base = {"kind": "train", "name": name.format(args.size), "task": args.task, "size": args.size, "batch": 4}
    model, batch, loss, fast_loss = _train_problem(args.task, args.size, device)
    cfg = _fast_config(device, "train", args.mode)
    trainer = FastTrainer(model, fast_loss(cfg), device=device, config=cfg)
    emit(base | {"path": "fast", "mode": args.mode, "config": cfg.label()}
         | timed(lambda: trainer.step(batch), device, args.warmup, args.repeats))
    if args.mode == "uncompiled":
        model, batch, loss, _ = _train_problem(args.task, args.size, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        emit(base | {"path": "reference", "mode": "uncompiled", "config": "reference"}
             | timed(lambda: reference_train_step(model, loss, opt, batch), device, args.warmup, args.repeats))


def measure_layout(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """The fast path without torch.compile in both layouts, NCHW and channels_last: the style forward at `size` and
    the style training step at `train_size`. On CUDA, nn.ReflectionPad2d hands back NCHW whatever its input, so which
    layout wins there is a measurement (perceptual.fast.config.UNCOMPILED_CUDA_CHANNELS_LAST records the decision)."""
    from perceptual.fast import FastStylizer, FastTrainer

    net = _style_net().to(device).eval()
    x = _rand(1, 3, args.size, args.size, device=device)
    for cl in (False, True):
        cfg = _fast_config(device, "inference", "uncompiled", channels_last=cl)
        fast = FastStylizer(net, device, config=cfg)
        emit({"kind": "layout", "name": f"style forward {args.size}, uncompiled", "size": args.size, "batch": 1,
              "path": "fast", "mode": "uncompiled", "config": cfg.label(), "channels_last": cl}
             | timed(partial(fast, x), device, args.warmup, args.repeats))
    size = args.train_size or args.size
    for cl in (False, True):
        model, batch, _, fast_loss = _train_problem("style", size, device)
        cfg = _fast_config(device, "train", "uncompiled", channels_last=cl)
        trainer = FastTrainer(model, fast_loss(cfg), device=device, config=cfg)
        emit({"kind": "layout", "name": f"style training step (4x{size}), uncompiled", "size": size, "batch": 4,
              "path": "fast", "mode": "uncompiled", "config": cfg.label(), "channels_last": cl}
             | timed(partial(trainer.step, batch), device, args.warmup, args.repeats))


MEASURES = {"gatys": measure_gatys, "forward": measure_forward, "train": measure_train, "layout": measure_layout}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    add_device_option(p, required=True, help="cuda or cpu (explicit: no silent fallback)")
    p.add_argument("--jsonl", type=Path, required=True, help="results file; one line appended per number")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--mode", choices=("uncompiled", "compiled"), default="uncompiled",
                   help="torch.compile off or on (the rest of the device's fast path either way)")
    p.add_argument("--task", choices=("style", "sr_x4"), default="style")
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--train-size", type=int, default=None, help="layout: the training step's image size")
    p.add_argument("--reference-budget-s", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--step", default=None, help="the protocol step's name, copied into every record")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_measure: --device {args.device} but CUDA is not available", file=sys.stderr)
        return 2
    from perceptual.device import configure

    settings = configure(device)
    info = device_info(device)

    def emit(record: dict[str, Any]) -> None:
        full = {"step": args.step, **record, **info, "device_settings": settings,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        append_jsonl(args.jsonl, full)
        shown = record.get("median_s", record.get("seconds"))
        print(f"[gpu_measure] {record.get('name')} {record.get('path')} {record.get('mode', '')}: {shown}",
              flush=True)

    MEASURES[args.kind](args, device, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
