"""MATLAB-`imresize`-compatible antialiased bicubic resizing and MATLAB's uint8 rounding.

Why here (in data/): the degradations, the SR training patches, the bicubic baseline and the metrics all need it, and
every published SR number was made with MATLAB's `imresize`; another resize moves PSNR by tenths of a dB. Exact for
numpy arrays and tensors whenever `in_size * scale` is an integer (the whole SR protocol; tests/test_bicubic.py).
How, and the sub-pixel shift otherwise: docs/data.md.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch
from resize_right import interp_methods, resize

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        value = (value, value)
    value = tuple(float(v) for v in value)
    if len(value) != 2 or not all(math.isfinite(v) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive number or a (height, width) pair of them, got {value!r}")
    return value[0], value[1]


def _plan(in_hw: tuple[int, int], scale_factor: float | Sequence[float] | None,
          out_shape: Sequence[int] | None) -> tuple[tuple[float, float], tuple[int, int]]:
    """MATLAB's rules: out = ceil(in * scale) given only a scale; scale = out / in given only a size."""
    if scale_factor is None and out_shape is None:
        raise ValueError("imresize needs scale_factor or out_shape "
                         "(e.g. scale_factor=1/4 or out_shape=(h, w))")
    if out_shape is not None:
        out_shape = tuple(int(v) for v in out_shape)
        if len(out_shape) != 2 or min(out_shape) < 1:
            raise ValueError(f"out_shape must be (height, width) with positive sizes, got {out_shape!r}")
    if scale_factor is None:
        scale = (out_shape[0] / in_hw[0], out_shape[1] / in_hw[1])  # type: ignore[index]
    else:
        scale = _pair(scale_factor, "scale_factor")
    if out_shape is None:
        # round() guards against 1/3 * 3 = 0.9999...; MATLAB would also give the integer here.
        out_shape = tuple(math.ceil(round(s * n, 9)) for s, n in zip(scale, in_hw))
    return scale, out_shape  # type: ignore[return-value]


@lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int, scale: float) -> np.ndarray:
    """(out_size, in_size) float64 matrix W, resize(x) = W @ x along one axis (weights from resize-right)."""
    eye = np.eye(in_size, dtype=np.float64)
    w = resize(eye, scale_factors=[scale, 1.0], out_shape=[out_size, in_size],
               interp_method=interp_methods.cubic, antialiasing=True, pad_mode="symmetric")
    w.setflags(write=False)
    return w


def imresize(x: ArrayOrTensor, scale_factor: float | Sequence[float] | None = None,
             out_shape: Sequence[int] | None = None) -> ArrayOrTensor:
    """Resize like MATLAB `imresize(x, scale)` (bicubic, antialiasing on): float in, float out, no rounding.

    torch: float tensor (N)CHW (or HW); resizes the last two axes on the tensor's device, keeps its dtype.
    numpy: float array HxW or HxWxC; resizes the first two axes; returns float64 (float32 stays float32).
    Quantise afterwards with `quantize_uint8` to get what MATLAB returns for uint8 images.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"imresize: tensor x has dtype {x.dtype}; pass a float tensor (x.float())")
        if x.ndim < 2:
            raise ValueError(f"imresize: tensor x must be HW, CHW or NCHW, got shape {tuple(x.shape)}")
        in_hw = (int(x.shape[-2]), int(x.shape[-1]))
        scale, out_hw = _plan(in_hw, scale_factor, out_shape)
        wh = torch.tensor(resize_matrix(in_hw[0], out_hw[0], scale[0]), dtype=x.dtype, device=x.device)
        ww = torch.tensor(resize_matrix(in_hw[1], out_hw[1], scale[1]), dtype=x.dtype, device=x.device)
        # Same axis order as MATLAB (smaller scale first; rows first on ties); mathematically order-free.
        if scale[1] < scale[0]:
            return wh @ (x @ ww.T)
        return (wh @ x) @ ww.T
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"imresize: array x has dtype {x.dtype}; pass a float array "
                            "(x.astype(np.float64)) and quantise the result with quantize_uint8")
        if x.ndim not in (2, 3):
            raise ValueError(f"imresize: array x must be HxW or HxWxC, got shape {x.shape}")
        in_hw = (int(x.shape[0]), int(x.shape[1]))
        scale, out_hw = _plan(in_hw, scale_factor, out_shape)
        return resize(x, scale_factors=list(scale), out_shape=list(out_hw),
                      interp_method=interp_methods.cubic, antialiasing=True, pad_mode="symmetric")
    raise TypeError(f"imresize: x must be a numpy array or torch tensor, got {type(x).__name__}")


def quantize_uint8(x: ArrayOrTensor, data_range: float = 255.0) -> ArrayOrTensor:
    """Round to 8 bits as MATLAB's uint8() does (clip to [0, 255], ties away from zero), as saved files are.

    `data_range` is the value that maps to 255 (255 for [0, 255] data, 1 for [0, 1] data).
    numpy input returns a uint8 array; torch input returns a uint8 tensor.
    """
    if isinstance(x, torch.Tensor):
        return torch.floor(torch.clamp(x * (255.0 / data_range), 0, 255) + 0.5).to(torch.uint8)
    if isinstance(x, np.ndarray):
        y = np.clip(np.asarray(x, np.float64) * (255.0 / data_range), 0, 255)
        return np.floor(y + 0.5).astype(np.uint8)
    raise TypeError(f"quantize_uint8: x must be a numpy array or torch tensor, got {type(x).__name__}")

