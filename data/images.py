"""Image I/O that never fails with a bare PIL stack trace: every bad file becomes an ImageError naming it and the fix.

load_image / load_image_uint8 decide per kind of input (undecodable, enormous, EXIF-rotated, gray, alpha,
palette, 16-bit, CMYK, float) and log what they changed on the `data.images` logger; JPEGs decode with Pillow's
defaults, as MATLAB's imread does. Each decision and why: docs/data.md.
"""
from __future__ import annotations

import logging
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from data.files import atomic_write

__all__ = [
    "ENV_MAX_PIXELS",
    "ImageError",
    "ImageInfo",
    "ImageNotFoundError",
    "check_decodable",
    "image_info",
    "is_grayscale",
    "load_image",
    "load_image_uint8",
    "max_pixels_limit",
    "save_image",
]

log = logging.getLogger(__name__)

ENV_MAX_PIXELS = "PERCEPTUAL_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default MAX_IMAGE_PIXELS
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_SIXTEEN_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION = 0x0112
_BOMB_FIX = f"downscale it, or raise the limit with {ENV_MAX_PIXELS}=<pixels> if you trust the file"


class ImageError(ValueError):
    """An image file that cannot be used as it is: `path`, `reason` and `fix` are kept as attributes."""

    def __init__(self, path: Path | str, reason: str, fix: str = ""):
        self.path, self.reason, self.fix = Path(path), reason, fix
        msg = f"cannot use image {path}: {reason}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image path does not exist (also a FileNotFoundError)."""


@dataclass
class ImageInfo:
    """What an image file holds, read from its header (no pixel decoding), plus the conversions loading will apply."""

    path: Path
    format: str | None
    mode: str
    width: int  # as displayed, i.e. after EXIF rotation
    height: int
    exif_orientation: int = 1
    is_grayscale: bool = False  # one channel in the file (or a palette of grays)
    has_alpha: bool = False
    bits: int = 8
    notes: list[str] = field(default_factory=list)


def max_pixels_limit() -> int:
    """The decompression-bomb limit in pixels: $PERCEPTUAL_MAX_PIXELS, else PIL's MAX_IMAGE_PIXELS default."""
    value = os.environ.get(ENV_MAX_PIXELS)
    if value:
        try:
            limit = int(value)
        except ValueError:
            raise ValueError(f"{ENV_MAX_PIXELS}={value!r} is not an integer number of pixels") from None
        if limit <= 0:
            raise ValueError(f"{ENV_MAX_PIXELS}={value!r} must be a positive number of pixels")
        return limit
    return DEFAULT_MAX_PIXELS


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    """Open lazily (header only) with every failure turned into an ImageError."""
    limit = max_pixels or max_pixels_limit()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageNotFoundError(path, "no such file", "check the path") from None
    except OSError as e:
        raise ImageError(path, f"cannot stat the file ({e.strerror})", "check the path and its permissions") from e
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file", "pass an image file")
    if size == 0:
        raise ImageError(path, "the file is empty (0 bytes)", "delete it or copy/download it again")
    # Our own check below replaces PIL's (so PERCEPTUAL_MAX_PIXELS can raise it); PIL's still guards > 2x its limit.
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if old_limit is not None and limit > old_limit:
                Image.MAX_IMAGE_PIXELS = limit
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"too large to decode safely ({e})", _BOMB_FIX) from None
    except UnidentifiedImageError:
        raise ImageError(path, "not a recognised image format, or its header is corrupt",
                         "re-export it as PNG or JPEG, or delete it") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure must name the file
        raise ImageError(path, f"cannot read the header ({type(e).__name__}: {e})",
                         "re-export it as PNG or JPEG, or delete it") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    w, h = img.size
    if w * h > limit:
        img.close()
        raise ImageError(path, f"{w}x{h} = {w * h:,} pixels exceeds the limit of {limit:,} pixels (a guard against "
                         f"decompression bombs)", _BOMB_FIX)
    if w == 0 or h == 0:
        img.close()
        raise ImageError(path, f"has zero size {w}x{h}", "delete it")
    return img


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, the pixels are still fine
        return 1
    return value if 1 <= value <= 8 else 1


def _gray_palette(img: Image.Image) -> bool:
    palette = img.getpalette()
    if not palette:
        return False
    rgb = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (img.mode == "P" and "transparency" in img.info)


def _info(path: Path, img: Image.Image) -> ImageInfo:
    orientation = _orientation(img)
    w, h = img.size
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    gray = img.mode in _GRAY_MODES or (img.mode == "P" and _gray_palette(img))
    info = ImageInfo(path, img.format, img.mode, w, h, orientation, gray, _has_alpha(img),
                     16 if img.mode in _SIXTEEN_BIT else 8)
    if orientation != 1:
        info.notes.append(f"rotated/flipped per EXIF orientation {orientation}")
    if info.has_alpha:
        info.notes.append(f"alpha ({img.mode}) composited on white")
    if img.mode == "CMYK":
        info.notes.append("CMYK converted to RGB (not colour-managed)")
    if img.mode in _SIXTEEN_BIT:
        info.notes.append("16-bit gray scaled to [0, 1]")
    if img.format == "PNG" and img.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
        info.bits = 16
        info.notes.append("16-bit colour PNG reduced to 8 bits by Pillow (high byte)")
    return info


def _png_bit_depth(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">B", head[24:25])[0]
    except OSError:
        return None
    return None


def image_info(path: Path | str, max_pixels: int | None = None) -> ImageInfo:
    """Read an image's header: size (after EXIF rotation), mode, grayscale/alpha/16-bit, and the conversions due."""
    path = Path(path)
    with _open(path, max_pixels) as img:
        return _info(path, img)


def is_grayscale(path: Path | str) -> bool:
    """True when the file stores one channel (e.g. Set14 bridge, an 8-bit palettised gray BMP); False for RGB files."""
    return image_info(path).is_grayscale


def _composite_on_white(arr: np.ndarray) -> np.ndarray:
    color, alpha = arr[..., :-1].astype(np.float32), arr[..., -1:].astype(np.float32) / 255.0
    out = color * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _decode(path: Path, max_pixels: int | None) -> tuple[np.ndarray, float, ImageInfo]:
    """Decode to (array, full-scale value, info): uint8 HxW/HxWx3 with scale 255, or uint16-range HxW with 65535."""
    img = _open(path, max_pixels)
    try:
        info = _info(path, img)
        try:
            img.load()
            if info.exif_orientation != 1:
                img = ImageOps.exif_transpose(img)
        except Image.DecompressionBombError as e:  # e.g. a GIF frame larger than its header said
            raise ImageError(path, f"too large to decode safely ({e})", _BOMB_FIX) from None
        except Exception as e:  # noqa: BLE001 - truncated/corrupt data in any format
            raise ImageError(path, f"the file is truncated or corrupt ({type(e).__name__}: {e})",
                             "copy/download it again, or delete it") from None
        mode = img.mode
        scale = 255.0
        if mode in _SIXTEEN_BIT:
            arr = np.asarray(img)
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
                raise ImageError(path, f"{mode} pixel values {int(arr.min())}..{int(arr.max())} are outside the "
                                 f"16-bit range", "save it as an 8-bit or 16-bit PNG")
            arr, scale = arr.astype(np.int32), 65535.0
        elif mode == "F":
            raise ImageError(path, "32-bit float image (mode F) has no defined value range",
                             "save it as an 8-bit or 16-bit PNG")
        elif mode in ("1", "L"):
            arr = np.asarray(img.convert("L"))
        elif mode in ("LA", "La"):
            arr = _composite_on_white(np.asarray(img.convert("LA")))[..., 0]
        elif mode == "P":
            if info.has_alpha:
                arr = _composite_on_white(np.asarray(img.convert("RGBA")))
            else:
                arr = np.asarray(img.convert("RGB"))
            if info.is_grayscale:
                arr = np.ascontiguousarray(arr[..., 0])
        elif mode in ("RGBA", "RGBa", "PA"):
            arr = _composite_on_white(np.asarray(img.convert("RGBA")))
        elif mode == "RGB":
            arr = np.asarray(img)
        else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
            try:
                arr = np.asarray(img.convert("RGB"))
            except Exception as e:  # noqa: BLE001
                raise ImageError(path, f"mode {mode} cannot be converted to RGB ({e})",
                                 "re-export it as an RGB PNG or JPEG") from None
    finally:
        img.close()
    for note in info.notes:
        log.info("%s: %s", path, note)
    return arr, scale, info


def load_image(path: Path | str, max_pixels: int | None = None) -> torch.Tensor:
    """Load an image as a float32 CHW RGB tensor in [0, 1] (grayscale replicated; see docs/data.md for each case)."""
    arr, scale, _ = _decode(Path(path), max_pixels)
    t = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)).div_(scale)
    if t.ndim == 2:
        return t.unsqueeze(0).expand(3, -1, -1).contiguous()
    return t.permute(2, 0, 1).contiguous()


def load_image_uint8(path: Path | str, keep_gray: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Load an image as uint8: HxWx3 RGB, or HxW when `keep_gray` and the file stores one channel (is_grayscale)."""
    arr, scale, _ = _decode(Path(path), max_pixels)
    if scale != 255.0:  # 16-bit: round(v * 255 / 65535) in exact integer arithmetic
        arr = ((arr.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.ndim == 2 and not keep_gray:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)


def check_decodable(path: Path | str, max_pixels: int | None = None) -> ImageInfo:
    """Decode an image fully (catching truncated files) and return its info; raises ImageError like load_image."""
    path = Path(path)
    img = _open(path, max_pixels)
    try:
        info = _info(path, img)
        try:
            if img.format == "JPEG":  # DCT-domain downscaled decode: reads every byte (truncation is still caught)
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        except Image.DecompressionBombError as e:
            raise ImageError(path, f"too large to decode safely ({e})", _BOMB_FIX) from None
        except Exception as e:  # noqa: BLE001
            raise ImageError(path, f"the file is truncated or corrupt ({type(e).__name__}: {e})",
                             "copy/download it again, or delete it") from None
        if img.mode == "F":
            raise ImageError(path, "32-bit float image (mode F) has no defined value range",
                             "save it as an 8-bit or 16-bit PNG")
    finally:
        img.close()
    return info


def _to_uint8_array(image: Any, path: Path) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"save_image({path}): got a batch of {t.shape[0]} images; save them one by one")
            t = t[0]
        if t.ndim == 3:
            if t.shape[0] not in (1, 3):
                raise ValueError(f"save_image({path}): tensor shape {tuple(image.shape)} is not CHW with 1 or 3 "
                                 f"channels")
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(f"save_image({path}): expected a torch.Tensor or numpy array, got {type(image).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"save_image({path}): shape {arr.shape} is not HxW or HxWx3 (numpy) / CHW (torch)")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"save_image({path}): dtype {arr.dtype} unsupported; pass uint8, or floats in [0, 1]")
    if not np.isfinite(arr).all():
        raise ValueError(f"save_image({path}): the image contains NaN or Inf values")
    return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(image: torch.Tensor | np.ndarray, path: Path | str) -> Path:
    """Write a PNG atomically. Tensors: CHW or 1xCxHxW; arrays: HxW or HxWx3; floats are clamped to [0, 1] and rounded
    to 8 bits, uint8 is written as is."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_image writes PNG only (lossless outputs for the report); {path} should end in .png")
    arr = _to_uint8_array(image, path)
    pil = Image.fromarray(arr)
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))
