"""The one place that sets the process's backend flags (cuDNN autotuning, TF32, deterministic choices) for a device.

Why a module of its own: the SR harness used to set cudnn.benchmark and TF32 itself, the style harness (and so the
Gatys baseline) never did, and the benchmarks relied on torch's defaults, so the same network ran under different
arithmetic depending on the entry point. Every harness, the Gatys runs and the benchmarks call `configure(device)`,
and run.json records what it returns under `device_settings`.

What it guarantees:
- CUDA: cudnn.benchmark on (per-shape algorithm search), TF32 on for convolutions and matmuls
  (float32 matmul precision "high"; this includes the Gram matrices of the style loss, whose fp32 inputs and
  accumulation are then TF32 products: see perceptual.losses.gram_matrix), cudnn.deterministic off; with `deterministic=True` (or PERCEPTUAL_DETERMINISTIC=1)
  instead cudnn.benchmark off, cudnn.deterministic on and torch.use_deterministic_algorithms(warn_only=True).
- CPU: nothing is changed (CPU results stay bit-identical to what they were); the flags are only read and recorded.
- The returned dict is read back from torch after setting (what is in force, not what was asked for), plain JSON.
"""
from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["configure", "current_settings"]

ENV_DETERMINISTIC = "PERCEPTUAL_DETERMINISTIC"


def current_settings(device: torch.device | str) -> dict[str, Any]:
    """The backend flags in force now, as run.json's `device_settings` records them."""
    dev = torch.device(device)
    return {
        "device_type": dev.type,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "torch_threads": torch.get_num_threads(),
    }


def configure(device: torch.device | str, *, deterministic: bool | None = None) -> dict[str, Any]:
    """Set the backend flags for `device` (see the module docstring) and return the settings now in force, with
    `set_by` naming this function and `applied` saying whether anything was set (False on CPU)."""
    dev = torch.device(device)
    if deterministic is None:
        deterministic = os.environ.get(ENV_DETERMINISTIC, "") not in ("", "0")
    applied = dev.type == "cuda"
    if applied:
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    return current_settings(dev) | {"set_by": "perceptual.device.configure", "applied": applied,
                                    "deterministic_requested": bool(deterministic)}
