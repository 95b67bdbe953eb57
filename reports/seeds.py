"""The multi-seed contract: a run folder's seeds.csv (written by `--seeds`) and its reader.

A multi-seed run folder reads like one run (its results.csv holds the means over the seeds); seeds.csv beside it
holds, for each value, how many seeds, their mean, standard deviation, min, max and each seed's value in seed order
(run.json's `seeds`). Readers use it to say "holds in k of n seeds" and to show mean +/- spread.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

SEEDS_FILE = "seeds.csv"
SEEDS_COLUMNS = ("task", "dataset", "scale", "method", "image", "metric", "n", "mean", "std", "min", "max", "values")
Key = tuple[str, str, str, str, str, str]  # task, dataset, scale, method, image, metric


@dataclass(frozen=True)
class SeedStats:
    n: int
    mean: float
    std: float
    min: float
    max: float
    values: tuple[float, ...]

    @property
    def spread(self) -> float:
        """max - min over the seeds."""
        return self.max - self.min


def read_seeds(folder_or_file: Path) -> dict[Key, SeedStats]:
    """seeds.csv of a run folder (or the file itself) by (task, dataset, scale, method, image, metric); {} when the
    run is single-seed."""
    path = Path(folder_or_file)
    path = path / SEEDS_FILE if path.is_dir() else path
    if not path.is_file():
        return {}
    out: dict[Key, SeedStats] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != SEEDS_COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {list(SEEDS_COLUMNS)}")
        for r in reader:
            key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
            out[key] = SeedStats(int(r["n"]), float(r["mean"]), float(r["std"]), float(r["min"]), float(r["max"]),
                                 tuple(float(v) for v in r["values"].split(";")))
    return out
