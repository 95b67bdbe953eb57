"""The report's matplotlib figures, written as PNG files beside the HTML.

Uses matplotlib's object API (`Figure` + the Agg canvas), never pyplot's global state, so building a report inside a
harness process neither opens windows nor leaks figures. Each function returns the PNG's path, or None when the run
has nothing to plot, plus notes about files it could not read.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from data.files import atomic_write_bytes
from reports.benchjson import RECORD_COLUMNS
from reports.results import CURVE_COLUMNS, CURVE_FILE, MEAN, TRACE_NAME, TRACES_DIR
from reports.runs import Run

MAX_THIN_LINES = 20


def save(fig: Figure, path: Path) -> Path:
    """Render to PNG in memory, then write atomically (no half-written figure if the build is interrupted)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(path, buf.getvalue())


def _log_if_positive(ax, values: list[np.ndarray]) -> None:
    """Log y axis when every value is positive and they span more than a decade (losses fall by orders)."""
    finite = np.concatenate([np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for v in values] or [[]])
    if len(finite) and (finite > 0).all() and finite.max() > 10 * finite.min():
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # label decades only: minor labels crowd the axis


def read_logs(run: Run) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """logs/train_<name>.csv -> {name: frame with iteration, wall_time_s, total, terms}; broken files become notes."""
    logs, notes = {}, []
    for path in sorted((run.path / "logs").glob("train_*.csv")):
        name = path.stem.removeprefix("train_")
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            notes.append(f"{path.name}: malformed ({type(exc).__name__})")
            continue
        if not {"iteration", "total"} <= set(frame.columns) or frame.empty:
            notes.append(f"{path.name}: malformed (needs iteration and total columns and at least one row)")
            continue
        frame = frame.apply(pd.to_numeric, errors="coerce").dropna(subset=["iteration", "total"])
        logs[name] = frame.sort_values("iteration")
    return logs, notes


def training_figure(run: Run, path: Path) -> tuple[Path | None, list[str]]:
    """Total training loss of every network in the run, against iteration and against wall time."""
    logs, notes = read_logs(run)
    if not logs:
        return None, notes
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax_it, ax_t = fig.subplots(1, 2)
    for name, frame in logs.items():
        ax_it.plot(frame["iteration"], frame["total"], label=name, lw=1.2)
        if "wall_time_s" in frame:
            ax_t.plot(frame["wall_time_s"], frame["total"], label=name, lw=1.2)
    for ax, xlabel in ((ax_it, "iteration"), (ax_t, "wall time (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (total)")
        ax.grid(alpha=0.3)
        _log_if_positive(ax, [f["total"].to_numpy(float) for f in logs.values()])
    ax_it.legend(fontsize=8)
    fig.suptitle(f"Run {run.label}: training loss ({run.profile} profile, {run.device})")
    return save(fig, path), notes


def terms_figure(run: Run, path: Path) -> Path | None:
    """Each network's loss terms against iteration, one panel per network (what dominates the objective)."""
    logs, _ = read_logs(run)
    if not logs:
        return None
    fig = Figure(figsize=(11, 2.8 * ((len(logs) + 1) // 2)), layout="constrained")
    axes = np.atleast_1d(fig.subplots((len(logs) + 1) // 2, 2)).ravel()
    for ax, (name, frame) in zip(axes, logs.items()):
        terms = [c for c in frame.columns if c not in ("iteration", "wall_time_s")]
        for term in terms:
            ax.plot(frame["iteration"], frame[term], label=term, lw=1.0)
        _log_if_positive(ax, [frame[t].to_numpy(float) for t in terms])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(logs):]:
        ax.set_visible(False)
    return save(fig, path)


def read_traces(run: Run) -> tuple[dict[str, dict[str, pd.DataFrame]], list[str]]:
    """traces/gatys_<size>_<image>.csv -> {size: {image: frame}}; broken files become notes."""
    traces: dict[str, dict[str, pd.DataFrame]] = {}
    notes = []
    for path in sorted((run.path / TRACES_DIR).glob("gatys_*.csv")):
        m = TRACE_NAME.search(path.name)
        if not m:
            notes.append(f"{path.name}: name is not gatys_<size>_<image>.csv")
            continue
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            notes.append(f"{path.name}: malformed ({type(exc).__name__})")
            continue
        if not {"iteration", "wall_time_s", "total"} <= set(frame.columns) or frame.empty:
            notes.append(f"{path.name}: malformed (needs iteration, wall_time_s, total)")
            continue
        frame = frame.apply(pd.to_numeric, errors="coerce").dropna(subset=["iteration", "wall_time_s", "total"])
        traces.setdefault(m.group(1), {})[m.group(2)] = frame.sort_values("iteration")
    return traces, notes


def _network_level(run: Run, size: str, method: str) -> tuple[float | None, float | None]:
    """Mean and spread of an objective the network (or the content image) reaches on this size's images."""
    mean = run.value(task="style", dataset=size, method=method, metric="objective")
    std = run.value(task="style", dataset=size, method=method, metric="objective_std")
    if std is None:
        per_image = run.rows(task="style", dataset=size, method=method, metric="objective")
        per_image = per_image[per_image["image"] != MEAN]["value"]
        if len(per_image) > 1:
            std = float(per_image.std())
            mean = float(per_image.mean()) if mean is None else mean
    return mean, std


def gatys_figure(run: Run, path: Path, band: tuple[float, float] | None = None) -> tuple[Path | None, list[str]]:
    """Fig. 5: the Gatys objective (mean and std over images) against L-BFGS iteration and wall time, with the
    network's objective (mean, +-1 std band) and the content image's objective as horizontal lines, and on the
    iteration axis the paper's claim `band` (iterations 50-100 of L-BFGS reach the network's objective)."""
    traces, notes = read_traces(run)
    if not traces:
        return None, notes
    sizes = sorted(traces, key=int)
    fig = Figure(figsize=(11, 3.4 * len(sizes)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(sizes), 2))
    for row, size in zip(axes, sizes):
        frames = traces[size]
        by_iter = pd.concat({img: f.set_index("iteration")["total"] for img, f in frames.items()}, axis=1)
        by_iter = by_iter.sort_index()
        t_end = min(float(f["wall_time_s"].max()) for f in frames.values())
        grid = np.linspace(0.0, t_end, 200) if t_end > 0 else np.array([0.0])
        by_time = np.stack([np.interp(grid, f["wall_time_s"], f["total"]) for f in frames.values()])
        curves = [(row[0], by_iter.index.to_numpy(float), by_iter.to_numpy(float).T, "L-BFGS iteration"),
                  (row[1], grid, by_time, "wall time (s)")]
        for ax, x, ys, xlabel in curves:
            if len(ys) <= MAX_THIN_LINES:
                for y in ys:
                    ax.plot(x, y, color="C0", alpha=0.25, lw=0.7)
            mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
            ax.plot(x, mean, color="C0", lw=1.8, label=f"Gatys L-BFGS, mean of {len(ys)}")
            ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.15, label="Gatys \u00b11 std")
            net_mean, net_std = _network_level(run, size, "johnson_network")
            if net_mean is not None:
                ax.axhline(net_mean, color="C3", lw=1.5, label="network objective (mean)")
                if net_std:
                    ax.axhspan(net_mean - net_std, net_mean + net_std, color="C3", alpha=0.12,
                               label="network \u00b11 std")
            content_mean, _ = _network_level(run, size, "content_image")
            if content_mean is not None:
                ax.axhline(content_mean, color="C2", ls=":", lw=1.5, label="content image objective")
            match = run.value(task="style", dataset=size, method="gatys_lbfgs",
                              metric="iters_to_match" if xlabel.startswith("L-BFGS") else "seconds_to_match")
            if match is not None and np.isfinite(match):
                ax.axvline(match, color="0.4", ls="--", lw=1.0, label="L-BFGS reaches the network (mean)")
            if band is not None and xlabel.startswith("L-BFGS"):
                ax.axvspan(*band, color="0.5", alpha=0.15, lw=0,
                           label=f"paper: L-BFGS iterations {band[0]:g}\u2013{band[1]:g}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("objective (Eq. 5)")
            ax.set_title(f"{size} px", fontsize=9)
            ax.grid(alpha=0.3)
            _log_if_positive(ax, [np.asarray(ys, float).ravel()])
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(f"Run {run.label}: Gatys objective vs the network ({run.profile} profile, {run.device})")
    return save(fig, path), notes


def trend_figure(run: Run, path: Path, band: tuple[float, float] | None = None) -> Path | None:
    """The style trend (trend.csv): L-BFGS iterations to match the network's objective against the network's
    training iterations, one line per size, the paper's band (50-100) drawn. A length whose network L-BFGS did not
    match is an open triangle at the iterations L-BFGS ran ("not matched within N"): a lower bound, never a point on
    the line. None when the run has no trend."""
    trend = run.trend
    if trend is None or trend.empty:
        return None
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for i, size in enumerate(sorted(trend["size"].unique(), key=lambda s: (len(s), s))):
        rows = trend[trend["size"] == size].sort_values("train_iterations", kind="stable")
        matched = rows[rows["iters_to_match"].notna()]
        unmatched = rows[rows["iters_to_match"].isna()]
        ax.plot(matched["train_iterations"], matched["iters_to_match"], marker="o", color=f"C{i}",
                label=f"{size} px: L-BFGS iterations to match")
        if not unmatched.empty:
            ax.scatter(unmatched["train_iterations"], unmatched["lbfgs_iterations"], marker="^", facecolors="none",
                       edgecolors=f"C{i}", label=f"{size} px: not matched within the L-BFGS run (lower bound)")
    if band is not None:
        ax.axhspan(*band, color="0.5", alpha=0.15, lw=0, label=f"paper: {band[0]:g}\u2013{band[1]:g} iterations")
    ax.set_xscale("log")
    ax.set_xlabel("network training iterations")
    ax.set_ylabel("L-BFGS iterations to match")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Run {run.label}: the match point against training ({run.profile} profile)", fontsize=10)
    return save(fig, path)


WORKLOADS = (("style forward", ("style_forward",)), ("SR forward", ("sr_forward", "srcnn_forward")),
             ("Gatys iteration", ("gatys", "lbfgs")), ("training step", ("train_step",)))
SHORT_NAMES = {"srcnn_forward": "SRCNN", "gatys_objective": "objective", "lbfgs_iteration": "L-BFGS iter.",
               "sr_forward": "", "style_forward": "", "train_step": ""}


def workload(base: str) -> str:
    """Which panel a benchmark belongs in, from its test name."""
    name = base.lower()
    for title, keys in WORKLOADS:
        if any(k in name for k in keys):
            return title
    return "other"


def _bar_label(base: str, variant: str, size: float, batch: float) -> str:
    """A short x label: what (if the panel holds several things), the image side, the batch when above 1."""
    name = base.removeprefix("test_")
    parts = [SHORT_NAMES.get(name, name)]
    for item in variant.split():
        key, _, value = item.partition("=")
        parts.append(f"x{value}" if key == "scale" else value)
    parts.append(f"{int(size)} px")
    if np.isfinite(batch) and batch > 1:
        parts.append(f"\u00d7{int(batch)}")
    return " ".join(p for p in parts if p)


def throughput_figure(records: pd.DataFrame, path: Path) -> Path | None:
    """Throughput (Mpixel/s) per workload, one panel each (style forward, SR forward, Gatys iteration, training
    step): for every benchmark and image size a bar per path (reference against fast), so sizes and workloads that
    are not comparable never share an axis."""
    if records.empty:
        return None
    usable = records[records["size"].notna() & np.isfinite(records["pixels_per_s"].astype(float))].copy()
    if usable.empty:
        return None
    usable["workload"] = usable["base"].map(workload)
    several_devices = usable["device"].nunique() > 1
    several_dtypes = usable["dtype"].nunique() > 1
    usable["bar"] = [(p or "unnamed path") + (f", {dt}" if several_dtypes and dt else "")
                     + (f" ({dev})" if several_devices else "")
                     for p, dt, dev in zip(usable["path"], usable["dtype"], usable["device"])]
    bars = sorted(usable["bar"].unique(), key=lambda b: (not b.startswith("reference"), b))
    panels = [w for w, _ in WORKLOADS if (usable["workload"] == w).any()]
    panels += ["other"] if (usable["workload"] == "other").any() else []
    ncols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + ncols - 1) // ncols
    fig = Figure(figsize=(11, 3.3 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    width = 0.8 / len(bars)
    for ax, panel in zip(axes, panels):
        sub = usable[usable["workload"] == panel]
        sub = sub.assign(label=[_bar_label(b, v, sz, bt) for b, v, sz, bt in
                                zip(sub["base"], sub["variant"], sub["size"], sub["batch"])])
        order = sub.sort_values(["base", "variant", "size"])["label"].drop_duplicates().tolist()
        x = np.arange(len(order))
        for i, bar in enumerate(bars):
            group = sub[sub["bar"] == bar].groupby("label")["pixels_per_s"].median()
            heights = [group.get(label, np.nan) / 1e6 for label in order]
            ax.bar(x + (i - (len(bars) - 1) / 2) * width, heights, width, label=bar, color=f"C{i}")
        ax.set_xticks(x, order, fontsize=8)
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel("Mpixel/s")
        ax.grid(alpha=0.3, axis="y")
        _log_if_positive(ax, [sub["pixels_per_s"].to_numpy(float) / 1e6])
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.suptitle("Throughput per workload: reference against fast path (pytest-benchmark medians)")
    return save(fig, path)


__all__ = [
    "RECORD_COLUMNS",
    "gatys_figure",
    "read_logs",
    "read_traces",
    "terms_figure",
    "throughput_figure",
    "training_figure",
]


CURVE_METRICS = (("psnr_y", "PSNR-Y (dB)"), ("ssim_y", "SSIM-Y"), ("lpips_alex", "LPIPS-alex (lower is better)"))
PAPER_ITERATIONS = 200_000  # the paper's SR schedule (Sec. 4.2): where its printed end points sit on the x axis


def read_curve(run: Run) -> tuple[pd.DataFrame | None, list[str]]:
    """The run's `curve.csv` (scale, dataset, method, iteration, metric, value), or None with a note if malformed."""
    path = run.path / CURVE_FILE
    if not path.is_file():
        return None, []
    try:
        frame = pd.read_csv(path, dtype={"scale": str, "dataset": str, "method": str, "metric": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        return None, [f"{CURVE_FILE}: malformed ({type(exc).__name__})"]
    need = set(CURVE_COLUMNS)
    if not need <= set(frame.columns):
        return None, [f"{CURVE_FILE}: malformed (needs columns {', '.join(sorted(need))})"]
    frame["iteration"] = pd.to_numeric(frame["iteration"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["iteration", "value"]), []


def seed_curve_range(run: Run) -> pd.DataFrame | None:
    """For a multi-seed run, each curve point's min and max over the seeds' own curve.csv files (run.json
    `seed_runs`, relative to the run folder); None for one seed or when a seed has no curve."""
    seed_runs = (run.info or {}).get("seed_runs")
    if not isinstance(seed_runs, dict) or len(seed_runs) < 2:
        return None
    frames = []
    for rel in seed_runs.values():
        seed = Run(path=run.path / str(rel), label=run.label)
        frame, _ = read_curve(seed)
        if frame is None or frame.empty:
            return None
        frames.append(frame)
    both = pd.concat(frames)
    keys = ["scale", "dataset", "method", "metric", "iteration"]
    return both.groupby(keys, as_index=False)["value"].agg(lo="min", hi="max", n="count")


def curve_figure(run: Run, path: Path, refs: pd.DataFrame | None = None) -> tuple[Path | None, list[str]]:
    """Set5 PSNR-Y / SSIM-Y / LPIPS of each SR network against its training iterations, one row of panels per
    scale. Marked beside the curves: the run's own bicubic mean (dotted) and the paper's printed end point for the
    same method at 200,000 iterations (star), so a reader sees which way a reduced run is heading. A multi-seed run
    draws the mean over its seeds with their range as a band."""
    from reports.references import reference

    frame, notes = read_curve(run)
    if frame is None or frame.empty:
        return None, notes
    band = seed_curve_range(run)
    scales = sorted(frame["scale"].unique(), key=lambda s: int(s) if s.isdigit() else 0)
    fig = Figure(figsize=(13, 3.7 * len(scales)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(scales), len(CURVE_METRICS), squeeze=False))
    colours = {"johnson_pixel": "tab:blue", "johnson_feat": "tab:red"}
    for row, scale in enumerate(scales):
        sel = frame[frame["scale"] == scale]
        dataset = str(sel["dataset"].iloc[0])
        for col, (metric, label) in enumerate(CURVE_METRICS):
            ax = axes[row, col]
            part = sel[sel["metric"] == metric]
            for method in sorted(part["method"].unique()):
                base = method.removesuffix("_histmatch")
                line = part[part["method"] == method].sort_values("iteration")
                ax.plot(line["iteration"], line["value"], marker="o", ms=3, lw=1.3,
                        ls="--" if method.endswith("_histmatch") else "-", color=colours.get(base),
                        label=method.replace("johnson_", "l_").replace("_histmatch", " + histmatch"))
                if band is not None:
                    rng = band[(band["scale"] == scale) & (band["method"] == method) & (band["metric"] == metric)]
                    rng = rng.sort_values("iteration")
                    ax.fill_between(rng["iteration"], rng["lo"], rng["hi"], color=colours.get(base), alpha=0.15,
                                    lw=0)
                if refs is not None and not method.endswith("_histmatch"):
                    ref = reference(refs, task="sr", scale=str(scale), dataset=dataset, method=base, metric=metric)
                    if ref is not None:
                        ax.plot([PAPER_ITERATIONS], [ref.value], marker="*", ms=12, ls="none", color=colours.get(base),
                                label=f"paper {base.replace('johnson_', 'l_')} (200k)")
            bicubic = run.value(task="sr", dataset=dataset, method="bicubic", metric=metric, scale=str(scale))
            if bicubic is not None:
                ax.axhline(bicubic, color="gray", ls=":", lw=1.2, label="bicubic (this run)")
            if part.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xscale("log")
            ax.set_xlabel("training iterations (log)")
            ax.set_ylabel(label)
            ax.set_title(f"x{scale} {dataset}")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=7)
    seeds = f"; mean of {len(run.seeds)} seeds, band: their range" if band is not None else ""
    fig.suptitle(f"Run {run.label}: {dataset} quality during training ({run.profile} profile, {run.device}{seeds})")
    return save(fig, path), notes
