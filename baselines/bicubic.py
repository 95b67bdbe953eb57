"""The bicubic SR baseline: MATLAB `imresize(lr, scale)` (the resize itself lives in data/resize.py), and the
bicubic baseline of each evaluation protocol (data/eval_protocol.py)."""
from __future__ import annotations

import numpy as np
import torch

from data.eval_protocol import DEFAULT_PROTOCOL, uses_recipe
from data.johnson2016_protocol import johnson2016_upscale
from data.resize import ArrayOrTensor, imresize, quantize_uint8


def bicubic_upscale(lr: ArrayOrTensor, scale: int) -> ArrayOrTensor:
    """The bicubic baseline: MATLAB imresize(lr, scale). uint8 in, uint8 out (as MATLAB); float in, float out.

    numpy: HxW(xC), uint8 or float (any range, kept). torch: (N)CHW; uint8 gives uint8, float gives float
    (not clipped: the evaluation rounds and clips SR output to 8 bits before scoring).
    """
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"bicubic_upscale: scale must be a positive integer (4 or 8), got {scale!r}")
    if isinstance(lr, np.ndarray) and lr.dtype == np.uint8:
        return quantize_uint8(imresize(lr.astype(np.float64), scale_factor=scale))
    if isinstance(lr, torch.Tensor) and lr.dtype == torch.uint8:
        return quantize_uint8(imresize(lr.to(torch.float64), scale_factor=scale))
    return imresize(lr, scale_factor=scale)


def eval_bicubic_upscale(lr_uint8: np.ndarray, scale: int, protocol: str = DEFAULT_PROTOCOL) -> np.ndarray:
    """The bicubic baseline's output (uint8, the HR's size) for an LR image made by make_eval_lr."""
    if not isinstance(lr_uint8, np.ndarray) or lr_uint8.dtype != np.uint8:
        raise TypeError("eval_bicubic_upscale: lr must be a uint8 numpy array HxW or HxWx3")
    if uses_recipe(scale, protocol):
        return johnson2016_upscale(lr_uint8, scale)
    return bicubic_upscale(lr_uint8, scale)
