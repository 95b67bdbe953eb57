"""The fast path: the same networks and losses, same weights, run faster; results equal the reference within
stated tolerances (`TOLERANCES`).

Why a module of its own: the reference path (plain eager fp32, NCHW, as the common implementations are written) is
what the paper's numbers are reproduced with; this module only changes *how* the same arithmetic is executed, so the
benchmarks can time both side by side and the tests can bound the difference.

What the fast path can do (each a `FastConfig` field; `best_config(device, task)` picks the default per device):

- `channels_last`: NHWC end to end (model, loss network and inputs), so cuDNN needs no NCHW<->NHWC transposes.
- `dtype`: bf16 / fp16 autocast for the networks and the loss network; Gram matrices and loss terms stay fp32
  (the loss network's features are cast back to fp32 before any loss arithmetic).
- `compile`: torch.compile (inductor) of the forward (inference) or of the forward + loss (training; the backward is
  compiled by AOTAutograd).
- `cuda_graphs`: static-shape CUDA graph replay of a whole inference call or of a whole training step (forward,
  backward and the optimiser). Outputs live in the graph's static buffers and are overwritten by the next replay, so
  every call returns a clone (the naive whole-step capture noted in DESIGN.md section 7 failed on exactly that).
- `fused_adam`: Adam's fused multi-tensor kernel (`fused=True`; about 10x cheaper than the default on CUDA).
- `cudnn_benchmark`: let cuDNN time its algorithms per shape.
- `pad_channels`: run convolutions with 1-3 input/output channels (the 9x9 RGB convs) with zero-padded channels so
  tensor-core kernels apply; parameters keep their shapes, the padding is exact (zeros).
- `truncate_content`: content targets phi_relu2_2(y_c) through VGG only up to relu2_2 (the reference runs the whole
  loss network to relu4_3 and keeps relu2_2): identical numbers, fewer FLOPs.
- `fold_batchnorm`: for inference, fold eval-mode BatchNorm into the preceding convolution (the paper variant).
- `device_lbfgs`: the Gatys baseline's L-BFGS keeps its state and two-loop recursion on the device and reads the
  host once per iteration (baselines.lbfgs.DeviceLBFGS; the same iterates as torch.optim.LBFGS).
- batched inference (`FastStylizer.stylize_many`) and tiled inference with a halo (`tiled_forward`) for images
  that do not fit in memory; instance-norm statistics are accumulated over the whole image, so a tiled result
  equals the untiled one (see `tiled_forward`).

Measured on the development CPU (AMD EPYC, 2 shared cores, AVX2 without AVX512-BF16; PyTorch 2.14):
channels_last is 10-25% *slower* than NCHW for these networks and for VGG-16 fwd+bwd, bf16 autocast is ~6x slower
(no bf16 hardware), torch.compile is 1.3-2x faster at inference but costs 60-90 s of compilation per input shape
(~13 s with a warm inductor cache). So the CPU default keeps the reference layout and precision, no compile, and
takes only the algorithmic savings (truncated content targets, folded BN); compile is opt-in (`compile=True`).
On CUDA the defaults follow DESIGN.md section 7 (bf16 + channels_last + compile + CUDA graphs + fused Adam); they
are starting points to be confirmed by `bench/gpu_check.py`, not measurements made here.

Public API: `FastConfig`, `best_config`, `TOLERANCES`, `tolerance`, `FastStylizer`, `tiled_forward`,
`receptive_radius`, `FastTrainer`, `fast_train_step`, `reference_train_step`, `FastFeatures`, `fast_objective`,
`fast_style_loss_fn`, `fast_feature_loss`, `fold_batchnorm_`, `pad_thin_convs_`.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.norms import preserve_channels_last_

if TYPE_CHECKING:
    from perceptual.losses import PerceptualObjective

__all__ = [
    "LOSS_RTOL_FIRST",
    "LOSS_RTOL_LATER",
    "MEAN_ABS_TOLERANCE",
    "TOLERANCES",
    "FastConfig",
    "FastFeatures",
    "FastStylizer",
    "FastTrainer",
    "best_config",
    "default_alignment",
    "fast_feature_loss",
    "fast_objective",
    "fast_style_loss_fn",
    "fast_train_step",
    "fold_batchnorm_",
    "load_optimizer_state",
    "pad_thin_convs_",
    "receptive_radius",
    "reference_train_step",
    "tiled_forward",
    "tolerance",
]

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
# were not measured here (no GPU): bench/gpu_check.py measures and checks them.
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
    """How the fast path executes (see the module docstring for each switch). Defaults = the reference execution
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
                                        ("devlbfgs", self.device_lbfgs)) if on]
        if self.pad_channels:
            parts.append(f"pad{self.pad_channels}")
        return "+".join(parts)


def best_config(device: torch.device | str, task: Task = "inference") -> FastConfig:
    """The fast path's default for a device and task ('inference', 'train' or 'gatys').

    CPU: the reference layout and precision (channels_last and bf16 measured slower on the development CPU, compile
    too slow to compile for short jobs); only the exact algorithmic savings are on, and Gatys keeps
    torch.optim.LBFGS (its host reads cost nothing on a CPU), so CPU results equal the reference path's bit for bit.
    CUDA: bf16 autocast, channels_last, cuDNN autotuning; compile + CUDA graphs for inference and training (fused
    Adam for training); the Gatys evaluation stays eager (L-BFGS runs Python between evaluations; compile there is a
    sweep option) and runs baselines.lbfgs.DeviceLBFGS (one host read per iteration instead of several per history
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
                      cudnn_benchmark=True, fused_adam=task == "train")


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


# --------------------------------------------------------------------------------------- module transformations


def _conv_tail(module: nn.Module) -> tuple[nn.Module, str] | None:
    """(parent, name) of the convolution that is `module`'s last operation, if it is one (a conv or a Sequential
    ending in one)."""
    if isinstance(module, nn.Sequential) and len(module):
        last_name = list(module._modules)[-1]
        last = module._modules[last_name]
        if isinstance(last, (nn.Conv2d, nn.ConvTranspose2d)):
            return module, last_name
        return _conv_tail(last)
    return None


def fold_batchnorm_(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a convolution (inside a Sequential) into that conv.

    In place; returns how many were folded. Only valid for inference (the folded conv no longer has a BN to train).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev_name, name in itertools.pairwise(names):
            bn, prev = seq._modules[name], seq._modules[prev_name]
            if not isinstance(bn, nn.BatchNorm2d) or bn.training or not bn.track_running_stats:
                continue
            parent: nn.Module
            if isinstance(prev, (nn.Conv2d, nn.ConvTranspose2d)):
                parent, conv_name = seq, prev_name
            else:
                tail = _conv_tail(prev)
                if tail is None:
                    continue
                parent, conv_name = tail
            conv = parent._modules[conv_name]
            if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.training:
                continue
            parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
            seq._modules[name] = nn.Identity()
            folded += 1
    return folded


def _zero_channels(x: torch.Tensor, n: int) -> torch.Tensor:
    zeros = x.new_zeros((x.shape[0], n, *x.shape[2:]))
    if x.dim() == 4 and x.is_contiguous(memory_format=CL) and not x.is_contiguous():
        zeros = zeros.contiguous(memory_format=CL)
    return torch.cat([x, zeros], dim=1)


class _PaddedConv2d(nn.Module):
    """A Conv2d with few input/output channels run as one with `width` channels (zero weights, zero inputs, extra
    outputs dropped): exactly the same result, but eligible for tensor-core kernels. Shares the wrapped conv's
    parameters (their shapes do not change)."""

    def __init__(self, conv: nn.Conv2d, width: int):
        super().__init__()
        self.conv, self.width = conv, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        w, b = conv.weight, conv.bias
        cout, cin = w.shape[0], w.shape[1]
        if cin < self.width:
            x = _zero_channels(x, self.width - cin)
            w = F.pad(w, (0, 0, 0, 0, 0, self.width - cin))
        if cout < self.width:
            w = F.pad(w, (0, 0, 0, 0, 0, 0, 0, self.width - cout))
            b = F.pad(b, (0, self.width - cout)) if b is not None else None
        if self.width > cin and x.is_contiguous(memory_format=CL) and not x.is_contiguous():
            w = w.contiguous(memory_format=CL)
        y = conv._conv_forward(x, w, b)
        return y[:, :cout] if cout < self.width else y


def pad_thin_convs_(net: nn.Module, width: int) -> int:
    """Replace (in place) every Conv2d with fewer than `width` input or output channels (groups == 1) by a
    zero-padded equivalent. Returns how many were replaced."""
    replaced = 0
    for parent in list(net.modules()):
        for name, child in list(parent._modules.items()):
            if (isinstance(child, nn.Conv2d) and child.groups == 1
                    and (child.in_channels < width or child.out_channels < width)):
                parent._modules[name] = _PaddedConv2d(child, width)
                replaced += 1
    return replaced


def _shadow(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares every parameter and buffer with `model` (training it trains `model`)."""
    memo: dict[int, Any] = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


# --------------------------------------------------------------------------------------------------- inference


class FastStylizer:
    """Inference with a feed-forward network (TransformNet, SRNet, SRCNN), fast: `y = FastStylizer(net, device)(x)`.

    The network is copied (the caller's module is not changed), put in eval mode, frozen and prepared per the config
    (folded BN, padded thin convs, channels_last, compile). Calls take float32 NCHW images (any device; moved to
    `device`) and return float32 outputs on `device` (logically NCHW; memory may be channels_last).
    Explicit keyword arguments override `config` (default `best_config(device, 'inference')`).
    """

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu", *, dtype: torch.dtype | str | None = None,
                 compile: bool | None = None, channels_last: bool | None = None, cuda_graphs: bool | None = None,
                 config: FastConfig | None = None, max_graphs: int = 8):
        if max_graphs < 1:
            raise ValueError(f"FastStylizer(max_graphs={max_graphs}): keep at least one captured shape")
        self.device = torch.device(device)
        self.max_graphs = max_graphs
        self.config = _resolve(config, self.device, "inference", dtype=_as_dtype(dtype) if dtype else None,
                               compile=compile, channels_last=channels_last, cuda_graphs=cuda_graphs)
        cfg = self.config
        net = copy.deepcopy(net).to(self.device).eval()
        net.requires_grad_(False)
        if cfg.fold_batchnorm:
            fold_batchnorm_(net)
        if cfg.pad_channels:
            pad_thin_convs_(net, cfg.pad_channels)
        if cfg.channels_last:
            net = net.to(memory_format=CL)
            preserve_channels_last_(net)  # torch's instance norm would hand back NCHW at each of the 15 norms
        self.net = net
        self._run = _compile(self._forward, cfg) if cfg.compile else self._forward
        # captured CUDA graphs per input shape, least recently used first; at most `max_graphs` (each holds its own
        # memory pool of activations, so an unbounded cache would grow with every new image size)
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = OrderedDict()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device, self.config):
            y = self.net(x)
        return y.float()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FastStylizer takes a float (N, C, H, W) batch, got {shape}; add a batch axis with "
                             "x.unsqueeze(0)")
        return _to_layout(x.to(self.device, torch.float32, non_blocking=True), self.config)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """net(x) on the fast path."""
        x = self._prepare(x)
        with _backend_flags(self.device, self.config):
            if self.config.cuda_graphs:
                return self._replay(x)
            return self._run(x)

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        # everything on the stylizer's own device (its streams, capture and replay), whatever the current device is
        with torch.cuda.device(self.device):
            key = (tuple(x.shape), x.stride())
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(x)
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    _, (old_graph, _, _) = self._graphs.popitem(last=False)
                    old_graph.reset()  # frees its memory pool now, not at garbage collection
            else:
                self._graphs.move_to_end(key)
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()  # the next replay overwrites static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # compile, cuDNN autotuning and allocator growth happen here, not in the capture
                self._run(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):  # torch's default capture stream is the current device's
            static_out = self._run(static_in)
        return graph, static_in, static_out

    def stylize_many(self, images: Sequence[torch.Tensor], batch_size: int = 8) -> list[torch.Tensor]:
        """Run a list of images through the network in batches of up to `batch_size` same-sized images.

        Each image is (C, H, W) or (1, C, H, W); results come back in input order with the same rank, float32, on
        `device`. Batching is exact here: both network variants normalise per image at inference.
        """
        if batch_size < 1:
            raise ValueError(f"stylize_many(batch_size={batch_size}): must be >= 1")
        singles = []
        for i, img in enumerate(images):
            if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or (img.dim() == 4 and img.shape[0] != 1):
                shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
                raise ValueError(f"stylize_many: image {i} must be (C, H, W) or (1, C, H, W), got {shape}")
            singles.append(img if img.dim() == 3 else img[0])
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(singles):
            by_shape.setdefault(tuple(img.shape), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(singles)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                y = self(torch.stack([singles[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    out[i] = y[j] if images[i].dim() == 3 else y[j:j + 1]
        return out  # type: ignore[return-value]

    def tiled(self, x: torch.Tensor, tile: int, overlap: int | None = None) -> torch.Tensor:
        """`tiled_forward` with this stylizer's prepared network, dtype and layout (eager; for huge images)."""
        return tiled_forward(self.net, x, tile, overlap, device=self.device, dtype=self.config.dtype,
                             channels_last=self.config.channels_last)


# ------------------------------------------------------------------------------------------------ tiled forward


class _FieldTooLarge(ValueError):
    """The measured receptive field touches the probe's border."""


class _Stop(Exception):
    """Ends a statistics pass once the norm being measured has seen its input."""


def _instance_stat_norms(net: nn.Module) -> list[nn.modules.instancenorm._InstanceNorm]:
    """Norm layers whose statistics come from the input itself (instance norm, or batch norm in training mode)."""
    found = []
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError("tiled_forward needs the network in eval mode (BatchNorm in training mode normalises over "
                             "the batch); call net.eval()")
        if isinstance(m, nn.modules.instancenorm._InstanceNorm) and (m.training or not m.track_running_stats):
            found.append(m)
    return found


def default_alignment(net: nn.Module) -> int:
    """Tile offsets must be multiples of the network's total downsampling (product of conv strides > 1): 4 for the
    style network, 1 for the SR networks and SRCNN."""
    align = 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            align *= max(m.stride)
    return align


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _tiles(h: int, w: int, tile: int, halo: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """(core, region) boxes (y0, y1, x0, x1): cores partition the image, regions add the halo (clipped)."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))


def _scaled(v: int, factor: float, what: str) -> int:
    s = v * factor
    if abs(s - round(s)) > 1e-9:
        raise ValueError(f"tiled_forward: {what} offset {v} px maps to a fractional position at this layer "
                         f"(scale {factor}); use tile and overlap multiples of the network's alignment")
    return round(s)


class _NormPatch:
    """Runs instance norms with statistics fixed from the whole image, or measures one norm's statistics over the
    tiles' owned regions. Installed by replacing each norm's forward; removed on exit."""

    def __init__(self, norms: Sequence[nn.Module]):
        self.norms = list(norms)
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(norm) -> (scale, shift) per (N, C)
        self.target: nn.Module | None = None
        self.sums: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self.owned: tuple[int, int, int, int] | None = None  # core box relative to the tile's region
        self.region_hw: tuple[int, int] = (0, 0)
        self.order: list[nn.Module] = []

    def __enter__(self) -> _NormPatch:  # noqa: PYI034 - a plain class, never subclassed
        for m in self.norms:
            m.forward = self._make_forward(m)  # instance attribute shadows the class's forward
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.norms:
            m.__dict__.pop("forward", None)

    def _make_forward(self, m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            return self._norm(m, x)
        return forward

    def _norm(self, m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.target is None:  # order probe: plain instance norm, record the call order
            self.order.append(m)
            return type(m).forward(m, x)
        frozen = self.frozen.get(id(m))
        if frozen is not None:
            scale, shift = frozen
            return torch.addcmul(shift[:, :, None, None].to(x.dtype), x, scale[:, :, None, None].to(x.dtype))
        if m is not self.target:
            raise RuntimeError("tiled_forward: instance norms ran in an unexpected order")
        fy, fx = x.shape[-2] / self.region_hw[0], x.shape[-1] / self.region_hw[1]
        y0, y1, x0, x1 = self.owned  # type: ignore[misc]
        part = x[..., _scaled(y0, fy, "tile"):_scaled(y1, fy, "tile"),
                 _scaled(x0, fx, "tile"):_scaled(x1, fx, "tile")].double()
        s1, s2 = part.sum(dim=(2, 3)), part.pow(2).sum(dim=(2, 3))
        n = part.shape[-1] * part.shape[-2]
        if self.sums is None:
            self.sums = (s1, s2, n)
        else:
            a, b, c = self.sums
            self.sums = (a + s1, b + s2, c + n)
        raise _Stop

    def freeze_target(self) -> None:
        m = self.target
        assert isinstance(m, nn.modules.instancenorm._InstanceNorm)  # set by the statistics pass
        s1, s2, n = self.sums  # type: ignore[misc]
        mean = s1 / n
        var = (s2 / n - mean.pow(2)).clamp_min(0.0)
        scale = torch.rsqrt(var + m.eps)
        shift = -mean * scale
        if m.affine:
            scale, shift = scale * m.weight.double(), shift * m.weight.double() + m.bias.double()
        self.frozen[id(m)] = (scale.float(), shift.float())
        self.target, self.sums = None, None


@torch.no_grad()
def tiled_forward(net: nn.Module, x: torch.Tensor, tile: int, overlap: int | None = None, *,
                  device: torch.device | str | None = None, dtype: torch.dtype | str = torch.float32,
                  channels_last: bool = False, align: int | None = None) -> torch.Tensor:
    """`net(x)` computed tile by tile, for images whose activations do not fit in memory.

    tile: side of each tile's core in input pixels; overlap: halo added on every side of a core (default: the
    measured `receptive_radius(net)` rounded up to the alignment). Each output pixel is taken from the tile whose
    core contains it (overlaps are cropped, not blended). Only one tile's activations live on `device` at a time;
    the input and the output stay on x's device.

    Instance norm normalises with statistics of the *whole* feature map, which no tile sees. They are computed
    exactly, one norm layer at a time in forward order: a pass over the tiles runs the network up to that norm
    (earlier norms already fixed), accumulates sum and sum of squares over the tiles' owned regions in float64,
    and fixes that norm's scale and shift. So the result equals the untiled output up to floating-point summation
    order whenever overlap >= the receptive radius (tested: max abs difference <= 5e-5 at fp32), at the cost of one
    partial pass per norm layer (the style network has 15; about 8 forward passes' worth of compute in total).
    The network must be in eval mode; tile and overlap must be multiples of `align` (default
    `default_alignment(net)`: 4 for the style network).
    """
    if x.dim() != 4:
        raise ValueError(f"tiled_forward takes a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    device = torch.device(device) if device is not None else x.device
    dtype = _as_dtype(dtype)
    align = align or default_alignment(net)
    if overlap is None:
        overlap = _round_up(receptive_radius(net, channels=x.shape[1], device=device), align)
    if tile < 1 or overlap < 0 or tile % align or overlap % align:
        raise ValueError(f"tiled_forward(tile={tile}, overlap={overlap}): both must be multiples of {align} "
                         f"(tile > 0) for this network")
    h, w = x.shape[-2:]
    if h % align or w % align:
        raise ValueError(f"tiled_forward: image size {h}x{w} must be a multiple of {align} for this network")
    cfg = FastConfig(dtype=dtype, channels_last=channels_last)
    boxes = list(_tiles(h, w, tile, overlap))

    def run(region: tuple[int, int, int, int]) -> torch.Tensor:
        ry0, ry1, rx0, rx1 = region
        xt = _to_layout(x[..., ry0:ry1, rx0:rx1].to(device, torch.float32), cfg)
        with _autocast(device, cfg):
            return net(xt)

    norms = _instance_stat_norms(net)
    with _NormPatch(norms) as patch:
        if norms:
            patch.target = None
            run(boxes[0][1])  # order probe on one tile
            order = list(dict.fromkeys(patch.order))
            if len(order) != len(norms):
                raise RuntimeError(f"tiled_forward: {len(norms)} instance norms, {len(order)} of them called")
            for m in order:
                patch.target = m
                for core, region in boxes:
                    patch.owned = (core[0] - region[0], core[1] - region[0], core[2] - region[2], core[3] - region[2])
                    patch.region_hw = (region[1] - region[0], region[3] - region[2])
                    try:
                        run(region)
                    except _Stop:
                        pass
                    else:
                        raise RuntimeError("tiled_forward: a statistics pass ran past its norm layer")
                patch.freeze_target()
            patch.target = nn.Identity()  # anything not None: norms now all frozen
        out: torch.Tensor | None = None
        for core, region in boxes:
            y = run(region).float()
            fy, fx = y.shape[-2] / (region[1] - region[0]), y.shape[-1] / (region[3] - region[2])
            if out is None:
                out = torch.empty((x.shape[0], y.shape[1], _scaled(h, fy, "image"), _scaled(w, fx, "image")),
                                  dtype=torch.float32, device=x.device)
            cy0, cy1 = _scaled(core[0] - region[0], fy, "tile"), _scaled(core[1] - region[0], fy, "tile")
            cx0, cx1 = _scaled(core[2] - region[2], fx, "tile"), _scaled(core[3] - region[2], fx, "tile")
            oy0, ox0 = _scaled(core[0], fy, "tile"), _scaled(core[2], fx, "tile")
            out[..., oy0:oy0 + cy1 - cy0, ox0:ox0 + cx1 - cx0] = y[..., cy0:cy1, cx0:cx1].to(x.device)
    assert out is not None
    return out


# Relative threshold of the receptive-radius probe: an input pixel is inside the field when its |gradient| (summed over
# channels) exceeds this fraction of the largest one. Why float64 and 1e-13: measured on the CPU (random-weight
# networks, 2026-12-02), the true gradients at the field's edge are tiny relative to the centre's: min/max over the
# outermost ring 3e-11 (style, common), 5e-11 (style, paper), 1e-8 (SR x4 / x8), 4e-3 (SRCNN), and at fp32 the largest
# ring value is only 1.3e-7 of the max: the same size as fp32 rounding noise from cuDNN's Winograd/FFT convolutions,
# which give small non-zero gradients where the exact ones are 0. So no relative threshold separates the two at fp32
# (it would cut the field short and make tiling wrong); in float64 the noise is ~1e-16 relative, and 1e-13 sits
# 100x above it and 250x below the smallest true edge value.
RECEPTIVE_REL_THRESHOLD = 1e-13


def receptive_radius(net: nn.Module, channels: int = 3, size: int | None = None, device: torch.device | str = "cpu",
                     trials: int = 3, rel_threshold: float = RECEPTIVE_REL_THRESHOLD) -> int:
    """Measured receptive radius in input pixels: the farthest input pixel (Chebyshev distance from the centre)
    whose value changes the centre output pixel, from input gradients over a few random inputs.

    Instance norms are frozen to fixed per-channel affine maps while measuring (as `tiled_forward` runs them);
    with their whole-image statistics every output pixel would depend on every input pixel. The probe (`size` px)
    must exceed twice the radius: by default it starts at 64 px and doubles (up to 1024) until the measured field
    stays clear of its border; an explicit `size` that is too small raises.
    The probe runs in float64 and counts a pixel when its gradient exceeds `rel_threshold` x the largest one (not
    exact zero, which fast convolution algorithms do not give; see RECEPTIVE_REL_THRESHOLD).
    """
    if size is None:
        for probe in (64, 128, 256, 512, 1024):
            try:
                return receptive_radius(net, channels, probe, device, trials, rel_threshold)
            except _FieldTooLarge:
                continue
        raise ValueError("receptive_radius: the receptive field exceeds a 1024 px probe")
    net_copy = copy.deepcopy(net).to(device, torch.float64).eval()
    net_copy.requires_grad_(False)
    norms = _instance_stat_norms(net_copy)
    align = default_alignment(net_copy)
    size = _round_up(size, 2 * align)
    radius = 0
    gen = torch.Generator().manual_seed(0)
    with _NormPatch(norms) as patch:
        for m in norms:
            c = m.num_features
            patch.frozen[id(m)] = (torch.ones(1, c, device=device, dtype=torch.float64),
                                   torch.zeros(1, c, device=device, dtype=torch.float64))
        patch.target = nn.Identity()
        for _ in range(trials):
            x = torch.rand(1, channels, size, size, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
            with torch.enable_grad():
                y = net_copy(x)
                sy, sx = y.shape[-2] // 2, y.shape[-1] // 2
                y[..., sy, sx].sum().backward()
            assert x.grad is not None  # backward() filled it
            g = x.grad.abs().sum(dim=(0, 1))
            nz = (g > rel_threshold * g.max()).nonzero()
            cy, cx = sy * size / y.shape[-2], sx * size / y.shape[-1]
            r = math.ceil(max((nz[:, 0].float() - cy).abs().max().item(), (nz[:, 1].float() - cx).abs().max().item()))
            if nz[:, 0].min() == 0 or nz[:, 1].min() == 0 or nz[:, 0].max() == size - 1 or nz[:, 1].max() == size - 1:
                raise _FieldTooLarge(f"receptive_radius: the receptive field reaches the border of a {size} px probe; "
                                     "pass a larger size")
            radius = max(radius, r)
    return radius


# ------------------------------------------------------------------------------------------------ loss networks


def _features_upto(loss_net: nn.Module, x: torch.Tensor, tap: str) -> torch.Tensor:
    """One tap of a LossNetwork, running its VGG only as deep as that tap needs (identical values)."""
    from perceptual.vgg import TAPS, LossNetwork

    if not isinstance(loss_net, LossNetwork) or tap not in loss_net.taps:
        return loss_net(x)[tap]
    h = (x - loss_net.mean.to(x.dtype)) / loss_net.std.to(x.dtype)
    for layer in loss_net.features[:TAPS[tap] + 1]:
        h = layer(h)
    return h


class FastFeatures(nn.Module):
    """A loss network run in the fast path's layout and precision; returns fp32 features so every loss term (Gram
    matrices included) is computed in fp32. Holds its own channels_last copy when asked, so a loss network shared
    with the reference path keeps its layout."""

    def __init__(self, loss_net: nn.Module, config: FastConfig, device: torch.device | str | None = None):
        super().__init__()
        self.config = config
        if config.channels_last:
            loss_net = copy.deepcopy(loss_net).to(memory_format=CL)
        if device is not None:
            loss_net = loss_net.to(device)
        self.inner = loss_net
        self.taps = getattr(loss_net, "taps", None)

    def _device(self, x: torch.Tensor) -> torch.device:
        return x.device

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with _autocast(self._device(x), self.config):
            feats = self.inner(_to_layout(x, self.config))
        return {k: v.float() for k, v in feats.items()}

    def upto(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """One tap, through the VGG prefix only when `truncate_content` (else the full network)."""
        with _autocast(self._device(x), self.config):
            if self.config.truncate_content:
                f = _features_upto(self.inner, _to_layout(x, self.config), tap)
            else:
                f = self.inner(_to_layout(x, self.config))[tap]
        return f.float()


def fast_objective(objective: nn.Module, config: FastConfig | None = None,
                   device: torch.device | str | None = None) -> _FastObjective:
    """The same Eq. 5 objective (same style Grams, weights and layers) with its loss network on the fast path.

    Works with `baselines.gatys.stylise` and as the style training loss (`fast_style_loss_fn`). The style Gram
    targets are shared with `objective` (not recomputed), so both objectives score an image against the same
    targets.
    """
    from perceptual.losses import PerceptualObjective

    if not isinstance(objective, PerceptualObjective):
        raise TypeError(f"fast_objective takes a perceptual.losses.PerceptualObjective, got {type(objective).__name__}")
    dev = torch.device(device) if device is not None else next(iter(objective.style_grams().values())).device
    cfg = config if config is not None else best_config(dev, "gatys")
    return _FastObjective(objective, cfg)


class _FastObjective(nn.Module):
    """PerceptualObjective's interface (forward, content_targets, style_grams, weights, layers) on FastFeatures."""

    def __init__(self, objective: PerceptualObjective, config: FastConfig):
        super().__init__()
        self.reference = [objective]  # a list: not registered as a submodule (its loss net stays where it is)
        self.config = config
        self.loss_net = FastFeatures(objective.loss_net, config)
        self.weights = objective.weights
        self.content_layer, self.style_layers = objective.content_layer, objective.style_layers
        for layer, gram in objective.style_grams().items():
            self.register_buffer(f"gram_{layer}", gram)

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {layer: getattr(self, f"gram_{layer}") for layer in self.style_layers}

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> torch.Tensor:
        return self.loss_net.upto(content, self.content_layer).detach()

    def forward(self, y_hat: torch.Tensor, content_feat: torch.Tensor) -> dict[str, torch.Tensor]:
        from perceptual.losses import PerceptualObjective

        return PerceptualObjective.forward(self, y_hat, content_feat)  # type: ignore[arg-type]


def fast_style_loss_fn(objective: nn.Module, config: FastConfig | None = None) -> Callable[[nn.Module, torch.Tensor],
                                                                                          dict[str, torch.Tensor]]:
    """The style training loss (bench.style.style_loss_fn's contract: loss(model, batch) -> per-image terms) on the
    fast path: content targets through the truncated loss network, Eq. 5 on fp32 features."""
    fobj = fast_objective(objective, config)

    def loss(model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return fobj(model(batch), fobj.content_targets(batch))

    loss.objective = fobj  # type: ignore[attr-defined]
    return loss


def fast_feature_loss(criterion: nn.Module, config: FastConfig) -> nn.Module:
    """perceptual.losses.FeatureReconstructionLoss with its loss network on the fast path (same layer and TV)."""
    from perceptual.losses import FeatureReconstructionLoss

    if not isinstance(criterion, FeatureReconstructionLoss):
        raise TypeError(f"fast_feature_loss takes a FeatureReconstructionLoss, got {type(criterion).__name__}")
    return FeatureReconstructionLoss(FastFeatures(criterion.loss_net, config), criterion.layer, criterion.tv_weight)


# ---------------------------------------------------------------------------------------------------- training


LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


def reference_train_step(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                         batch: Any) -> dict[str, float]:
    """One iteration exactly as bench.train.train's reference path (bench.steps.ReferenceStep) runs it (no
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
    """Training steps of `model` on `loss_fn(model, batch) -> {"total": (N,), term: (N,), ...}` (bench.train's
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
    on the fast path too; fp16 is refused (it needs a GradScaler: use bf16, or bench.train's path='reference').
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
        """Load an Adam state_dict written by either path (bench.train's checkpoints); see load_optimizer_state."""
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
        with torch.cuda.graph(graph, stream=stream):  # torch's default capture stream is the current device's
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
