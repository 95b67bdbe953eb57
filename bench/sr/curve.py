"""curve.csv of an SR run (`--curve-every`): Set5 means of each network after every N training iterations.

One row per (scale, dataset, method, iteration, metric), rewritten atomically after each point, so a resumed run
knows which points it already has and never scores one twice (the columns: reports.results.CURVE_COLUMNS).
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from data.files import atomic_write_text
from reports.results import CURVE_COLUMNS, CURVE_FILE

log = logging.getLogger("bench.sr")


def _rows(out: Path) -> list[dict[str, str]]:
    path = out / CURVE_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def curve_iterations_done(out: Path, scale: int, method: str) -> set[int]:
    """Iterations already scored for `method` at `scale` (a resumed run does not repeat them)."""
    return {int(r["iteration"]) for r in _rows(out) if r["scale"] == str(scale) and r["method"] == method}


def write_curve_point(out: Path, scale: int, dataset: str, iteration: int,
                      values: dict[str, dict[str, list[float]]]) -> None:
    """Add the means of `values` ({method: {metric: per-image values}}) at `iteration`, replacing that point's rows
    if they exist."""
    rows = [r for r in _rows(out)
            if not (r["scale"] == str(scale) and r["method"] in values and int(r["iteration"]) == iteration)]
    for method, per_metric in values.items():
        for metric, vals in per_metric.items():
            rows.append({"scale": str(scale), "dataset": dataset, "method": method, "iteration": str(iteration),
                         "metric": metric, "value": repr(float(np.mean(vals)))})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / CURVE_FILE, buf.getvalue())
    first = next(iter(values))
    log.info("curve %s x%d at %d iterations: %s", first, scale, iteration,
             ", ".join(f"{m} {np.mean(v):.4f}" for m, v in values[first].items()))
