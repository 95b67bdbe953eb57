"""Folders of random RGB PNGs for tests that run a harness on made-up images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def random_image_folder(path: Path, n: int, size: tuple[int, int], seed: int) -> Path:
    """`path` holding n random images img0.png ... of `size` (h, w), the same for the same seed."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(path / f"img{i}.png")
    return path
