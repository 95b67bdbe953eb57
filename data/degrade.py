"""Degradations that make low-res inputs: the evaluation one (MATLAB bicubic, 8-bit) and the training one.

Why two: published test sets are scored against LR images made by MATLAB `imresize(modcrop(hr, s), 1/s)` and
saved as 8-bit files; the paper trains on LR made by Gaussian blur (sigma 1.0) then bicubic downsampling.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from data.resize import imresize, quantize_uint8

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def _check_scale(scale: int, fn: str) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"{fn}: scale must be a positive integer (e.g. 4 or 8), got {scale!r}")
    return int(scale)


def _hw(img: np.ndarray | torch.Tensor, fn: str) -> tuple[int, int]:
    """Spatial size: numpy HW/HWC (first two axes), torch HW/CHW/NCHW (last two axes)."""
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"{fn}: numpy image must be HxW or HxWxC, got shape {img.shape}")
        return int(img.shape[0]), int(img.shape[1])
    if isinstance(img, torch.Tensor):
        if img.ndim not in (2, 3, 4):
            raise ValueError(f"{fn}: tensor image must be HW, CHW or NCHW, got shape {tuple(img.shape)}")
        return int(img.shape[-2]), int(img.shape[-1])
    raise TypeError(f"{fn}: image must be a numpy array or torch tensor, got {type(img).__name__}")


def modcrop(img: ArrayOrTensor, scale: int) -> ArrayOrTensor:
    """Crop bottom/right so height and width are multiples of `scale` (the SR test sets' convention)."""
    scale = _check_scale(scale, "modcrop")
    h, w = _hw(img, "modcrop")
    hc, wc = h - h % scale, w - w % scale
    if hc == 0 or wc == 0:
        raise ValueError(f"modcrop: image of size {h}x{w} is smaller than scale {scale}; use a larger image")
    if isinstance(img, np.ndarray):
        return img[:hc, :wc]
    return img[..., :hc, :wc]


def make_lr(hr: ArrayOrTensor, scale: int) -> ArrayOrTensor:
    """Evaluation LR: MATLAB imresize(modcrop(hr, scale), 1/scale), then rounded to 8 bits like a saved file.

    numpy uint8 HxW(xC) in -> uint8 out. torch float (N)CHW in [0, 1] -> float in [0, 1] on the 8-bit grid
    (k/255), same device. Other inputs raise (a float numpy array has an ambiguous range).
    """
    scale = _check_scale(scale, "make_lr")
    hr = modcrop(hr, scale)
    if isinstance(hr, np.ndarray):
        if hr.dtype != np.uint8:
            raise TypeError(f"make_lr: numpy hr must be uint8 (as read from the file), got {hr.dtype}")
        return quantize_uint8(imresize(hr.astype(np.float64), scale_factor=1.0 / scale))
    if not hr.is_floating_point():
        raise TypeError(f"make_lr: tensor hr must be float in [0, 1], got {hr.dtype} (use x.float() / 255)")
    lr = imresize(hr, scale_factor=1.0 / scale)
    return quantize_uint8(lr, data_range=1.0).to(hr.dtype) / 255.0


def training_degradation(hr: torch.Tensor, scale: int, sigma: float = 1.0,
                         quantize: bool = True) -> torch.Tensor:
    """The paper's training input: Gaussian blur (sigma 1.0), then MATLAB-style bicubic downscale by `scale`.

    hr: float tensor (N)CHW in [0, 1] with H and W multiples of `scale` (288x288 patches are, for 4 and 8).
    The blur kernel is truncated at 4 sigma (9x9 for sigma 1, like scipy's default) with reflect padding
    (torchvision). `quantize` rounds the result to the 8-bit grid so training inputs look like the 8-bit
    evaluation LR files; pass False for the continuous version. Not differentiable by design (no_grad).
    """
    scale = _check_scale(scale, "training_degradation")
    if not isinstance(hr, torch.Tensor) or not hr.is_floating_point() or hr.ndim not in (3, 4):
        raise TypeError("training_degradation: hr must be a float tensor CHW or NCHW in [0, 1]")
    h, w = _hw(hr, "training_degradation")
    if h % scale or w % scale:
        raise ValueError(f"training_degradation: patch {h}x{w} is not a multiple of scale {scale}; "
                         "modcrop it first (data.degrade.modcrop) or use a patch size divisible by it")
    if sigma < 0:
        raise ValueError(f"training_degradation: sigma must be >= 0, got {sigma}")
    with torch.no_grad():
        x = hr
        if sigma > 0:
            radius = max(1, int(np.ceil(4.0 * sigma)))
            x = gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[float(sigma)] * 2)
        lr = imresize(x, scale_factor=1.0 / scale)
        if quantize:
            lr = quantize_uint8(lr, data_range=1.0).to(hr.dtype) / 255.0
    return lr
