"""The x8 low-res recipe behind the paper's Fig. 9 numbers (Johnson et al. 2016), rebuilt step by step.

Why: the paper's x8 bicubic row (Set5 23.80, Set14 22.37, BSD100 22.11 dB) is 0.6-1.6 dB below the standard x8
protocol; it is reproduced to the printed rounding only by this recipe (see docs/x8-protocol.md and
../shared/reference/johnson2016.md): centred modcrop; skimage Gaussian blur (sigma 1) on [0, 1] floats; the old
`scipy.misc.imresize` with its default bilinear interpolation, which first stretches the image's global
min..max to 0..255 (`bytescale`) and then calls Pillow's antialiased `resize(BILINEAR)`; and, for the bicubic
baseline, `scipy.misc.imresize(lr, (H, W), 'bicubic')`, i.e. Pillow's BICUBIC on the uint8 LR.

scipy removed `scipy.misc` (1.2/1.3), so `bytescale` and the imresize path are rewritten here to behave like
scipy 0.14-1.1 (the versions of 2016): same arithmetic, same rounding (add 0.5, truncate). Guarantees: uint8 in,
uint8 out; deterministic; a gray image stays 2-D throughout (Pillow mode 'L').
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIGMA = 1.0  # the paper's blur (Sec. 4.2)
TRUNCATE = 4.0  # skimage.filters.gaussian's default: the kernel reaches 4 sigma


def _check_image(img: np.ndarray, fn: str) -> None:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{fn}: image must be a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"{fn}: image must be HxW (gray) or HxWx3 (RGB), got shape {img.shape}")


def centred_modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W to multiples of `scale`, centred: drop (H % scale) // 2 rows at the top, the rest at the bottom
    (columns likewise, left then right). The standard protocol's modcrop drops everything at the bottom/right."""
    _check_image(img, "centred_modcrop")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"centred_modcrop: scale must be a positive integer (e.g. 8), got {scale!r}")
    h, w = img.shape[:2]
    hc, wc = h - h % scale, w - w % scale
    if hc == 0 or wc == 0:
        raise ValueError(f"centred_modcrop: image of size {h}x{w} is smaller than scale {scale}; use a larger image")
    top, left = (h % scale) // 2, (w % scale) // 2
    return img[top:top + hc, left:left + wc]


def bytescale(data: np.ndarray) -> np.ndarray:
    """scipy.misc.bytescale with its defaults (scipy 0.14-1.1): stretch the array's global min..max to 0..255.

    uint8 input is returned unchanged (as scipy did). Otherwise (x - min) * (255 / (max - min)), clipped to
    [0, 255], plus 0.5, truncated to uint8; a constant array (max == min) divides by 1 instead, so it maps to 0.
    The min and max are over the whole array: one stretch for all channels of an RGB image, not one per channel.
    """
    if not isinstance(data, np.ndarray):
        raise TypeError(f"bytescale: data must be a numpy array, got {type(data).__name__}")
    if data.dtype == np.uint8:
        return data
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise ValueError("bytescale: data must be a non-empty array of finite numbers")
    cmin, cmax = data.min(), data.max()
    cscale = cmax - cmin
    if cscale == 0:
        cscale = 1
    scale = 255.0 / cscale
    stretched = (data - cmin) * scale + 0
    return (stretched.clip(0, 255) + 0.5).astype(np.uint8)


def pil_imresize(img: np.ndarray, size_hw: tuple[int, int], interp: str = "bilinear") -> np.ndarray:
    """scipy.misc.imresize(img, (h, w), interp): bytescale (a no-op for uint8), then Pillow's resize.

    Pillow's BILINEAR and BICUBIC widen their kernel when downscaling (antialiased), as scipy's call did.
    """
    _check_image(img, "pil_imresize")
    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    if interp not in filters:
        raise ValueError(f"pil_imresize: interp must be one of {sorted(filters)}, got {interp!r}")
    h, w = (int(v) for v in size_hw)
    if h < 1 or w < 1:
        raise ValueError(f"pil_imresize: size must be positive (height, width), got {size_hw!r}")
    pil = Image.fromarray(np.ascontiguousarray(bytescale(img)))
    return np.array(pil.resize((w, h), resample=filters[interp]))  # a writable copy


def blur(hr_uint8: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """skimage.filters.gaussian(hr / 255, sigma, mode='nearest', truncate=4) per channel; float64 in [0, 1]."""
    from skimage.filters import gaussian

    _check_image(hr_uint8, "blur")
    x = hr_uint8.astype(np.float64) / 255.0  # skimage's img_as_float of a uint8 image
    return gaussian(x, sigma=sigma, mode="nearest", truncate=TRUNCATE, channel_axis=-1 if x.ndim == 3 else None)


def johnson2016_lr(hr_uint8: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(centred-modcropped HR, LR) by the recipe: blur, bytescale, Pillow bilinear downscale by `scale`."""
    if not isinstance(hr_uint8, np.ndarray) or hr_uint8.dtype != np.uint8:
        raise TypeError("johnson2016_lr: hr must be a uint8 numpy array (as read from the file), got "
                        f"{getattr(hr_uint8, 'dtype', type(hr_uint8).__name__)}")
    hr = centred_modcrop(hr_uint8, scale)
    h, w = hr.shape[:2]
    return hr, pil_imresize(blur(hr), (h // scale, w // scale), "bilinear")


def johnson2016_upscale(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline of the recipe: scipy.misc.imresize(lr, (H, W), 'bicubic') = Pillow BICUBIC, uint8."""
    if not isinstance(lr_uint8, np.ndarray) or lr_uint8.dtype != np.uint8:
        raise TypeError("johnson2016_upscale: lr must be a uint8 numpy array")
    h, w = lr_uint8.shape[:2]
    return pil_imresize(lr_uint8, (h * scale, w * scale), "bicubic")
