"""Image I/O on every kind of bad or unusual input: each file is crafted in tmp_path with PIL/numpy."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from data.fetch import DEFAULT_MIRROR
from data.images import (
    ImageError,
    ImageNotFoundError,
    check_decodable,
    image_info,
    is_grayscale,
    load_image,
    load_image_uint8,
    save_image,
)


def rgb_pattern(h: int = 12, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 15, y * 20, (x + y) * 7], axis=2).astype(np.uint8)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    """A minimal PNG (filter 0 rows), for what Pillow cannot write: 16-bit colour, absurd header sizes."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b"")


def test_rgb_round_trip(tmp_path):
    arr = rgb_pattern()
    p = save_image(arr, tmp_path / "a.png")
    t = load_image(p)
    assert t.dtype == torch.float32 and t.shape == (3, 12, 16)
    assert torch.equal(t, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    assert np.array_equal(load_image_uint8(p), arr) and not is_grayscale(p)
    save_image(t.unsqueeze(0), tmp_path / "b.png")  # 1xCxHxW tensor
    assert np.array_equal(load_image_uint8(tmp_path / "b.png"), arr)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary files left


def test_save_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="NaN or Inf"):
        save_image(torch.full((3, 4, 4), float("nan")), tmp_path / "n.png")
    with pytest.raises(ValueError, match="should end in .png"):
        save_image(rgb_pattern(), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="batch of 2"):
        save_image(torch.zeros(2, 3, 4, 4), tmp_path / "b.png")
    with pytest.raises(ValueError, match="not CHW"):
        save_image(torch.zeros(4, 5, 5), tmp_path / "c.png")
    assert not list(tmp_path.iterdir())
    save_image(torch.tensor([[[-0.5, 0.5, 1.5]]]), tmp_path / "g.png")  # 1xHxW gray, clamped and rounded
    assert load_image_uint8(tmp_path / "g.png", keep_gray=True).tolist() == [[0, 128, 255]]


def test_missing_and_zero_byte_files(tmp_path):
    with pytest.raises(ImageNotFoundError, match="no such file") as err:
        load_image(tmp_path / "nope.png")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"zero\.jpg: the file is empty \(0 bytes\)\. Fix: ") as err:
        load_image(tmp_path / "zero.jpg")
    assert err.value.path == tmp_path / "zero.jpg" and err.value.fix


def test_garbage_file(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(ImageError, match="junk.jpg: not a recognised image format"):
        load_image_uint8(tmp_path / "junk.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
def test_truncated_files(tmp_path, fmt):
    p = tmp_path / f"full.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p, format=fmt)
    data = p.read_bytes()
    bad = tmp_path / f"trunc.{fmt.lower()}"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match=r"trunc\.\w+: the file is truncated or corrupt") as err:
        load_image(bad)
    assert err.value.__cause__ is None or not isinstance(err.value.__cause__, ImageError)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        check_decodable(bad)
    assert check_decodable(p).width == 64


def test_grayscale_file(tmp_path):
    gray = (np.arange(12 * 16).reshape(12, 16) % 256).astype(np.uint8)
    p = tmp_path / "g.png"
    Image.fromarray(gray).save(p)
    assert is_grayscale(p)
    assert np.array_equal(load_image_uint8(p, keep_gray=True), gray)
    rgb = load_image_uint8(p)
    assert rgb.shape == (12, 16, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))
    t = load_image(p)
    assert t.shape == (3, 12, 16) and torch.equal(t[0], t[2])
    # an RGB file whose content is gray (like Set14 man) is not a 1-channel file
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(tmp_path / "rgbgray.bmp")
    assert not is_grayscale(tmp_path / "rgbgray.bmp")
    assert load_image_uint8(tmp_path / "rgbgray.bmp", keep_gray=True).shape == (12, 16, 3)


def test_palette_files(tmp_path):
    idx = (np.arange(12 * 16).reshape(12, 16) % 7).astype(np.uint8)
    # gray palette that is not the identity: value = 255 - 30 * index
    gray_pal = [v for i in range(256) for v in [max(0, 255 - 30 * i)] * 3]
    im = Image.fromarray(idx, mode="P")
    im.putpalette(gray_pal)
    im.save(tmp_path / "pgray.png")
    assert is_grayscale(tmp_path / "pgray.png")
    assert np.array_equal(load_image_uint8(tmp_path / "pgray.png", keep_gray=True), 255 - 30 * idx.astype(int))
    im.save(tmp_path / "pgray.bmp")  # like Set14 bridge: an 8-bit palettised grayscale BMP
    assert is_grayscale(tmp_path / "pgray.bmp")
    assert np.array_equal(load_image_uint8(tmp_path / "pgray.bmp", keep_gray=True), 255 - 30 * idx.astype(int))
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 99, 199], [1, 2, 3], [50, 60, 70], [7, 7, 8]])
    im = Image.fromarray(idx, mode="P")
    im.putpalette(colours.astype(np.uint8).ravel().tolist())
    im.save(tmp_path / "pcol.png")
    assert not is_grayscale(tmp_path / "pcol.png")
    assert np.array_equal(load_image_uint8(tmp_path / "pcol.png"), colours[idx])


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [10, 20, 30]
    rgba[0, :, 3] = [0, 255, 128]
    rgba[1, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    info = image_info(tmp_path / "a.png")
    assert info.has_alpha and "composited on white" in " ".join(info.notes)
    out = load_image_uint8(tmp_path / "a.png")
    a = 128 / 255
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [10, 20, 30]
    assert out[0, 2].tolist() == [round(v * a + 255 * (1 - a)) for v in (10, 20, 30)]
    assert out[1].tolist() == [[10, 20, 30]] * 3
    la = np.zeros((1, 2, 2), np.uint8)
    la[0, :, 0], la[0, :, 1] = 40, [0, 255]
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert is_grayscale(tmp_path / "la.png")
    assert load_image_uint8(tmp_path / "la.png", keep_gray=True).tolist() == [[255, 40]]
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "ptrans.png", transparency=0)
    assert load_image_uint8(tmp_path / "ptrans.png").tolist() == [[[255, 255, 255], [0, 0, 200]]]


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    info = image_info(tmp_path / "g16.png")
    assert info.bits == 16 and info.is_grayscale
    t = load_image(tmp_path / "g16.png")
    assert torch.allclose(t[0, 0], torch.tensor(values[0] / 65535.0, dtype=torch.float32))
    assert load_image_uint8(tmp_path / "g16.png", keep_gray=True).tolist() == [[0, 1, 4, 128, 255]]


def test_16bit_colour_png_within_one_level(tmp_path):
    rgb = np.array([[[65535, 32896, 971], [0, 1000, 40000]]], np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    (tmp_path / "c16.png").write_bytes(png_bytes(2, 1, 16, 2, rows))
    info = image_info(tmp_path / "c16.png")
    assert info.bits == 16 and any("16-bit colour" in n for n in info.notes)
    out = load_image_uint8(tmp_path / "c16.png").astype(int)
    assert np.abs(out - np.round(rgb / 257.0)).max() <= 1


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    info = image_info(tmp_path / "cmyk.jpg")
    assert info.mode == "CMYK" and any("CMYK" in n for n in info.notes)
    out = load_image_uint8(tmp_path / "cmyk.jpg")
    assert out.shape == (8, 8, 3)
    r, g, b = out[4, 4].astype(int)
    assert r > 230 and g < 30 and b < 30  # cyan 0, magenta+yellow full: red


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_rotation_is_applied(tmp_path, fmt):
    arr = np.zeros((10, 20, 3), np.uint8)  # stored 20 wide, 10 high
    arr[:4, :4] = [255, 0, 0]  # red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / f"rot.{fmt.lower()}"
    Image.fromarray(arr).save(p, format=fmt, exif=exif, quality=100)
    info = image_info(p)
    assert (info.width, info.height, info.exif_orientation) == (10, 20, 6)
    out = load_image_uint8(p)
    assert out.shape == (20, 10, 3)
    assert out[1, -2, 0] > 200 and out[1, -2, 1] < 60  # stored top-left is displayed top-right
    assert load_image(p).shape == (3, 20, 10)


def test_enormous_images_are_refused_from_the_header(tmp_path, monkeypatch):
    for w, h in [(10_000, 10_000), (20_000, 20_000)]:  # over PIL's limit, and over twice it (PIL's own error)
        p = tmp_path / f"bomb{w}.png"
        p.write_bytes(png_bytes(w, h, 8, 0, b"\x00" * 10))  # tiny file, absurd header
        with pytest.raises(ImageError, match=rf"bomb{w}\.png: .*(exceeds|too large).*PERCEPTUAL_MAX_PIXELS") as e:
            load_image(p)
        assert "89,478,485" in str(e.value) or "178956970" in str(e.value)
    small = tmp_path / "small.png"
    Image.fromarray(rgb_pattern()).save(small)
    with pytest.raises(ImageError, match=r"16x12 = 192 pixels exceeds the limit of 100 pixels"):
        load_image(small, max_pixels=100)
    monkeypatch.setenv("PERCEPTUAL_MAX_PIXELS", "150")
    with pytest.raises(ImageError, match="limit of 150 pixels"):
        image_info(small)
    monkeypatch.setenv("PERCEPTUAL_MAX_PIXELS", "1000")
    assert load_image(small).shape == (3, 12, 16)


def test_float_images_are_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="32-bit float image"):
        load_image(tmp_path / "f.tif")


@pytest.mark.skipif(not (DEFAULT_MIRROR / "sr/Set14/bridge.bmp").is_file(), reason="no shared data mirror")
def test_set14_bridge_is_one_channel_and_man_is_not():
    bridge, man = DEFAULT_MIRROR / "sr/Set14/bridge.bmp", DEFAULT_MIRROR / "sr/Set14/man.bmp"
    assert is_grayscale(bridge) and not is_grayscale(man)
    g = load_image_uint8(bridge, keep_gray=True)
    assert g.shape == (512, 512) and np.array_equal(g, np.asarray(Image.open(bridge).convert("L")))
    jpg = DEFAULT_MIRROR / "sr/BSD100/3096.jpg"  # libjpeg defaults, exactly what PIL decodes
    assert np.array_equal(load_image_uint8(jpg), np.asarray(Image.open(jpg).convert("RGB")))
