"""Training samples for super-resolution: random HR crops with the low-res input made from them, deterministically.

Sample `k` is a pure function of (seed, k), so a run resumes exactly from one integer and data-parallel ranks see
exactly the samples of one process (bench.training.loop relies on both). `SRPatchDataset` is the paper's protocol,
`SRCNNPatchDataset` SRCNN's. Order, degradations and caching: docs/data.md.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data.colour import rgb_to_y
from data.corpus import ImageFolderCorpus
from data.degrade import modcrop, training_degradation
from data.images import load_image_uint8
from data.resize import imresize

__all__ = ["DEFAULT_CACHE_BYTES", "ImageCache", "SRCNNPatchDataset", "SRPatchDataset"]

DEFAULT_CACHE_BYTES = 1 << 30  # 1 GiB of decoded uint8 images per process

CorpusLike = ImageFolderCorpus | str | os.PathLike | Sequence[str | os.PathLike]


class ImageCache:
    """LRU cache keyed by file, bounded in bytes (0 disables it): decoded uint8 images, or whatever `load` makes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES,
                 load: Callable[[str], np.ndarray | tuple[torch.Tensor, ...]] | None = None):
        if max_bytes < 0:
            raise ValueError(f"ImageCache: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes, self.bytes = int(max_bytes), 0
        self.load = load or load_image_uint8
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def _nbytes(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        return sum(ImageCache._nbytes(v) for v in value)

    def get(self, path: os.PathLike | str) -> Any:
        key = os.fspath(path)
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return value
        self.misses += 1
        value = self.load(key)
        size = self._nbytes(value)
        if size <= self.max_bytes:
            self._items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= self._nbytes(old)
        return value


def _as_corpus(corpus: CorpusLike, min_size: int) -> ImageFolderCorpus:
    if isinstance(corpus, ImageFolderCorpus):
        small = [f for f, (w, h) in zip(corpus.files, corpus.sizes) if min(w, h) < min_size]
        if small:
            raise ValueError(f"corpus {corpus.name!r} holds {len(small)} image(s) smaller than the {min_size} px "
                             f"patch (e.g. {small[0]}); build it with ImageFolderCorpus(..., min_size={min_size})")
        return corpus
    return ImageFolderCorpus(corpus, min_size=min_size)


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _to_tensor(crop: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(crop, dtype=np.float32)).permute(2, 0, 1).div_(255.0).contiguous()


class _Stream(Dataset):
    """Shared machinery: epoch permutations over `epoch_length` items and a per-sample generator."""

    epoch_length: int

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        """Samples per epoch. Indices past it are valid too: the stream is endless (epoch = k // len)."""
        return self.epoch_length

    def _item(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise IndexError(f"sample index must be an integer >= 0, got {k!r}")
        epoch, pos = divmod(int(k), self.epoch_length)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(self.epoch_length)
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def _rng(self, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(k), 0xC407])


class SRPatchDataset(_Stream):
    """Sample k -> (lr, hr): a random `patch_size` crop and its training degradation (the paper's SR data).

    corpus: an ImageFolderCorpus (images smaller than the patch must already be filtered out) or anything
      ImageFolderCorpus accepts (then it is built with min_size=patch_size).
    scale: 4 or 8 (patch_size must be a multiple of it). sigma: Gaussian blur before downsampling (paper: 1.0).
    """

    def __init__(self, corpus: CorpusLike, scale: int, patch_size: int = 288, sigma: float = 1.0, seed: int = 0,
                 quantize: bool = True, cache_bytes: int = DEFAULT_CACHE_BYTES):
        super().__init__(seed)
        self.scale = _check_int(scale, "scale")
        self.patch_size = _check_int(patch_size, "patch_size")
        if self.patch_size % self.scale:
            raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}: the LR patch would not "
                             f"be whole pixels; pick e.g. {self.scale * math.ceil(self.patch_size / self.scale)}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma, self.quantize = float(sigma), bool(quantize)
        self.corpus = _as_corpus(corpus, self.patch_size)
        self.epoch_length = len(self.corpus.files)
        self.cache = ImageCache(cache_bytes)

    def crop_box(self, k: int) -> tuple[int, int, int]:
        """(image index, top, left) of sample k."""
        i = self._item(k)
        w, h = self.corpus.sizes[i]
        rng = self._rng(k)
        top = int(rng.integers(0, h - self.patch_size + 1))
        left = int(rng.integers(0, w - self.patch_size + 1))
        return i, top, left

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, top, left = self.crop_box(k)
        img = self.cache.get(self.corpus.files[i])
        p = self.patch_size
        hr = _to_tensor(img[top:top + p, left:left + p])
        if hr.shape[-2:] != (p, p):
            raise ValueError(f"{self.corpus.files[i]}: decoded size {img.shape[1]}x{img.shape[0]} differs from the "
                             f"size scanned earlier {self.corpus.sizes[i]}; was the file replaced during the run?")
        lr = training_degradation(hr, self.scale, sigma=self.sigma, quantize=self.quantize)
        return lr, hr

    def describe(self) -> dict[str, Any]:
        """What run.json records about the training data."""
        return {"kind": "random_crops", "patch_size": self.patch_size, "scale": self.scale, "sigma": self.sigma,
                "quantize_lr": self.quantize, "seed": self.seed, "samples_per_epoch": self.epoch_length,
                "corpus": self.corpus.summary()}


class SRCNNPatchDataset(_Stream):
    """Sample k -> (y_in, y_hr): SRCNN's Y sub-images (bicubic-upscaled LR and HR), 1 x p x p each.

    mode "grid": every position on a `stride` grid of each modcropped image (Dong et al.: 33x33, stride 14), one
    epoch = every sub-image once in a seeded random order. mode "random": one random position per image per epoch.
    Each image is degraded whole (modcrop, training degradation, bicubic upscale, Y) the first time it is used and
    the two Y planes are kept in the LRU cache (8 bytes per pixel), so a sub-image costs a slice.

    Grid order: each epoch shuffles the images, cuts them into blocks of `block_images`, and shuffles all sub-images
    within a block. Consecutive samples thus come from at most `block_images` images (the cache's working set stays
    small even for a 10k-image corpus) while a batch still mixes many images; with block_images >= the number of
    images it is one global shuffle.
    """

    def __init__(self, corpus: CorpusLike, scale: int, patch_size: int = 33, stride: int = 14, mode: str = "grid",
                 sigma: float = 0.0, seed: int = 0, quantize: bool = True, cache_bytes: int = 2 * DEFAULT_CACHE_BYTES,
                 block_images: int = 64):
        super().__init__(seed)
        self.block_images = _check_int(block_images, "block_images")
        if mode not in ("grid", "random"):
            raise ValueError(f"mode must be 'grid' or 'random', got {mode!r}")
        self.scale = _check_int(scale, "scale")
        self.patch_size = _check_int(patch_size, "patch_size")
        self.stride = _check_int(stride, "stride")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.mode, self.sigma, self.quantize = mode, float(sigma), bool(quantize)
        # the modcropped image must still hold a patch
        self.corpus = _as_corpus(corpus, self.scale * math.ceil(self.patch_size / self.scale))
        self.cache = ImageCache(cache_bytes, load=self._degrade_file)
        self._dims = [(h - h % self.scale, w - w % self.scale) for w, h in self.corpus.sizes]  # modcropped (h, w)
        if mode == "grid":
            self._counts = np.array([((h - self.patch_size) // self.stride + 1) *
                                     ((w - self.patch_size) // self.stride + 1) for h, w in self._dims], np.int64)
            self.epoch_length = int(self._counts.sum())
            self._layout_key: int | None = None
            self._block_key: tuple[int, int] | None = None
        else:
            self.epoch_length = len(self.corpus.files)

    def _degrade_file(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y of the bicubic upscale of the degraded image, Y of the image), both 1 x H x W, modcropped."""
        hr = modcrop(_to_tensor(load_image_uint8(path)), self.scale)
        lr = training_degradation(hr, self.scale, sigma=self.sigma, quantize=self.quantize)
        up = imresize(lr, scale_factor=self.scale)
        return rgb_to_y(up).contiguous(), rgb_to_y(hr).contiguous()

    def _grid_position(self, k: int) -> tuple[int, int]:
        """Sample k -> (image index, index of its grid position) under the block shuffle."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise IndexError(f"sample index must be an integer >= 0, got {k!r}")
        epoch, pos = divmod(int(k), self.epoch_length)
        g = self.block_images
        if self._layout_key != epoch:
            order = np.random.default_rng([self.seed, epoch, 0xB10C]).permutation(len(self._counts))
            per_block = [int(self._counts[order[b:b + g]].sum()) for b in range(0, len(order), g)]
            self._order, self._block_starts = order, np.concatenate([[0], np.cumsum(per_block)])
            self._layout_key = epoch
        b = int(np.searchsorted(self._block_starts, pos, side="right") - 1)
        if self._block_key != (epoch, b):
            images = self._order[b * g:(b + 1) * g]
            size = int(self._block_starts[b + 1] - self._block_starts[b])
            self._block = (images, np.concatenate([[0], np.cumsum(self._counts[images])]),
                           np.random.default_rng([self.seed, epoch, b, 0x5EED]).permutation(size))
            self._block_key = (epoch, b)
        images, cum, perm = self._block
        q = int(perm[pos - int(self._block_starts[b])])
        t = int(np.searchsorted(cum, q, side="right") - 1)
        return int(images[t]), q - int(cum[t])

    def crop_box(self, k: int) -> tuple[int, int, int]:
        """(image index, top, left) of sample k's sub-image."""
        p = self.patch_size
        if self.mode == "grid":
            i, j = self._grid_position(k)
            h, w = self._dims[i]
            r, c = divmod(j, (w - p) // self.stride + 1)
            return i, r * self.stride, c * self.stride
        item = self._item(k)
        h, w = self._dims[item]
        rng = self._rng(k)
        return item, int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, top, left = self.crop_box(k)
        y_in, y_hr = self.cache.get(self.corpus.files[i])
        if tuple(y_hr.shape[-2:]) != self._dims[i]:
            raise ValueError(f"{self.corpus.files[i]}: decoded size {tuple(y_hr.shape[-2:])} differs from the "
                             f"(modcropped) size scanned earlier {self._dims[i]}; was the file replaced?")
        p = self.patch_size
        return (y_in[:, top:top + p, left:left + p].clone(), y_hr[:, top:top + p, left:left + p].clone())

    def describe(self) -> dict[str, Any]:
        """What run.json records about SRCNN's training data."""
        return {"kind": f"srcnn_{self.mode}", "patch_size": self.patch_size, "stride": self.stride,
                "block_images": self.block_images if self.mode == "grid" else None,
                "scale": self.scale, "sigma": self.sigma, "quantize_lr": self.quantize, "seed": self.seed,
                "samples_per_epoch": self.epoch_length, "corpus": self.corpus.summary()}
