"""The paper's SR post-processing (Sec. 4.2): histogram matching of the network output to its low-res input.

One function so that the reproduce harness, `bench.sr upscale` and the tests apply the same arithmetic. It sees
only the output and the LR input it was computed from, never a ground truth.
"""
from __future__ import annotations

import numpy as np


def histmatch(sr_uint8: np.ndarray, lr_uint8: np.ndarray) -> np.ndarray:
    """The paper's post-processing: match each channel's histogram of the SR output to the LR input's."""
    from skimage.exposure import match_histograms

    # float inputs: skimage writes uint8 inputs' matched values into a uint8 array (truncating); we round instead
    matched = match_histograms(sr_uint8.astype(np.float64), lr_uint8.astype(np.float64), channel_axis=-1)
    return np.clip(np.floor(matched + 0.5), 0, 255).astype(np.uint8)
