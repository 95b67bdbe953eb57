"""A training corpus from any images (a catalog dataset, several, a user's folder such as MS-COCO train2014, a file list).

Unreadable images (zero-byte, truncated, corrupt, unrecognised, over the pixel limit) and images smaller than
`min_size` are skipped and counted, each logged with its reason, so one bad file among 80k never stops a run and the
report can say exactly what was used. Patch sampling is deliberately not here: the SR and style harnesses build their
random-crop datasets on top of `ImageFolderCorpus` (`files`, `sizes`, `load(i)`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from data.catalog import DATASETS, dataset_digest
from data.fetch import datasets_in_spec, folder_is_held_out, resolve_images
from data.images import ImageError, check_decodable, image_info, load_image

__all__ = ["ImageFolderCorpus", "SkippedImage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedImage:
    """One image left out of a corpus and why (kind: `unreadable` or `too_small`)."""

    path: Path
    reason: str
    kind: str


def _min_hw(min_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if min_size is None:
        return None
    h, w = (min_size, min_size) if isinstance(min_size, int) else tuple(min_size)
    if int(h) <= 0 or int(w) <= 0:
        raise ValueError(f"min_size must be positive, got {min_size!r}")
    return int(h), int(w)


class ImageFolderCorpus(Dataset):
    """The usable images of a source, checked once up front; `corpus[i]` is image i as a float CHW RGB tensor.

    source: an image spec as data.fetch.resolve_images accepts it (catalog name, `a+b`, `train`, folder, image
      file) or an explicit sequence of image paths.
    min_size: skip images whose height or width is below it (int for both, or (height, width)), e.g. the patch size.
    check: "decode" decodes every image once (catches truncated files; ~a few ms per photo) or "header" reads
      headers only (for very large corpora; a file that fails later is logged and replaced by the next one).
    training: refuse held-out or evaluation data (coco_val2017, Set5, Set14, BSD100, styles, content, or their
      mirror/cache folders), so the Fig. 5 set can never leak into training. Pass False to use the class for
      evaluation images.
    """

    def __init__(self, source: str | os.PathLike | Sequence[str | os.PathLike], *, name: str | None = None,
                 min_size: int | tuple[int, int] | None = None, check: str = "decode", training: bool = True,
                 max_pixels: int | None = None, transform: Callable[[torch.Tensor], Any] | None = None,
                 download: bool | None = None):
        if check not in ("decode", "header"):
            raise ValueError(f"check must be 'decode' or 'header', got {check!r}")
        self.min_hw = _min_hw(min_size)
        self.max_pixels, self.transform, self.check = max_pixels, transform, check
        self.datasets: list[str] = []
        if isinstance(source, (str, os.PathLike)):
            self.spec = os.fspath(source)
            self.datasets = datasets_in_spec(source)
            if training:
                self._refuse_held_out([])  # by name, before anything is resolved or fetched
            label, candidates = resolve_images(source, download)
        else:
            candidates = [Path(p) for p in source]
            if not candidates:
                raise ValueError("ImageFolderCorpus got an empty list of files")
            parents = sorted({str(p.parent) for p in candidates})
            label = Path(parents[0]).name if len(parents) == 1 else "custom"
            self.spec = ";".join(parents)
        if training:
            self._refuse_held_out(candidates)
        self.name = name or label
        self.n_candidates = len(candidates)
        self.files: list[Path] = []
        self.sizes: list[tuple[int, int]] = []  # (width, height) as displayed (after EXIF rotation)
        self.skipped: list[SkippedImage] = []
        self.late_failures: list[SkippedImage] = []  # check="header" only: failures seen in __getitem__
        for path in candidates:
            self._scan(path)
        if not self.files:
            raise ValueError(f"corpus {self.name!r} ({self.spec}) has no usable images: {self.n_unreadable} "
                             f"unreadable and {self.n_too_small} smaller than {self.min_hw} (height, width) out of "
                             f"{self.n_candidates}; see the log for each file")
        log.info("corpus %s: %d usable images of %d (%d unreadable, %d too small)", self.name, len(self.files),
                 self.n_candidates, self.n_unreadable, self.n_too_small)

    def _refuse_held_out(self, candidates: list[Path]) -> None:
        bad = [n for n in self.datasets if not DATASETS[n].trainable]
        if not bad:
            bad = sorted({n for parent in {p.parent for p in candidates} if (n := folder_is_held_out(parent))})
        if bad:
            raise ValueError(f"refusing to train on {', '.join(bad)}: "
                             + "; ".join(f"{n} is {DATASETS[n].description}" for n in bad)
                             + ". Use a training dataset (e.g. `train`, coco_train2017, bsds500_train) or your own "
                               "folder; pass training=False only to evaluate on these images.")

    def _scan(self, path: Path) -> None:
        try:
            info = check_decodable(path, self.max_pixels) if self.check == "decode" else \
                image_info(path, self.max_pixels)
        except ImageError as e:
            self._skip(path, e.reason, "unreadable", str(e))
            return
        if self.min_hw is not None and (info.height < self.min_hw[0] or info.width < self.min_hw[1]):
            reason = f"{info.width}x{info.height} is smaller than the minimum {self.min_hw[1]}x{self.min_hw[0]}"
            self._skip(path, reason, "too_small", reason)
            return
        self.files.append(path)
        self.sizes.append((info.width, info.height))

    def _skip(self, path: Path, reason: str, kind: str, message: str) -> None:
        self.skipped.append(SkippedImage(path, reason, kind))
        log.warning("corpus %s: skipping %s (%s): %s", getattr(self, "name", ""), path, kind, message)

    @property
    def n_images(self) -> int:
        """How many usable images the corpus holds (what run.json's corpus.n_images records)."""
        return len(self.files)

    @property
    def n_unreadable(self) -> int:
        return sum(s.kind == "unreadable" for s in self.skipped)

    @property
    def n_too_small(self) -> int:
        return sum(s.kind == "too_small" for s in self.skipped)

    @property
    def path(self) -> str:
        """The folder the images come from (the common parent when there are several)."""
        return os.path.commonpath([str(p.parent) for p in self.files])

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        """Image `index` as a float32 CHW RGB tensor in [0, 1], without the transform."""
        return load_image(self.files[index], self.max_pixels)

    def __getitem__(self, index: int) -> Any:
        n = len(self.files)
        for k in range(n):
            i = (index + k) % n
            try:
                image = self.load(i)
            except ImageError as e:  # only reachable with check="header" (or a file changed after the scan)
                self.late_failures.append(SkippedImage(self.files[i], e.reason, "unreadable"))
                log.warning("corpus %s: %s; using the next image instead", self.name, e)
                continue
            return self.transform(image) if self.transform is not None else image
        raise ImageError(self.files[index], "no image of the corpus could be decoded", "check the corpus files")

    def summary(self) -> dict[str, Any]:
        """The corpus record for run.json: name, path, n_images, skip counts and reasons, dataset digests."""
        return {
            "name": self.name,
            "spec": self.spec,
            "path": self.path,
            "n_images": self.n_images,
            "n_candidates": self.n_candidates,
            "n_skipped_unreadable": self.n_unreadable,
            "n_skipped_too_small": self.n_too_small,
            "min_size": list(self.min_hw) if self.min_hw else None,
            "check": self.check,
            "skipped": [{"path": str(s.path), "kind": s.kind, "reason": s.reason} for s in self.skipped],
            "datasets": {n: dataset_digest(n) for n in self.datasets},
        }
