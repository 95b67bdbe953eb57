"""curve.csv of an SR run (`--curve-every`): Set5 means of each network after every N training iterations.

One row per (scale, dataset, method, iteration, metric), rewritten atomically after each point, so a resumed run
knows which points it already has and never scores one twice (the columns: reports.results.CURVE_COLUMNS).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from reports.results import read_curve_rows, write_curve_rows

log = logging.getLogger("bench.sr")


def curve_iterations_done(out: Path, scale: int, method: str) -> set[int]:
    """Iterations already scored for `method` at `scale` (a resumed run does not repeat them)."""
    return {int(r["iteration"]) for r in read_curve_rows(out) if r["scale"] == str(scale) and r["method"] == method}


def write_curve_point(out: Path, scale: int, dataset: str, iteration: int,
                      values: dict[str, dict[str, list[float]]]) -> None:
    """Add the means of `values` ({method: {metric: per-image values}}) at `iteration`, replacing that point's rows
    if they exist."""
    rows = [r for r in read_curve_rows(out)
            if not (r["scale"] == str(scale) and r["method"] in values and int(r["iteration"]) == iteration)]
    for method, per_metric in values.items():
        for metric, vals in per_metric.items():
            rows.append({"scale": str(scale), "dataset": dataset, "method": method, "iteration": str(iteration),
                         "metric": metric, "value": repr(float(np.mean(vals)))})
    write_curve_rows(out, rows)
    first = next(iter(values))
    log.info("curve %s x%d at %d iterations: %s", first, scale, iteration,
             ", ".join(f"{m} {np.mean(v):.4f}" for m, v in values[first].items()))
