"""`--compile auto`: whether torch.compile pays for one training or one batch of forward passes, from measured costs.

Why a module of its own: the rule must be the same in both harnesses, stated once with the numbers it rests on, and
its every answer must carry its reason (run.json records each decision as {"compile": bool, "why": str}).

The rule: compile when the time the compiled step saves over the planned work exceeds the time compiling costs.
  training: planned steps x saving per step  >  compilations x compile time
  forward:  sum over images of the saving per image  >  distinct input shapes x compile time (one graph per shape)
The saving per step or image comes from the measurement nearest in size (log pixels), scaled by pixels from there;
the compile time is that measurement's. Scaling alone from 4 x 288 px overestimated the saving at 4 x 72 px by 5.6x
(a whole-run measurement: break-even ~1,720 steps, not the 648 scaling predicted), so sizes are measured, not
extrapolated, where it matters. A training that runs in
chunks (the SR Set5 curve, the style trend) compiles once per process: each chunk's new step reuses the compiled
graph (dynamo's cache: same model, same loss; checked with a counting backend), so the harnesses pass one
compilation per training. The smoke profile never compiles (the golden files are eager runs). Networks and devices without a
measurement here keep the device's default (CPU: eager; CUDA: perceptual.fast.best_config, which compiles
training and Table 1's timed forward, and leaves the many-shape evaluation eager).

Measured costs (CPU, 2 vCPUs, torch 2.14.1, 1 thread, fp32):
- training: results/bench/cpu_2026-12-02_train_steps.md. SR x4 l_feat step at 4 x 288 px: 6.61 s eager, 4.71 s
  compiled, 77 s to compile (break-even ~40 steps at that size); style step at 4 x 256 px: 12.00 s eager, 8.06 s
  compiled, 206 s to compile (~52 steps). SR x4 l_feat at 4 x 72 px (the quick and cpu-x4 patches), from whole
  runs of 800 iterations: results/bench/cpu_2026-12-07_compile_whole_run.md: 0.2223 s eager, 0.2010 s compiled,
  36.7 s to compile (break-even ~1,720 steps).
- forward: results/bench/cpu_2026-11-26_summary.md ("torch.compile 1.3-2x faster but 60-90 s of compilation per
  shape"): the cautious ends (1.3x, 90 s) applied to the measured eager forward (SR x4 to 512 x 512 px: 2.39 s;
  style at 1024 x 1024 px: 13.58 s).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["COMPILE_MODES", "FORWARD_COSTS", "TRAIN_COSTS", "Decision", "MeasuredCost", "forward_decision",
           "normalise_mode", "training_decision"]

COMPILE_MODES = ("auto", "on", "off")
TRAIN_SOURCE = "results/bench/cpu_2026-12-02_train_steps.md"
FORWARD_SOURCE = "results/bench/cpu_2026-11-26_summary.md"
FORWARD_SPEEDUP = 1.3  # the low end of the measured 1.3-2x
FORWARD_COMPILE_S = 90.0  # the high end of the measured 60-90 s per shape


@dataclass(frozen=True)
class Decision:
    """One compile decision and its reason, as run.json records it."""

    compile: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"compile": self.compile, "why": self.why}


@dataclass(frozen=True)
class MeasuredCost:
    """One measured eager-vs-compiled comparison: `eager_s` and `compiled_s` per step (or per image) of `pixels`
    output pixels, after `compile_s` of compiling."""

    what: str
    eager_s: float
    compiled_s: float
    compile_s: float
    pixels: int
    source: str

    def saving_s(self, pixels: int) -> float:
        """Seconds one step (image) of `pixels` output pixels saves when compiled (scaled by pixels)."""
        return (self.eager_s - self.compiled_s) * pixels / self.pixels

    def break_even(self, pixels: int, compilations: int = 1) -> float:
        """Steps (images of one shape) after which `compilations` compilations have paid for themselves."""
        return compilations * self.compile_s / self.saving_s(pixels)


WHOLE_RUN_SOURCE = "results/bench/cpu_2026-12-07_compile_whole_run.md"
TRAIN_COSTS: dict[str, MeasuredCost | tuple[MeasuredCost, ...]] = {  # per CPU training network (SRCNN: not
    # measured, stays eager); several measurements: the nearest in size is used
    "sr": (MeasuredCost("SR x4 l_feat step, 4 x 72 px", 0.2223, 0.2010, 36.7, 4 * 72 * 72, WHOLE_RUN_SOURCE),
           MeasuredCost("SR x4 l_feat step, 4 x 288 px", 6.61, 4.71, 77.0, 4 * 288 * 288, TRAIN_SOURCE)),
    "style": MeasuredCost("style step, 4 x 256 px", 12.00, 8.06, 206.0, 4 * 256 * 256, TRAIN_SOURCE),
}
FORWARD_COSTS: dict[str, MeasuredCost] = {  # per CPU forward network (output pixels)
    "sr": MeasuredCost("SR x4 forward to 512 x 512 px", 2.39, 2.39 / FORWARD_SPEEDUP, FORWARD_COMPILE_S,
                       512 * 512, FORWARD_SOURCE),
    "style": MeasuredCost("style forward at 1024 x 1024 px", 13.58, 13.58 / FORWARD_SPEEDUP, FORWARD_COMPILE_S,
                          1024 * 1024, FORWARD_SOURCE),
}


def nearest_cost(costs: MeasuredCost | tuple[MeasuredCost, ...], pixels: int) -> MeasuredCost:
    """The measurement nearest to a step of `pixels` pixels in log size (the first of a tie: list the smaller,
    more cautious measurement first)."""
    if isinstance(costs, MeasuredCost):
        return costs
    return min(costs, key=lambda c: abs(math.log(pixels / c.pixels)))


def normalise_mode(value: bool | str | None) -> str:
    """--compile's value as one of COMPILE_MODES (True/False/None, the old flag's values, read as on/off/auto)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {value!r}")
    return value


def _fixed(mode: str, profile: str) -> Decision | None:
    if mode == "on":
        return Decision(True, "--compile on")
    if mode == "off":
        return Decision(False, "--compile off")
    if profile == "smoke":
        return Decision(False, "auto: the smoke profile never compiles (its results are the eager golden files)")
    return None


def training_decision(mode: bool | str | None, device: torch.device | str, profile: str, network: str, steps: int,
                      pixels: int, compilations: int = 1) -> Decision:
    """Compile one training of `steps` planned steps of `pixels` output pixels each (batch x H x W), built
    `compilations` times (once per chunk)? `network`: a TRAIN_COSTS key (sr, style) or another name (srcnn)."""
    fixed = _fixed(normalise_mode(mode), profile)
    if fixed is not None:
        return fixed
    if torch.device(device).type == "cuda":
        return Decision(True, "auto: CUDA keeps the device default (best_config compiles training); no CUDA "
                              "break-even is measured here")
    costs = TRAIN_COSTS.get(network)
    if costs is None:
        return Decision(False, f"auto: no measured compile break-even for the {network} training on a CPU; eager")
    cost = nearest_cost(costs, pixels)
    need = cost.break_even(pixels, compilations)
    why = (f"auto: {steps} planned steps {'>' if steps > need else '<='} break-even {need:.0f} steps "
           f"({compilations} compilation(s) x {cost.compile_s:g} s / {cost.saving_s(pixels):.3g} s saved per step "
           f"of {pixels} px, scaled from the measured {cost.what}: {cost.eager_s:g} s eager, {cost.compiled_s:g} s "
           f"compiled; {cost.source})")
    return Decision(steps > need, why)


def forward_decision(mode: bool | str | None, device: torch.device | str, profile: str, network: str,
                     shapes: Iterable[tuple[int, int]], default: bool = False) -> Decision:
    """Compile a forward pass used on images of these output `shapes` (H, W), one entry per image (a shape seen
    twice is compiled once)? `default`: the device's choice on CUDA (Table 1's timed forward compiles there)."""
    fixed = _fixed(normalise_mode(mode), profile)
    if fixed is not None:
        return fixed
    if torch.device(device).type == "cuda":
        return Decision(default, f"auto: CUDA keeps the device default ({'compiled' if default else 'eager'}); no "
                                 f"CUDA break-even is measured here")
    cost = FORWARD_COSTS.get(network)
    if cost is None:
        return Decision(False, f"auto: no measured compile break-even for the {network} forward on a CPU; eager")
    counts = Counter(shapes)
    saved = sum(n * cost.saving_s(h * w) for (h, w), n in counts.items())
    spent = len(counts) * cost.compile_s
    why = (f"auto: {sum(counts.values())} image(s) in {len(counts)} shape(s) save {saved:.3g} s "
           f"{'>' if saved > spent else '<='} {spent:g} s of compiling ({cost.compile_s:g} s per shape; saving "
           f"scaled from the measured {cost.what}: {cost.eager_s:g} s eager, {FORWARD_SPEEDUP:g}x compiled; "
           f"{cost.source})")
    return Decision(saved > spent, why)
