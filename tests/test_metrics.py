"""bench.metrics against scikit-image's PSNR/SSIM, the BT.601 formula, and crop/modcrop on odd sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import crop_border, evaluate_pair, psnr, ssim, ssim_map, to_uint8
from data.colour import rgb_to_y
from data.degrade import modcrop
from perceptual.lpips_offline import lpips_distance

# Wang et al. (2004) parameters in scikit-image's terms. With gaussian_weights, skimage's window is 11x11
# (truncate 3.5 * sigma 1.5 -> radius 5) and its mean SSIM drops a 5-pixel border of the map, i.e. exactly
# the positions whose window leaves the image: there its padding never enters, so it equals 'valid' filtering.
WANG = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255,
        "K1": 0.01, "K2": 0.03}


def _pair(shape, seed=0):
    """An image and a noisy copy of it (uint8), correlated like an SR output and its ground truth."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=shape).astype(np.float64)
    a = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1)) / 3  # some spatial structure
    b = np.clip(a + rng.normal(0, 12, size=shape), 0, 255)
    return a.astype(np.uint8), b.astype(np.uint8)


def test_psnr_matches_skimage():
    a, b = _pair((37, 29, 3))
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    ref = peak_signal_noise_ratio(ya[4:-4, 4:-4], yb[4:-4, 4:-4], data_range=255)
    assert psnr(a, b, crop_border=4, test_y_channel=True) == pytest.approx(ref, abs=1e-10)
    assert psnr(a, a) == float("inf")


def test_ssim_matches_skimage_gray_and_color():
    a, b = _pair((41, 33))
    ref = structural_similarity(a.astype(np.float64), b.astype(np.float64), **WANG)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-10)
    c, d = _pair((30, 45, 3), seed=1)
    ref = structural_similarity(c.astype(np.float64), d.astype(np.float64), channel_axis=2, **WANG)
    assert ssim(c, d) == pytest.approx(ref, abs=1e-10)
    ya, yb = rgb_to_y(c)[3:-3, 3:-3], rgb_to_y(d)[3:-3, 3:-3]
    assert ssim(c, d, crop_border=3, test_y_channel=True) == pytest.approx(
        structural_similarity(ya, yb, **WANG), abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_map_is_the_valid_region_of_skimage_map():
    a, b = _pair((26, 31), seed=2)
    _, full = structural_similarity(a.astype(np.float64), b.astype(np.float64), full=True, **WANG)
    ours = ssim_map(a.astype(np.float64), b.astype(np.float64))
    assert ours.shape == (26 - 10, 31 - 10)
    np.testing.assert_allclose(ours, full[5:-5, 5:-5], rtol=0, atol=1e-10)
    # Border handling matters: skimage's padded border values are not part of the 'valid' protocol.
    assert abs(full.mean() - ours.mean()) > 1e-4


def test_rgb_to_y_is_bt601_as_matlab():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 77]]],
                  dtype=np.uint8)
    r, g, b = (px[..., i] / 255.0 for i in range(3))
    expected = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    np.testing.assert_allclose(rgb_to_y(px), expected, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(px)[0, :5], [16, 235, 81.481, 144.553, 40.966], atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(px), rgb2ycbcr(px)[..., 0], atol=1e-9)  # skimage: same matrix
    np.testing.assert_allclose(rgb_to_y(px.astype(np.float64) / 255), expected, atol=1e-12)  # float in [0, 1]


def test_crop_border_odd_sizes():
    img = np.arange(7 * 9 * 3).reshape(7, 9, 3)
    out = crop_border(img, 2)
    assert out.shape == (3, 5, 3)
    np.testing.assert_array_equal(out, img[2:5, 2:7])
    assert crop_border(img[..., 0], 0).shape == (7, 9)
    with pytest.raises(ValueError, match="cannot crop"):
        crop_border(img, 4)


@pytest.mark.parametrize("h,w,scale,eh,ew", [(13, 11, 4, 12, 8), (17, 9, 8, 16, 8), (9, 7, 3, 9, 6)])
def test_modcrop_odd_sizes(h, w, scale, eh, ew):
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    out = modcrop(img, scale)
    assert out.shape == (eh, ew, 3)
    np.testing.assert_array_equal(out, img[:eh, :ew])  # crops bottom and right, keeps the top-left
    assert modcrop(img[..., 0], scale).shape == (eh, ew)
    t = torch.from_numpy(img).permute(2, 0, 1)
    assert tuple(modcrop(t, scale).shape) == (3, eh, ew)
    assert tuple(modcrop(t[None].repeat(2, 1, 1, 1), scale).shape) == (2, 3, eh, ew)
    np.testing.assert_array_equal(modcrop(t, scale).permute(1, 2, 0).numpy(), out)


def test_modcrop_rejects_bad_input():
    with pytest.raises(ValueError, match="smaller than scale"):
        modcrop(np.zeros((3, 10)), 4)
    with pytest.raises(ValueError, match="positive integer"):
        modcrop(np.zeros((8, 8)), 0)


def test_evaluate_pair_scores_gray_as_is_and_rgb_on_y():
    a, b = _pair((40, 36))
    res = evaluate_pair(a, b, scale=4, gray=True)
    ref = peak_signal_noise_ratio(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255)
    assert res["psnr_y"] == pytest.approx(ref, abs=1e-10)
    # A gray image pushed through the Y formula scores differently (Y compresses the range to 16..235).
    rgb_a, rgb_b = np.repeat(a[..., None], 3, 2), np.repeat(b[..., None], 3, 2)
    via_y = evaluate_pair(rgb_a, rgb_b, scale=4, gray=False)
    assert via_y["psnr_y"] == pytest.approx(res["psnr_y"] - 20 * np.log10(219 / 255), abs=1e-9)
    assert evaluate_pair(rgb_a, b, scale=4, gray=True) == res  # gray SR given as 3 equal channels
    c, d = _pair((40, 36, 3), seed=3)
    res = evaluate_pair(c, d, scale=4, gray=False)
    assert res["ssim_y"] == pytest.approx(structural_similarity(
        rgb_to_y(c)[4:-4, 4:-4], rgb_to_y(d)[4:-4, 4:-4], **WANG), abs=1e-10)
    with pytest.raises(TypeError, match="to_uint8"):
        evaluate_pair(c.astype(np.float32), d, scale=4, gray=False)
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate_pair(c[:-1], d, scale=4, gray=False)


def test_to_uint8_rounds_sr_output():
    t = torch.tensor([[[0.0, 0.5 / 255, 1.2], [-0.1, 128.5 / 255, 1.0]]], dtype=torch.float64).repeat(3, 1, 1)
    out = to_uint8(t)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[..., 0].tolist() == [[0, 1, 255], [0, 129, 255]]
    assert to_uint8(np.array([[0.5, 254.49]])).tolist() == [[1, 254]]


def test_lpips_distance_feeds_minus1_1_rgb():
    import lpips

    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    a, b = _pair((32, 40, 3))
    d = lpips_distance(model, a, b)
    ref = model(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1,
                torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1).item()
    assert d == pytest.approx(ref, rel=1e-5) and d > 0
    assert lpips_distance(model, a, a) == pytest.approx(0.0, abs=1e-6)
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    assert lpips_distance(model, ta, b) == pytest.approx(d, rel=1e-5)  # float [0, 1] tensor input
    g = a[..., 0]
    assert lpips_distance(model, g, b[..., 0]) == pytest.approx(
        lpips_distance(model, np.repeat(g[..., None], 3, 2), np.repeat(b[..., :1], 3, 2)), rel=1e-6)
