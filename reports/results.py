"""The results contract: what a run folder's results.csv, curve.csv and Gatys traces are called and hold.

One home for the columns, the mean row, the one writer and reader, and the file names: the harnesses (bench) write
through it and the reports read through it, so the two cannot drift apart. Values are written with `repr(float)`,
so a float read back is bit-identical.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from data.files import atomic_write_text

RESULT_COLUMNS = ("task", "dataset", "scale", "method", "image", "metric", "value")
MEAN = "__mean__"  # the `image` of a dataset mean row
RESULTS_FILE = "results.csv"
# curve.csv (bench.sr --curve-every): Set5 means of each SR network after every N training iterations
CURVE_FILE = "curve.csv"
CURVE_COLUMNS = ("scale", "dataset", "method", "iteration", "metric", "value")
TRACES_DIR = "traces"  # Gatys L-BFGS traces, one CSV per Fig. 5 image and size: gatys_<size>_<image>.csv
TRACE_NAME = re.compile(r"gatys_(\d+)_(.+)\.csv$")


def result_row(task: str, dataset: str | int, scale: str | int, method: str, image: str, metric: str,
               value: float) -> dict[str, Any]:
    """One long-form row (scale empty for style, whose `dataset` is the image size)."""
    return {"task": task, "dataset": str(dataset), "scale": str(scale), "method": method, "image": image,
            "metric": metric, "value": float(value)}


def rows_csv(rows: Iterable[dict[str, Any]]) -> str:
    """results.csv's text for `rows`, in the given order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for r in rows:
        writer.writerow([repr(float(r[k])) if k == "value" else r[k] for k in RESULT_COLUMNS])
    return buf.getvalue()


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write `rows` as a results file, atomically (a reader never sees half of it)."""
    return atomic_write_text(path, rows_csv(rows))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file written by `write_rows` (value as float, the rest as text)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r, value=float(r["value"])) for r in csv.DictReader(f)]


def read_curve_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's curve.csv (every field as text); [] when the run has no curve."""
    path = run_dir / CURVE_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_curve_rows(run_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write a run's curve.csv (CURVE_COLUMNS), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(run_dir / CURVE_FILE, buf.getvalue())


class ResultsTable:
    """One task's results.csv, held in memory by (dataset, scale, method, image, metric) and rewritten atomically
    after each change, so what finished is on disk whatever happens later."""

    def __init__(self, path: Path, task: str, keep_existing: bool):
        self.path, self.task = path, task
        self.rows: dict[tuple[str, str, str, str, str], float] = {}
        if keep_existing and path.is_file():
            for row in read_rows(path):
                if row.get("task") == task:
                    self.rows[(row["dataset"], row["scale"], row["method"], row["image"], row["metric"])] = row["value"]

    def drop(self, dataset: str, scale: int, method: str) -> None:
        for key in [k for k in self.rows if k[:3] == (dataset, str(scale), method)]:
            del self.rows[key]

    def add(self, dataset: str, scale: int, method: str, image: str, metrics: dict[str, float]) -> None:
        for metric, value in metrics.items():
            self.rows[(dataset, str(scale), method, image, metric)] = float(value)

    def add_means(self, dataset: str, scale: int, method: str) -> dict[str, float]:
        """The mean over the images of (dataset, scale, method), per metric, added as the MEAN row."""
        per_metric: dict[str, list[float]] = {}
        for (d, s, m, image, metric), value in self.rows.items():
            if (d, s, m) == (dataset, str(scale), method) and image != MEAN:
                per_metric.setdefault(metric, []).append(value)
        means = {metric: float(np.mean(values)) for metric, values in per_metric.items()}
        self.add(dataset, scale, method, MEAN, means)
        return means

    def mean(self, dataset: str, scale: int, method: str, metric: str) -> float | None:
        return self.rows.get((dataset, str(scale), method, MEAN, metric))

    def save(self) -> Path:
        return write_rows(self.path, (result_row(self.task, *key, value) for key, value in self.rows.items()))


def gatys_trace_path(run_dir: Path, size: int, image: str) -> Path:
    """Where a run keeps the Gatys trace of one Fig. 5 image at one size."""
    return run_dir / TRACES_DIR / f"gatys_{size}_{image}.csv"


def gatys_traces(run_dir: Path, size: int | None = None) -> dict[tuple[int, str], Path]:
    """The Gatys traces in a run folder, by (size, image), in name order (all sizes when size is None)."""
    found = {}
    for path in sorted((run_dir / TRACES_DIR).glob(f"gatys_{'*' if size is None else size}_*.csv")):
        m = TRACE_NAME.fullmatch(path.name)
        if m:
            found[(int(m.group(1)), m.group(2))] = path
    return found
