"""YCbCr of ITU-R BT.601 (studio range) as MATLAB's `rgb2ycbcr` / `ycbcr2rgb` compute it: one home for the matrix.

Why here (in data/): SRCNN trains and runs on Y (its patches are made in data/patches.py) and the SR metrics score
RGB images on Y, both with MATLAB's coefficients (Y = 16 + 65.481 R + 128.553 G + 24.966 B, R, G, B in [0, 1]).
"""
from __future__ import annotations

from typing import overload

import numpy as np
import torch

# MATLAB rgb2ycbcr for R, G, B in [0, 1], results in [0, 255]: ycbcr = OFFSET + M @ rgb.
_M = torch.tensor([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]], dtype=torch.float64)
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)
_Y_ROW = _M[0].numpy().copy()  # the same float64 coefficients, for numpy images


def _channel_matmul(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", m.to(x.dtype), x)


def check_rgb(x: torch.Tensor, fn: str) -> None:
    """Raise a ValueError naming `fn` unless x is a float (N)CHW tensor with 3 channels."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{fn}: expected a float tensor (N)CHW with 3 channels, got {shape}")


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB rgb2ycbcr on [0, 1] RGB, returned in [0, 1] (Y in [16, 235] / 255): the space SRCNN works in."""
    check_rgb(rgb, "rgb_to_ycbcr")
    off = _OFFSET.to(device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    return (_channel_matmul(_M.to(rgb.device), rgb) + off) / 255.0


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycbcr` (MATLAB ycbcr2rgb for double input), [0, 1] in and out, not clipped."""
    check_rgb(ycbcr, "ycbcr_to_rgb")
    off = _OFFSET.to(device=ycbcr.device, dtype=ycbcr.dtype).view(3, 1, 1)
    inv = torch.linalg.inv(_M).to(ycbcr.device)
    return _channel_matmul(inv, ycbcr * 255.0 - off)


@overload
def rgb_to_y(img: torch.Tensor) -> torch.Tensor: ...
@overload
def rgb_to_y(img: np.ndarray) -> np.ndarray: ...
def rgb_to_y(img: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Y of BT.601, in the layout of each caller (the arithmetic of each branch is kept as scores depend on it).

    torch (networks, SRCNN): float (N)CHW RGB in [0, 1] -> Y in [0, 1] (16/255 .. 235/255) keeping a channel axis,
    (N, 1, H, W) or (1, H, W).
    numpy (scoring): HxWx3, uint8 (divided by 255) or float already in [0, 1] -> float64 HxW on the [0, 255] scale,
    not rounded (MATLAB's Y for double input, times 255).
    """
    if isinstance(img, torch.Tensor):
        return rgb_to_ycbcr(img)[..., :1, :, :]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y: expected HxWx3, got shape {img.shape} "
                         "(gray images are scored as they are)")
    x = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    return 16.0 + x @ _Y_ROW
