"""data.resize and baselines.bicubic against a direct numpy transcription of MATLAB's imresize (bicubic, antialiasing on)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.bicubic import bicubic_upscale
from data.resize import imresize, quantize_uint8


# ---- reference: MATLAB imresize.m's algorithm, written out (contributions() + resizeAlongDim) -----------
def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic, a = -0.5 (MATLAB's `cubic`)."""
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _matlab_weights(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """(out_len, in_len) matrix of MATLAB's contributions(), out-of-range indices mirrored (symmetric)."""
    if scale < 1:  # antialiasing: stretch the kernel by 1/scale
        kernel, width = (lambda t: scale * _cubic(scale * t)), 4.0 / scale
    else:
        kernel, width = _cubic, 4.0
    x = np.arange(1, out_len + 1)                       # 1-based output positions
    u = x / scale + 0.5 * (1 - 1 / scale)               # = (x0 + 0.5) / scale - 0.5 in 0-based terms
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(np.ceil(width)) + 2)
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])  # symmetric mirror
    idx = aux[np.mod(idx - 1, aux.size).astype(int)] - 1
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), idx.shape[1]), idx.ravel()), w.ravel())
    return m


def matlab_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """imresize(img, scale) for float HxW or HxWxC, rows first (MATLAB's order for equal scales)."""
    h, w = img.shape[:2]
    out_h, out_w = int(np.ceil(h * scale - 1e-9)), int(np.ceil(w * scale - 1e-9))
    out = np.tensordot(_matlab_weights(h, out_h, scale), img, axes=(1, 0))
    return np.moveaxis(np.tensordot(_matlab_weights(w, out_w, scale), out, axes=(1, 1)), 0, 1)


# ---- tests -----------------------------------------------------------------------------------------------
CASES = [((12, 16), 1 / 4), ((24, 8), 1 / 2), ((18, 27), 1 / 3), ((16, 24), 1 / 8), ((5, 7), 4.0),
         ((3, 4), 8.0), ((6, 5), 2.0), ((9, 6), 3.0)]


@pytest.mark.parametrize("shape,scale", CASES)
def test_numpy_matches_matlab_reference(shape, scale):
    rng = np.random.default_rng(0)
    for img in (rng.random(shape), rng.random(shape + (3,))):
        ours = imresize(img, scale_factor=scale)
        ref = matlab_imresize(img, scale)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,scale", CASES)
def test_torch_matches_matlab_reference(shape, scale):
    rng = np.random.default_rng(1)
    img = rng.random(shape + (3,))
    ref = matlab_imresize(img, scale)
    nchw = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)  # batch of 2, float64
    ours = imresize(nchw, scale_factor=scale)
    assert ours.dtype == torch.float64 and ours.shape == (2, 3) + ref.shape[:2]
    for b in range(2):
        np.testing.assert_allclose(ours[b].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-12)
    chw32 = imresize(nchw[0].float(), scale_factor=scale)  # CHW, float32 keeps float32
    assert chw32.dtype == torch.float32
    np.testing.assert_allclose(chw32.permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-5)


def test_borders_are_symmetric_not_zero():
    # A constant image stays constant only if the border is padded by mirroring (zero padding darkens it).
    img = np.full((16, 16), 0.7)
    np.testing.assert_allclose(imresize(img, scale_factor=1 / 4), 0.7, atol=1e-12)
    np.testing.assert_allclose(imresize(torch.full((1, 1, 4, 4), 0.7, dtype=torch.float64), scale_factor=4),
                               0.7, atol=1e-12)


def test_out_shape_and_scale_agree_when_integer():
    img = np.random.default_rng(2).random((20, 12, 3))
    a = imresize(img, scale_factor=0.25)
    b = imresize(img, out_shape=(5, 3))
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_quantize_uint8_rounds_like_matlab():
    x = np.array([-3.0, 0.49, 0.5, 1.5, 2.5, 254.5, 300.0])
    assert quantize_uint8(x).tolist() == [0, 0, 1, 2, 3, 255, 255]  # ties away from zero, not to even
    assert quantize_uint8(torch.tensor([0.5 / 255, 1.0]), data_range=1.0).tolist() == [1, 255]


def test_bicubic_upscale_dtypes_and_matlab_values():
    rng = np.random.default_rng(3)
    lr = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    up = bicubic_upscale(lr, 4)
    assert up.dtype == np.uint8 and up.shape == (24, 20, 3)
    ref = np.floor(np.clip(matlab_imresize(lr.astype(np.float64), 4.0), 0, 255) + 0.5)
    np.testing.assert_array_equal(up, ref)
    t = bicubic_upscale(torch.from_numpy(lr).permute(2, 0, 1), 4)
    assert t.dtype == torch.uint8
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), up)


def test_bad_input_errors_name_the_fix():
    with pytest.raises(TypeError, match="float"):
        imresize(np.zeros((4, 4), np.uint8), scale_factor=2)
    with pytest.raises(ValueError, match="scale_factor or out_shape"):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="positive integer"):
        bicubic_upscale(np.zeros((4, 4), np.uint8), 0)
