"""Training batches for the style transform network: size x size crops (256 in the paper) from any folder of images.

Why this module exists: the paper trains on MS-COCO "resized to 256x256", batch 4. Here any corpus works (the mirror's
coco_train2017 + bsds500_train by default, MS-COCO train2014 for users who have it). Each image is resized so its
shorter side is `size` (antialiased bilinear, aspect kept), then cropped to size x size: at the centre (default,
as pytorch/examples' fast_neural_style does) or at a random offset (a mild augmentation).

Determinism without sampler state: the batch of iteration i is a pure function of (seed, i). The stream of samples is
epoch after epoch of seeded permutations of the corpus; sample position p = i * batch_size + j belongs to epoch
p // N and is image perm_epoch[p % N]; a random crop's offset is drawn from a generator seeded by (seed, epoch, index).
So resuming at iteration i needs nothing but i, and two runs with the same seed see the same pixels.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from data.images import ImageError, load_image

log = logging.getLogger(__name__)

Crop = Literal["center", "random"]
CROPS: tuple[str, ...] = ("center", "random")
# Above this many images, decoded images are not kept in memory (a 256-px image is ~0.2 MB as uint8).
PRELOAD_LIMIT = 5000


def resize_shorter_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a CHW float image so that min(H, W) == size, keeping the aspect ratio (antialiased bilinear)."""
    if image.dim() != 3:
        raise ValueError(f"resize_shorter_side takes a CHW image, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) == (h, w):
        return image
    out = F.interpolate(image.unsqueeze(0), size=(new_h, new_w), mode="bilinear", align_corners=False,
                        antialias=True)
    return out.squeeze(0).clamp_(0.0, 1.0)


def crop_offsets(height: int, width: int, size: int, crop: Crop, generator: torch.Generator | None) -> tuple[int, int]:
    """Top-left corner of a size x size crop: centred, or uniform over the valid offsets."""
    if crop == "center":
        return (height - size) // 2, (width - size) // 2
    if crop == "random":
        if generator is None:
            raise ValueError("a random crop needs a seeded generator")
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        return top, left
    raise ValueError(f"unknown crop {crop!r}: choose one of {', '.join(CROPS)}")


def _mix(*values: int) -> int:
    """A 63-bit seed from a few integers (splitmix64-style), so (seed, epoch, index) streams are independent."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class StyleTrainingSet(Dataset):
    """Training crops indexed by *sample position* p (0, 1, 2, ... across epochs): `ds[p]` is a (3, size, size)
    float tensor in [0, 1]. `len(ds)` is the corpus size (one epoch).

    files: the corpus images (e.g. `ImageFolderCorpus(...).files`). preload: keep the resized images in memory as
    uint8 (default: when the corpus has at most PRELOAD_LIMIT images), so a GPU step never waits for JPEG decoding.
    """

    def __init__(self, files: Sequence[str | os.PathLike], size: int = 256, crop: Crop = "center", seed: int = 0,
                 preload: bool | None = None):
        if size <= 0:
            raise ValueError(f"training image size must be positive, got {size} (--train-size)")
        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}: choose one of {', '.join(CROPS)}")
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ValueError("StyleTrainingSet needs at least one image file")
        self.size, self.crop, self.seed = size, crop, seed
        self.preload = len(self.files) <= PRELOAD_LIMIT if preload is None else preload
        self._cache: dict[int, torch.Tensor] = {}
        self._perms: dict[int, torch.Tensor] = {}
        self.unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order in which epoch `epoch` visits the corpus (a seeded permutation)."""
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch, 0x5A3F))
            self._perms[epoch] = torch.randperm(len(self.files), generator=g)
            if len(self._perms) > 4:  # only the current and next epochs are ever needed
                self._perms.pop(min(self._perms))
        return self._perms[epoch]

    def index_at(self, position: int) -> tuple[int, int]:
        """(epoch, corpus index) of sample position `position`."""
        if position < 0:
            raise IndexError(f"sample position must be >= 0, got {position}")
        epoch, within = divmod(position, len(self.files))
        return epoch, int(self.permutation(epoch)[within])

    def _first_readable(self, index: int) -> torch.Tensor:
        """Image `index`, or, if it cannot be decoded (a corpus scanned by headers only), the next readable one: the
        substitution is logged and counted (`unreadable`) and is the same in every run."""
        n = len(self.files)
        for k in range(n):
            i = (index + k) % n
            if i in self.unreadable:
                continue
            try:
                return self.resized(i)
            except ImageError as e:
                self.unreadable.add(i)
                log.warning("training image %s is unreadable (%s); using the next image in its place", self.files[i], e)
        raise ImageError(self.files[index], "no image of the training corpus could be decoded",
                         "check the corpus folder")

    def resized(self, index: int) -> torch.Tensor:
        """Image `index` with its shorter side at `size` (uint8 CHW; cached when preloading)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        image = resize_shorter_side(load_image(self.files[index]), self.size)
        image_u8 = image.mul(255).round_().to(torch.uint8)
        if self.preload:
            self._cache[index] = image_u8
        return image_u8

    def __getitem__(self, position: int) -> torch.Tensor:
        epoch, index = self.index_at(position)
        image = self._first_readable(index)
        h, w = image.shape[-2:]
        g = torch.Generator().manual_seed(_mix(self.seed, epoch, index)) if self.crop == "random" else None
        top, left = crop_offsets(h, w, self.size, self.crop, g)
        return image[:, top:top + self.size, left:left + self.size].float().div_(255.0)

    def batch(self, iteration: int, batch_size: int) -> torch.Tensor:
        """The (batch_size, 3, size, size) batch of training iteration `iteration` (0-based)."""
        start = iteration * batch_size
        return torch.stack([self[p] for p in range(start, start + batch_size)])

    def batches(self, batch_size: int, start_iteration: int = 0, num_workers: int = 0) -> Iterator[torch.Tensor]:
        """Endless iterator over the batches of iterations start_iteration, start_iteration + 1, ...

        With num_workers > 0 a DataLoader decodes ahead in worker processes (for large corpora without preload);
        the batches are the same either way.
        """
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size} (--batch-size)")
        if num_workers <= 0:
            it = start_iteration
            while True:
                yield self.batch(it, batch_size)
                it += 1
        loader = DataLoader(self, batch_size=batch_size, sampler=_Positions(start_iteration * batch_size),
                            num_workers=num_workers, persistent_workers=True)
        yield from loader


class _Positions(torch.utils.data.Sampler):
    """Sample positions start, start + 1, ... (endless)."""

    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        p = self.start
        while True:
            yield p
            p += 1


def center_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """A CHW image resized (shorter side = size) and centre-cropped to size x size: how Fig. 5's held-out images and
    the training images (crop="center") are prepared."""
    image = resize_shorter_side(image, size)
    top, left = crop_offsets(image.shape[-2], image.shape[-1], size, "center", None)
    return image[:, top:top + size, left:left + size]


def crop_to_multiple(image: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Centre-crop a CHW image so height and width are multiples of `multiple` (the transform network needs 4)."""
    h, w = image.shape[-2:]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"image of {h}x{w} is smaller than {multiple} pixels")
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[:, top:top + nh, left:left + nw]
