"""One measurement of the GPU protocol (bench/gpu_protocol.py), run as its own process, appending each number to a
JSONL file the moment it has it.

Why its own process: a GPU is lent rarely and for minutes; a crash, an out-of-memory, a hang in a compiler or a
killed step must not take the numbers measured before it. So every measurement is a process of its own with a time
limit, and every result line is appended (flushed and fsynced) before the next piece of work starts.

    python -m bench.gpu_measure gatys   --device cuda --size 1024 --iterations 500 --jsonl out.jsonl
    python -m bench.gpu_measure forward --device cuda --size 1024 --mode eager --jsonl out.jsonl
    python -m bench.gpu_measure train   --device cuda --task style --size 256 --mode compiled --jsonl out.jsonl

Records: {"kind", "name", "path" (fast / reference), "mode" (eager / compiled), "device", "device_name", "size",
"batch", "median_s", "min_s", "repeats", "warmup_s" (first calls: compile, capture, autotuning), "peak_mem_bytes"
(CUDA), "config", "time"}. The loss network has random weights: timings do not depend on weight values.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from bench.gpu_protocol import append_jsonl
from perceptual.speed import synchronize

KINDS = ("gatys", "forward", "train")


def device_info(device: torch.device) -> dict[str, Any]:
    from bench.runinfo import device_name

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


def _fast_config(device: torch.device, task: str, mode: str) -> Any:
    from perceptual.fast import best_config

    cfg = best_config(device, task)  # type: ignore[arg-type]
    return replace(cfg, compile=mode == "compiled")


# --------------------------------------------------------------------------------------------------- the kinds


def measure_gatys(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """L-BFGS on the fast objective at `size` for `iterations` (after a 5-iteration warm-up), then the reference
    objective for as many of (iterations, 100, 20) as fit in --reference-budget-s at the measured rate x 3."""
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
    base = {"kind": "gatys", "size": args.size, "mode": "eager", "vgg_weights": "random"}
    # warm-up: cuDNN autotuning, allocator growth
    stylise(fast, content, GatysConfig(iterations=5))
    _peak_reset(device)
    run = stylise(fast, content, GatysConfig(iterations=args.iterations))
    at = {int(r["iteration"]): r["wall_time_s"] for r in run.trace if "iteration" in r}
    emit(base | {"name": f"gatys {args.iterations} L-BFGS iterations at {args.size}", "path": "fast",
                 "config": cfg.label(), "iterations": args.iterations, "seconds": run.trace[-1]["wall_time_s"],
                 "seconds_at": {str(n): at[n] for n in (100, 300, 500) if n in at},
                 "final_total": run.final["total"], "evaluations": run.evaluations, "peak_mem_bytes": _peak(device)})
    per_iter = run.trace[-1]["wall_time_s"] / max(args.iterations, 1)
    n_ref = next((n for n in (args.iterations, 100, 20) if n * per_iter * 3 <= args.reference_budget_s), 0)
    if n_ref:
        stylise(objective, content, GatysConfig(iterations=5))
        ref = stylise(objective, content, GatysConfig(iterations=n_ref))
        sec = ref.trace[-1]["wall_time_s"]
        emit(base | {"name": f"gatys {n_ref} L-BFGS iterations at {args.size}", "path": "reference",
                     "config": "reference", "iterations": n_ref, "seconds": sec,
                     "seconds_per_iterations": sec * args.iterations / n_ref, "final_total": ref.final["total"]})


def _style_net() -> torch.nn.Module:
    from perceptual.nets import TransformNet

    torch.manual_seed(0)
    return TransformNet()


def measure_forward(args: argparse.Namespace, device: torch.device, emit: Callable[[dict[str, Any]], None]) -> None:
    """The style network's forward at size x size, batch 1: the fast path in `mode`, then (eager mode only) the
    reference (plain eager net(x) under inference_mode)."""
    from perceptual.fast import FastStylizer

    net = _style_net().to(device).eval()
    x = _rand(1, 3, args.size, args.size, device=device)
    base = {"kind": "forward", "name": f"style forward {args.size}", "size": args.size, "batch": 1}
    cfg = _fast_config(device, "inference", args.mode)
    fast = FastStylizer(net, device, config=cfg)
    emit(base | {"path": "fast", "mode": args.mode, "config": cfg.label()}
         | timed(lambda: fast(x), device, args.warmup, args.repeats))
    if args.mode == "eager":
        def ref() -> None:
            with torch.inference_mode():
                net(x)
        emit(base | {"path": "reference", "mode": "eager", "config": "reference"}
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
    """One training step (forward, loss, backward, Adam) of `task`, batch 4: fast path in `mode`, then (eager
    only) the reference step (bench.train's arithmetic: fp32, default Adam, the per-step sync)."""
    from perceptual.fast import FastTrainer, reference_train_step

    name = "style training step (4x{0})" if args.task == "style" else "SR x4 training step (4x{0})"
    base = {"kind": "train", "name": name.format(args.size), "task": args.task, "size": args.size, "batch": 4}
    model, batch, loss, fast_loss = _train_problem(args.task, args.size, device)
    cfg = _fast_config(device, "train", args.mode)
    trainer = FastTrainer(model, fast_loss(cfg), device=device, config=cfg)
    emit(base | {"path": "fast", "mode": args.mode, "config": cfg.label()}
         | timed(lambda: trainer.step(batch), device, args.warmup, args.repeats))
    if args.mode == "eager":
        model, batch, loss, _ = _train_problem(args.task, args.size, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        emit(base | {"path": "reference", "mode": "eager", "config": "reference"}
             | timed(lambda: reference_train_step(model, loss, opt, batch), device, args.warmup, args.repeats))


MEASURES = {"gatys": measure_gatys, "forward": measure_forward, "train": measure_train}


def main(argv: list[str] | None = None) -> int:
    from bench.options import add_device_option  # the one --device declaration

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    add_device_option(p, required=True, help="cuda or cpu (explicit: no silent fallback)")
    p.add_argument("--jsonl", type=Path, required=True, help="results file; one line appended per number")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--mode", choices=("eager", "compiled"), default="eager")
    p.add_argument("--task", choices=("style", "sr_x4"), default="style")
    p.add_argument("--iterations", type=int, default=500)
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
