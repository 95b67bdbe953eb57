"""The style trend: ONE transform network trained in chunks to the longest of several lengths, with Fig. 5 (its
objective against the L-BFGS curve, and the L-BFGS iterations that match it) measured at each length as the same
training goes on. Output: RUN/trend.csv, one row per (size, length):

    size,train_iterations,network_objective,iters_to_match,lbfgs_iterations

`network_objective` is the mean over the Fig. 5 images of the network's objective; `iters_to_match` the first L-BFGS
iteration at which the mean Gatys objective is at or below it (bench.style.measures.match_statistics), EMPTY when
the curve's `lbfgs_iterations` iterations never reach it (never extrapolated).

Guarantees: the L-BFGS curve is computed once per size (traces/, the files the fig5 stage reads) and reused by
every length; each chunk resumes from the previous chunk's final checkpoint, which the training loop restores exactly,
so the network at each length is the one a training stopped there gives; trend.csv is rewritten atomically after
every length, and `--resume` skips the lengths it holds.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.style.measures import match_statistics
from data.files import atomic_write_text
from reports.results import gatys_trace_path

if TYPE_CHECKING:
    from bench.style.harness import StyleRun
    from perceptual.nets import TransformNet

__all__ = ["TREND_COLUMNS", "TREND_FILE", "read_trend", "train_with_trend", "trend_row"]

TREND_FILE = "trend.csv"
TREND_COLUMNS = ("size", "train_iterations", "network_objective", "iters_to_match", "lbfgs_iterations")


def read_trend(path: Path) -> list[dict[str, str]]:
    """trend.csv's rows ([] when there is none); a file with other columns is refused."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != TREND_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {','.join(TREND_COLUMNS)}")
        return list(reader)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TREND_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in sorted(rows, key=lambda r: (int(r["size"]), int(r["train_iterations"]))):
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())


def trend_row(size: int, iterations: int, traces: dict[str, list[dict[str, float]]],
              network: dict[str, float]) -> dict[str, Any]:
    """One trend.csv row from the L-BFGS traces and the network's objective per image."""
    m = match_statistics(traces, network)
    k = m["mean"][0]
    return {"size": size, "train_iterations": iterations, "network_objective": repr(float(m["network_mean"])),
            "iters_to_match": "" if not math.isfinite(k) else int(k), "lbfgs_iterations": m["iterations"]}


def _lbfgs_curves(run: StyleRun, style: str) -> dict[int, tuple[list[tuple[str, torch.Tensor]], dict[str, Any]]]:
    """Per Fig. 5 size: the images and their Gatys traces (computed once; complete traces on disk are reused)."""
    cfg, out = run.cfg, {}
    for size in cfg.sizes:
        images = run.load_eval_images(cfg.eval_set, cfg.values.n_images, size, square=True)
        traces = {}
        for i, (stem, x) in enumerate(images):
            traces[stem], _ = run.gatys(style, x.to(run.device), cfg.values.gatys_iterations, cfg.seed + i,
                                        gatys_trace_path(run.out, size, stem), desc=f"trend gatys {size}px {stem}",
                                        reuse=True)
        out[size] = (images, traces)
    return out


def train_with_trend(run: StyleRun, style: str) -> tuple[TransformNet, dict[str, Any]]:
    """Train `style`'s network to max(trend) in chunks, writing a trend.csv row per size after each chunk; returns
    the final network and the training summary (the last chunk's, with the first chunk's start and the session's
    time, like an unchunked training's) plus `trend`."""
    cfg = run.cfg
    lengths = sorted(cfg.values.trend)
    path = run.out / TREND_FILE
    rows = read_trend(path) if cfg.resume else []
    done = {(int(r["size"]), int(r["train_iterations"])) for r in rows}
    curves = _lbfgs_curves(run, style)
    net: TransformNet | None = None
    first: dict[str, Any] | None = None
    summary: dict[str, Any] = {}
    session = 0.0
    for length in lengths:
        if all((size, length) in done for size in cfg.sizes) and length != lengths[-1]:
            continue  # measured in an earlier session; the checkpoint is at least this far
        net, summary = run.train(style, iterations=length, resume=cfg.resume or first is not None or bool(done))
        first = first or summary
        session += float(summary.get("session_time_s") or 0.0)
        for size, (images, traces) in curves.items():
            if (size, length) in done:
                continue
            network = _network_objectives(run, style, net, images)
            rows = [r for r in rows if (int(r["size"]), int(r["train_iterations"])) != (size, length)]
            rows.append(trend_row(size, length, traces, network))
            _write(path, rows)
    assert net is not None and first is not None
    summary = summary | {"start_iteration": first.get("start_iteration"), "resumed": first.get("resumed"),
                         "session_time_s": session,
                         "trend": {"file": TREND_FILE, "lengths": lengths, "sizes": list(cfg.sizes),
                                   "lbfgs_iterations": cfg.values.gatys_iterations}}
    return net, summary


def _network_objectives(run: StyleRun, style: str, net: TransformNet,
                        images: list[tuple[str, torch.Tensor]]) -> dict[str, float]:
    """The objective of `net`'s output per image, exactly as the fig5 stage computes it (the run's path: its
    stylizer and scoring objective; the output clamped to [0, 1])."""
    run.networks[style] = net.eval()
    xs = [x.to(run.device) for _, x in images]
    outputs = run.network_outputs(style, xs)
    return {stem: run.network_objective(style, x, y)[0]["total"] for (stem, _), x, y in zip(images, xs, outputs)}
