"""The fast path's settings (`FastConfig`, `best_config`), its stated tolerances against the reference path, and
the execution helpers every fast module shares (dtype names, autocast, cuDNN flags, torch.compile, layout)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch

Task = Literal["inference", "train", "gatys"]
TASKS: tuple[str, ...] = ("inference", "train", "gatys")
CL = torch.channels_last
_DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}

# Max |fast - reference| allowed for network outputs on [0, 1] images (outputs clamped to [0, 1], as they are
# displayed and scored), per device type and compute dtype; MEAN_ABS_TOLERANCE bounds the mean over pixels.
# Measured here (CPU, random-weight networks, outputs of std ~0.34): fp32 with channels_last / batching / tiling
# differs only in summation order, max 6e-6 (bound 5e-5); bf16 autocast max 4.0e-2, mean 3.7e-3 (bounds 6e-2 and
# 6e-3: well under 1/255 on average, "no visible change"); fp16 autocast max 5.8e-3, mean 4.6e-4 (bounds 1e-2, 1e-3).
# CUDA fp32 runs TF32 convolutions (torch's default), so its bound is that of ~10-bit mantissas; the CUDA bounds
# were not measured here (no GPU): bench/gpu/check.py measures and checks them.
TOLERANCES: dict[str, dict[str, float]] = {
    "cpu": {"float32": 5e-5, "bfloat16": 6e-2, "float16": 1e-2},
    "cuda": {"float32": 1e-2, "bfloat16": 6e-2, "float16": 1e-2},
}
MEAN_ABS_TOLERANCE: dict[str, dict[str, float]] = {
    "cpu": {"float32": 1e-5, "bfloat16": 6e-3, "float16": 1e-3},
    "cuda": {"float32": 1e-3, "bfloat16": 6e-3, "float16": 1e-3},
}
# Training: relative difference of each per-term batch-mean loss, fast vs reference from the same start.
# The first step sees identical weights, so only the forward's arithmetic differs (fp32: summation order, measured
# <= 2e-7; bf16: measured ~1e-2). Later steps also carry Adam's early updates, which are ~lr * sign(gradient) and so
# amplify rounding differences in near-zero gradient entries: fp32 channels_last measured 2.6e-3 after 3 steps.
# The CPU default fast path runs the reference arithmetic and is checked for equality to 1e-6.
LOSS_RTOL_FIRST: dict[str, float] = {"float32": 1e-5, "bfloat16": 3e-2, "float16": 1e-2}
LOSS_RTOL_LATER: dict[str, float] = {"float32": 1e-2, "bfloat16": 5e-2, "float16": 3e-2}


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"fast path dtype must be float32, bfloat16 or float16, got {dtype}")
        return dtype
    try:
        return _DTYPE_NAMES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown fast path dtype {dtype!r}: use one of {', '.join(_DTYPE_NAMES)}") from None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tolerance(device: torch.device | str, dtype: torch.dtype | str, kind: Literal["max", "mean"] = "max") -> float:
    """The bound `TOLERANCES` (max abs) or `MEAN_ABS_TOLERANCE` (mean abs) states for outputs of this device type
    and compute dtype."""
    dev = "cuda" if torch.device(device).type == "cuda" else "cpu"
    table = TOLERANCES if kind == "max" else MEAN_ABS_TOLERANCE
    return table[dev][_dtype_name(_as_dtype(dtype))]


@dataclass(frozen=True)
class FastConfig:
    """How the fast path executes (docs/fast-path.md describes each switch). Defaults = the reference execution
    plus the exact algorithmic savings (truncated content targets, folded BN)."""

    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    dynamic: bool | None = False
    cuda_graphs: bool = False
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    pad_channels: int = 0
    truncate_content: bool = True
    fold_batchnorm: bool = True
    device_lbfgs: bool = False
    fused_norm: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _as_dtype(self.dtype))
        if self.pad_channels < 0 or self.pad_channels > 64:
            raise ValueError(f"FastConfig.pad_channels must be 0 (off) or a channel count up to 64, "
                             f"got {self.pad_channels}")

    def check(self, device: torch.device | str) -> None:
        """Refuse settings the device cannot run, with the fix in the message."""
        device = torch.device(device)
        if self.cuda_graphs and device.type != "cuda":
            raise ValueError(f"FastConfig(cuda_graphs=True) needs a CUDA device, got {device}; set cuda_graphs=False")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for but torch.cuda.is_available() is False; use device='cpu'")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description (benchmark extra_info, run.json)."""
        return asdict(self) | {"dtype": _dtype_name(self.dtype)}

    def label(self) -> str:
        """Short human-readable summary such as 'bf16+cl+compile+graphs'."""
        parts = [{"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[_dtype_name(self.dtype)]]
        parts += [name for name, on in (("cl", self.channels_last), ("compile", self.compile),
                                        ("graphs", self.cuda_graphs), ("fusedadam", self.fused_adam),
                                        ("cudnnbench", self.cudnn_benchmark),
                                        ("devlbfgs", self.device_lbfgs), ("fusednorm", self.fused_norm)) if on]
        if self.pad_channels:
            parts.append(f"pad{self.pad_channels}")
        return "+".join(parts)


def best_config(device: torch.device | str, task: Task = "inference") -> FastConfig:
    """The fast path's default for a device and task ('inference', 'train' or 'gatys').

    CPU: the reference layout and precision (channels_last and bf16 measured slower on the development CPU, compile
    too slow to compile for short jobs); only the exact algorithmic savings are on, and Gatys keeps
    torch.optim.LBFGS (its host reads cost nothing on a CPU), so CPU results equal the reference path's bit for bit.
    CUDA: bf16 autocast, channels_last, cuDNN autotuning, the fused instance norm; compile + CUDA graphs for inference
    and training (fused Adam for training; without compile see `with_compile` for the layout); the Gatys evaluation
    stays eager (L-BFGS runs Python between evaluations; compile there is a sweep option) and runs baselines.lbfgs.DeviceLBFGS (one host read per iteration instead of several per history
    entry).
    """
    if task not in TASKS:
        raise ValueError(f"best_config(task={task!r}): choose one of {', '.join(TASKS)}")
    device = torch.device(device)
    if device.type != "cuda":
        return FastConfig()
    if task == "gatys":
        return FastConfig(dtype=torch.bfloat16, channels_last=True, cudnn_benchmark=True, device_lbfgs=True)
    return FastConfig(dtype=torch.bfloat16, channels_last=True, compile=True, cuda_graphs=True,
                      cudnn_benchmark=True, fused_adam=task == "train", fused_norm=True)


# The layout of the style and SR networks on CUDA without torch.compile. nn.ReflectionPad2d's CUDA kernel returns
# NCHW whatever its input's layout (the CPU kernel keeps channels_last, so no CPU benchmark shows it), so each padded
# convolution of a channels_last network converts the layout twice forward, and more backward. Inductor generates
# its own padding kernels, so compiled CUDA keeps channels_last. NCHW here is a decision from how the kernels behave,
# not a measurement: the GPU check's layout step times both layouts and is what should confirm or change it.
UNCOMPILED_CUDA_CHANNELS_LAST = False


def with_compile(config: FastConfig, device: torch.device | str, compile: bool) -> FastConfig:
    """`config` with torch.compile on or off and, on CUDA, the layout that goes with that choice (channels_last
    compiled; UNCOMPILED_CUDA_CHANNELS_LAST without compile). Unchanged layout on other devices or when compile
    does not change."""
    if torch.device(device).type != "cuda" or config.compile == compile:
        return replace(config, compile=compile)
    return replace(config, compile=compile, channels_last=compile or UNCOMPILED_CUDA_CHANNELS_LAST)


def _resolve(config: FastConfig | None, device: torch.device, task: Task, **overrides: Any) -> FastConfig:
    cfg = config if config is not None else best_config(device, task)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        cfg = replace(cfg, **given)
    cfg.check(device)
    return cfg


def _autocast(device: torch.device, cfg: FastConfig) -> contextlib.AbstractContextManager:
    enabled = cfg.dtype != torch.float32
    # CUDA graphs: the autocast weight-cast cache must not outlive a capture (PyTorch's CUDA-graph notes).
    return torch.autocast(device.type, dtype=cfg.dtype, enabled=enabled, cache_enabled=not cfg.cuda_graphs)


@contextlib.contextmanager
def _backend_flags(device: torch.device, cfg: FastConfig) -> Iterator[None]:
    """cuDNN autotuning on for the duration of a fast call (only that flag: TF32 and precision settings are left as
    the caller has them)."""
    if device.type != "cuda" or not cfg.cudnn_benchmark:
        yield
        return
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def _allow_recompiles() -> None:
    """Each input shape is its own static graph; the suite compiles more shapes than dynamo's default limit (8) per
    code object, and hitting it would silently fall back to eager."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < 64:
            setattr(dynamo_config, name, 64)


def _compile(fn: Callable, cfg: FastConfig) -> Callable:
    """torch.compile with inductor; $PERCEPTUAL_COMPILE_BACKEND names another backend (the CPU rehearsal of the GPU
    check uses aot_eager: same graphs, no code generation)."""
    import os

    _allow_recompiles()
    backend = os.environ.get("PERCEPTUAL_COMPILE_BACKEND") or "inductor"
    mode = cfg.compile_mode if backend == "inductor" else None
    return torch.compile(fn, backend=backend, mode=mode, dynamic=cfg.dynamic)


def _to_layout(x: torch.Tensor, cfg: FastConfig) -> torch.Tensor:
    return x.contiguous(memory_format=CL) if cfg.channels_last and x.dim() == 4 else x
