"""SR metrics with the published protocol's explicit options (BasicSR style): PSNR/SSIM on Y, crop.

LPIPS (model and distance) is perceptual/lpips_offline.py.

Why explicit: each option moves the numbers (Y conversion, border crop, SSIM window and 'valid' filtering,
8-bit rounding of the SR output, gray images). The protocol, checked against the published bicubic rows in
tests/test_protocol.py:
- ground truth and SR output are 8-bit (SR output is rounded with `to_uint8` before scoring);
- RGB images are scored on Y of ITU-R BT.601 as MATLAB's rgb2ycbcr computes it for double input in [0, 1]
  (Y = 16 + 65.481 R + 128.553 G + 24.966 B), kept as float on the [0, 255] scale, not rounded;
- 1-channel images (Set14 `bridge`) are scored on their gray values as they are, as the MATLAB scripts do;
- `scale` pixels are cropped from every border; PSNR with peak 255;
- SSIM is Wang et al.'s ssim_index: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, L 255, 'valid'
  filtering (only windows fully inside the image), mean of the SSIM map.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import correlate1d

from data.colour import rgb_to_y
from data.resize import quantize_uint8

SSIM_WIN, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def to_uint8(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """SR output -> uint8 HxW(xC) numpy, rounded like MATLAB. Float tensors (N=1)CHW are taken as [0, 1];
    float numpy arrays as [0, 255]; uint8 passes through."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"to_uint8: expected one image, got a batch of {t.shape[0]}; "
                                 "score images one by one")
            t = t[0]
        if t.ndim != 3:
            raise ValueError(f"to_uint8: tensor must be CHW or 1CHW, got shape {tuple(img.shape)}")
        t = t if t.dtype == torch.uint8 else quantize_uint8(t.double(), data_range=1.0)
        arr = t.permute(1, 2, 0).numpy()
        return arr[..., 0] if arr.shape[2] == 1 else arr
    if isinstance(img, np.ndarray):
        if img.dtype == np.uint8:
            return img
        if np.issubdtype(img.dtype, np.floating):
            return quantize_uint8(img, data_range=255.0)
        raise TypeError(f"to_uint8: unsupported numpy dtype {img.dtype}")
    raise TypeError(f"to_uint8: expected numpy array or torch tensor, got {type(img).__name__}")


def crop_border(img: np.ndarray, n: int) -> np.ndarray:
    """Drop `n` pixels from each border of HxW(xC) (the protocol crops `scale` pixels)."""
    if n < 0:
        raise ValueError(f"crop_border: n must be >= 0, got {n}")
    if n == 0:
        return img
    h, w = img.shape[:2]
    if 2 * n >= h or 2 * n >= w:
        raise ValueError(f"crop_border: cannot crop {n} pixels from each border of a {h}x{w} image")
    return img[n:-n, n:-n, ...]


def _prepare(a: np.ndarray, b: np.ndarray, crop: int, test_y_channel: bool,
             fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, crop the border, and take Y of RGB images (gray ones as they are) as float64."""
    if a.shape != b.shape:
        raise ValueError(f"{fn}: shapes differ: {a.shape} vs {b.shape} "
                         "(modcrop the HR to a multiple of the scale)")
    if a.ndim not in (2, 3):
        raise ValueError(f"{fn}: images must be HxW or HxWxC, got shape {a.shape}")
    a, b = crop_border(a, crop), crop_border(b, crop)
    if test_y_channel and a.ndim == 3 and a.shape[2] == 3:
        return rgb_to_y(a), rgb_to_y(b)
    # Gray (HxW or HxWx1) images: their values as they are.
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, test_y_channel: bool = False,
         data_range: float = 255.0) -> float:
    """PSNR in dB: 10 log10(data_range^2 / MSE), over all channels (Y only when test_y_channel)."""
    x, y = _prepare(a, b, crop_border, test_y_channel, "psnr")
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _gaussian_1d(win: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """MATLAB fspecial('gaussian', win, sigma) is the outer product of this normalised 1-D window."""
    t = np.arange(win) - (win - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """filter2(g g^T, x, 'valid'): separable correlation, keeping only windows fully inside x."""
    r = (g.size - 1) // 2
    out = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[r:x.shape[0] - r, r:x.shape[1] - r]


def ssim_map(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Wang et al. SSIM map of two float HxW images, 'valid' region only ((H-10)x(W-10))."""
    if min(x.shape) < SSIM_WIN:
        raise ValueError(f"ssim: image {x.shape} is smaller than the {SSIM_WIN}x{SSIM_WIN} window")
    g = _gaussian_1d()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    syy = _filter_valid(y * y, g) - mu_y**2
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, test_y_channel: bool = False,
         data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al., 'valid' filtering); multi-channel inputs average the per-channel means."""
    x, y = _prepare(a, b, crop_border, test_y_channel, "ssim")
    if x.ndim == 2:
        return float(ssim_map(x, y, data_range).mean())
    return float(np.mean([ssim_map(x[..., c], y[..., c], data_range).mean() for c in range(x.shape[2])]))


def _as_gray(img: np.ndarray, name: str) -> np.ndarray:
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 1:
        return img[..., 0]
    if img.ndim == 3 and img.shape[2] == 3 and (img == img[..., :1]).all():
        return img[..., 0]
    raise ValueError(f"evaluate_pair: {name} is marked gray but has shape {img.shape} "
                     "with differing channels")


def evaluate_pair(sr_uint8: np.ndarray, hr_uint8: np.ndarray, scale: int, gray: bool) -> dict[str, float]:
    """The protocol's score of one SR image against its (modcropped) HR: {'psnr_y', 'ssim_y'}.

    Both uint8 HxWx3 (or HxW when `gray`: the HR file is 1-channel; a gray SR output given as 3 equal
    channels is accepted). `scale` pixels are cropped from each border. Round float SR output first with
    `to_uint8`.
    """
    for name, img in (("sr_uint8", sr_uint8), ("hr_uint8", hr_uint8)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise TypeError(f"evaluate_pair: {name} must be a uint8 numpy array "
                            "(round SR output with to_uint8)")
    if gray:
        sr, hr = _as_gray(sr_uint8, "sr_uint8"), _as_gray(hr_uint8, "hr_uint8")
    else:
        if sr_uint8.ndim != 3 or sr_uint8.shape[2] != 3 or hr_uint8.ndim != 3 or hr_uint8.shape[2] != 3:
            raise ValueError(f"evaluate_pair: colour images must be HxWx3, got {sr_uint8.shape} and "
                             f"{hr_uint8.shape} (pass gray=True for 1-channel ground truth)")
        sr, hr = sr_uint8, hr_uint8
    return {"psnr_y": psnr(sr, hr, crop_border=scale, test_y_channel=True),
            "ssim_y": ssim(sr, hr, crop_border=scale, test_y_channel=True)}
