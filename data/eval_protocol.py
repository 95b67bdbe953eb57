"""Evaluation protocols for SR: how the LR test input is made from an HR test image (the bicubic baseline of each
protocol is baselines.bicubic.eval_bicubic_upscale).

Why: the paper's x4 numbers use the standard protocol (bottom/right modcrop, MATLAB bicubic downscale rounded to
8 bits, MATLAB bicubic upscale), but its x8 numbers use a different recipe (data.johnson2016_protocol). Every
caller that makes an evaluation LR image (the SR harness, own-model evaluation, tests) goes through
`make_eval_lr`, so all methods of a run see the same LR images and the same HR ground truth.

Protocols (EVAL_PROTOCOLS):
- "standard": data.degrade.modcrop + make_lr; baseline = baselines.bicubic.bicubic_upscale (MATLAB imresize).
- "johnson2016": at x8 the paper's recipe (centred modcrop, skimage blur sigma 1, scipy bytescale, Pillow
  bilinear down; baseline Pillow bicubic up); at every other scale (x4) the standard protocol, as the paper's
  x4 row shows.
Scoring (Y of BT.601, border = scale, PSNR / SSIM) is the same under both.
"""
from __future__ import annotations

import numpy as np

from data.degrade import make_lr, modcrop
from data.johnson2016_protocol import johnson2016_lr

EVAL_PROTOCOLS = ("standard", "johnson2016")
DEFAULT_PROTOCOL = "standard"
JOHNSON2016_RECIPE_SCALES = (8,)  # where "johnson2016" differs from "standard"

DESCRIPTIONS = {
    "standard": "HR modcropped at the bottom/right; LR = MATLAB bicubic downscale rounded to 8 bits "
                "(data.degrade.make_lr); bicubic baseline = MATLAB bicubic upscale",
    "johnson2016": "the paper's own: standard at x4; at x8 HR centred-modcropped, LR = skimage Gaussian blur "
                   "(sigma 1, [0, 1] floats) + scipy.misc.imresize bilinear (global min..max stretch to uint8, "
                   "Pillow antialiased BILINEAR); bicubic baseline = Pillow BICUBIC upscale "
                   "(data.johnson2016_protocol)",
}


def check_protocol(protocol: str) -> str:
    """`protocol` if it is one of EVAL_PROTOCOLS, else a ValueError naming the choices."""
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; choose one of {', '.join(EVAL_PROTOCOLS)}")
    return protocol


def uses_recipe(scale: int, protocol: str) -> bool:
    """True where `protocol` at `scale` is the johnson2016 x8 recipe rather than the standard protocol."""
    return check_protocol(protocol) == "johnson2016" and scale in JOHNSON2016_RECIPE_SCALES


def make_eval_lr(hr_uint8: np.ndarray, scale: int, protocol: str = DEFAULT_PROTOCOL
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(HR ground truth, LR input) for one test image: both uint8, HxW for a gray file, HxWx3 for RGB.

    The HR is cropped to a multiple of `scale` as the protocol says (score against it, not the file's image);
    LR is (H/scale, W/scale). Every method of a run gets this same LR image.
    """
    if not isinstance(hr_uint8, np.ndarray) or hr_uint8.dtype != np.uint8:
        raise TypeError("make_eval_lr: hr must be a uint8 numpy array HxW or HxWx3 (as read from the file), got "
                        f"{getattr(hr_uint8, 'dtype', type(hr_uint8).__name__)}")
    if uses_recipe(scale, protocol):
        return johnson2016_lr(hr_uint8, scale)
    hr = modcrop(hr_uint8, scale)
    return hr, make_lr(hr, scale)

