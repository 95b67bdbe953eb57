"""The report's tables, built as pandas frames and rendered with pandas' Styler (HTML escaped, best cells marked).

Every cell is formatted by `reports.formatting.fmt_value`, the same rendering the tests compare against. A number a
run does not have reads "not run" (or "malformed" when the run's results.csv could not be read).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.claims import CLAIMS
from reports.formatting import HIGHER_IS_BETTER, fmt_value, method_label, metric_label
from reports.references import misprints, reference
from reports.results import MEAN
from reports.runs import Run, evaluated_methods

SR_METHOD_ORDER = ("bicubic", "srcnn", "johnson_pixel", "johnson_pixel_histmatch", "johnson_feat",
                   "johnson_feat_histmatch")
SR_METRIC_ORDER = ("psnr_y", "ssim_y", "lpips_vgg", "lpips_alex")
SR_DATASET_ORDER = ("Set5", "Set14", "BSD100")
TABLE1_METHODS = ("gatys_lbfgs_100", "gatys_lbfgs_300", "gatys_lbfgs_500", "johnson_feedforward", "speedup_vs_500")
TABLE1_METRIC = {m: "seconds" for m in TABLE1_METHODS[:-1]} | {"speedup_vs_500": "ratio"}
TABLE1_ALL_METRICS = ("seconds", "ratio", "seconds_extrapolated", "ratio_extrapolated")
# The training step's execution paths (bench.training.steps.PATHS; reports sits below bench): the style harness also times
# Table 1 on each, as rows `<method>_<path>` beside the unsuffixed rows of the run's own path.
TABLE1_PATHS = ("fast", "reference")
FIG5_METHODS = ("johnson_network", "content_image", "gatys_lbfgs")
FIG5_METRIC_ORDER = ("objective", "objective_std", "objective_final", "iters_to_match", "seconds_to_match")
PAPER = "paper"
BEST_CLASS = "best"


def natural_key(text: str) -> list[Any]:
    """Sort "img2" before "img10" (image stems and sizes)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


def ordered(values: list[str] | set[str], order: tuple[str, ...]) -> list[str]:
    """Known names in their fixed order, then the rest in natural order."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order), key=natural_key)


def slug(*parts: str) -> str:
    """An id-safe name for a table or figure."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(str(p) for p in parts)).strip("-")


def render(display: pd.DataFrame, *, table_id: str, classes: pd.DataFrame | None = None,
           caption: str | None = None, css_class: str = "results", hide_index: bool = False,
           links: dict[str, str] | None = None) -> str:
    """Render a frame of display strings with Styler: escaped cells, optional per-cell classes, a stable id.

    `links` maps a column to an anchor prefix: that column's cells hold "anchor|text" and render as a link to
    `#<prefix><anchor>` (the text escaped)."""
    styler = display.style.format(escape="html", na_rep="")
    for column, prefix in (links or {}).items():
        styler = styler.format(lambda v, prefix=prefix: _link(prefix, str(v)), subset=[column], escape="html")
    if hide_index:
        styler = styler.hide(axis="index")
    styler = styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    if classes is not None:
        styler = styler.set_td_classes(classes)
    if caption:
        styler = styler.set_caption(caption)
    styler = styler.set_uuid(table_id).set_table_attributes(f'id="{table_id}" class="{css_class}"')
    # Styler writes its own id="T_<uuid>" first: a browser keeps the first of two ids, so links to #<table_id>
    # would find nothing; keep one id, the stable one
    return styler.to_html(doctype_html=False).replace(f'<table id="T_{table_id}" id="{table_id}"',
                                                      f'<table id="{table_id}"', 1)


def _link(prefix: str, value: str) -> str:
    anchor, _, text = value.partition("|")
    return f'<a href="#{prefix}{anchor}">{text}</a>'


def missing_for(run: Run) -> str:
    return run.missing_text


# ---- claims -----------------------------------------------------------------------------------------------------
CLAIM_COLUMNS = ["Run", "Scale", "Dataset", "Method", "Metric", "Paper", "Source", "Confidence", "Protocol",
                 "Reproduced", "\u0394", "Tolerance", "Verdict", "Noise"]
PAPER_METHOD_LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN", "johnson_pixel": "ours, l_pixel",
                      "johnson_feat": "ours, l_feat"}
SUMMARY_COLUMNS = ["Claim", "Best run", "Verdict", "\u0394 (where)", "Checks", "Checked against"]


def merge_identical_runs(sub: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows that differ only in their run shown once, naming the runs ("A, B, C"), in first-seen order."""
    if sub.empty:
        return sub
    rest = [c for c in columns if c != "Run"]
    keys = [tuple(r) for r in sub[rest].astype(str).itertuples(index=False)]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    rows = []
    for members in groups.values():
        first = sub.iloc[members[0]].copy()
        if len(members) > 1:
            first["Run"] = ", ".join(str(sub.iloc[i]["run_label"]) for i in members)
        rows.append(first)
    return pd.DataFrame(rows).reset_index(drop=True)


def _claims_html(sub: pd.DataFrame, table_id: str) -> str | None:
    if sub.empty:
        return None
    sub = merge_identical_runs(sub.reset_index(drop=True), CLAIM_COLUMNS)
    display = sub[CLAIM_COLUMNS].copy()
    for col in ("Scale", "Protocol", "Noise"):
        if display[col].isin(["", "\u2014"]).all():
            display = display.drop(columns=[col])
    classes = pd.DataFrame("", index=display.index, columns=display.columns)
    classes["Verdict"] = "verdict verdict-" + sub["verdict_class"].str.replace(" ", "-")
    classes["Confidence"] = "confidence-" + sub["Confidence"].astype(str).str.replace(" ", "-")
    return render(display, table_id=table_id, classes=classes, css_class="claims", hide_index=True)


def claims_tables(claims: pd.DataFrame) -> list[dict[str, Any]]:
    """Per claim: a table of the checks that have a number (verdict cells classed for colour) and, folded away,
    the checks no run has a number for (`<key>-not-run`), so a partial run does not bury its results."""
    out = []
    for spec in CLAIMS:
        sub = claims[claims["claim"] == spec.key]
        if sub.empty:
            continue
        missing = sub["verdict_class"] == "not run"
        sources = sorted({str(d) for d in sub["source"] if d})
        out.append({"key": spec.key, "title": spec.title, "why": spec.why, "sources": sources,
                    "relative": spec.relative, "attempted": bool((~missing).any()),
                    "html": _claims_html(sub[~missing], f"claims-{spec.key}"),
                    "not_run_html": _claims_html(sub[missing], f"claims-{spec.key}-not-run"),
                    "n_not_run": int(missing.sum())})
    return out


def summary_html(summary: pd.DataFrame, *, attempted: bool) -> str | None:
    """The one-line-per-claim table at the top of the page: best run, verdict, one delta, counts.

    `attempted=True` renders the claims some run has a number for (`claims-summary`); False the claims no run
    attempted (`claims-summary-not-run`, shown folded)."""
    sub = summary[summary["attempted"] == attempted].reset_index(drop=True)
    if sub.empty:
        return None
    display = sub[SUMMARY_COLUMNS].copy()
    display["Claim"] = sub["claim"] + "|" + sub["Claim"]
    classes = pd.DataFrame("", index=display.index, columns=display.columns)
    classes["Verdict"] = "verdict verdict-" + sub["verdict_class"].str.replace(" ", "-")
    table_id = "claims-summary" if attempted else "claims-summary-not-run"
    return render(display, table_id=table_id, classes=classes, css_class="claims summary", hide_index=True,
                  links={"Claim": "claim-"})


def misprints_html(refs: pd.DataFrame) -> str | None:
    """The paper's misprinted numbers: what is printed, what the suite compares against, and why."""
    rows = misprints(refs)
    if rows.empty:
        return None
    frame = pd.DataFrame({
        "Where": [f"x{r.scale} {r.dataset}" + ("" if r.image == MEAN else f" / {r.image}") for r in rows.itertuples()],
        "Method": rows["method"].map(lambda m: PAPER_METHOD_LABELS.get(m, m)),
        "Metric": rows["metric"].map(metric_label), "Printed": rows["printed"], "Value compared against": [fmt_value(m, v) for m, v in
                                                               zip(rows["metric"], rows["value"])],
        "Source": rows["source"], "Why": rows["note"]})
    return render(frame, table_id="misprints", css_class="claims misprints", hide_index=True)


# ---- runs -------------------------------------------------------------------------------------------------------
def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: what it is, where it ran, what it trained on, and whether it is the paper's protocol."""
    rows = []
    for run in runs:
        rows.append({
            "Run": run.label, "Task": ", ".join(sorted(run.tasks)) or "unknown", "Status": run.status,
            "Profile": run.profile, "Device": run.device_name if run.device_name != run.device else run.device,
            "Corpus": run.corpus_text, "Commit": run.commit, "Date": run.date,
            "Network variant": run.variant or "\u2014", "Seed": str(run._get("seed", default="\u2014")),
            "Paper protocol": "yes" if run.paper_protocol else "no: " + "; ".join(run.deviations()),
            "Folder": str(run.path),
        })
    return pd.DataFrame(rows)


def runs_html(runs: list[Run]) -> str:
    frame = runs_frame(runs)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    classes["Status"] = "status-" + frame["Status"].str.replace(" ", "-")
    classes["Paper protocol"] = np.where(frame["Paper protocol"] == "yes", "protocol-yes", "protocol-no")
    return render(frame, table_id="runs-table", classes=classes, css_class="runs", hide_index=True)


def flatten(info: Any, prefix: str = "") -> dict[str, str]:
    """run.json as dotted keys -> text, for the environment table."""
    out: dict[str, str] = {}
    if isinstance(info, dict):
        for key, value in info.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(info, list) and not any(isinstance(v, (dict, list)) for v in info):
        out[prefix.rstrip(".")] = " ".join(str(v) for v in info)
    elif isinstance(info, list):
        for i, value in enumerate(info):
            out.update(flatten(value, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = str(info)
    return out


def environment_html(run: Run) -> str | None:
    """Everything run.json records, one key per row (None when there is no readable run.json)."""
    if run.info is None:
        return None
    items = flatten(run.info)
    frame = pd.DataFrame({"value": list(items.values())}, index=pd.Index(list(items.keys()), name="field"))
    return render(frame, table_id=f"env-{run.label}", css_class="env")


def stages_html(run: Run) -> str | None:
    """Stage name, status, wall time and error, coloured by status."""
    if not run.stages:
        return None
    rows = []
    for name, stage in run.stages.items():
        stage = stage if isinstance(stage, dict) else {"status": str(stage)}
        wall = stage.get("wall_time_s")
        rows.append({"stage": name, "status": str(stage.get("status", "unknown")),
                     "wall time (s)": f"{float(wall):.1f}" if isinstance(wall, (int, float)) else "\u2014",
                     "error": str(stage.get("error") or "")})
    frame = pd.DataFrame(rows)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    classes["status"] = "status-" + frame["status"].str.replace(" ", "-")
    return render(frame, table_id=f"stages-{run.label}", classes=classes, css_class="stages", hide_index=True)


# ---- super-resolution -------------------------------------------------------------------------------------------
def sr_keys(runs: list[Run]) -> list[tuple[str, str]]:
    """(scale, dataset) pairs any run reported, in the paper's order."""
    keys = set()
    for run in runs:
        for _, row in run.rows(task="sr")[["scale", "dataset"]].drop_duplicates().iterrows():
            keys.add((row["scale"], row["dataset"]))
    scales = sorted({k[0] for k in keys}, key=natural_key)
    return [(s, d) for s in scales for d in ordered([k[1] for k in keys if k[0] == s], SR_DATASET_ORDER)]


def mark_best(numbers: pd.DataFrame, metric_of: dict[Any, str]) -> pd.DataFrame:
    """A class frame with `best` on the best value of each column (max PSNR/SSIM, min LPIPS); needs two values."""
    classes = pd.DataFrame("", index=numbers.index, columns=numbers.columns)
    for col in numbers.columns:
        higher = HIGHER_IS_BETTER.get(metric_of.get(col, ""))
        values = pd.to_numeric(numbers[col], errors="coerce")
        finite = values[np.isfinite(values)]
        if higher is None or len(finite) < 2:
            continue
        best = finite.max() if higher else finite.min()
        classes.loc[values == best, col] = BEST_CLASS
    return classes


def sr_table(runs: list[Run], published: pd.DataFrame, scale: str, dataset: str) -> str:
    """Dataset means per method: the paper's numbers (with confidence) beside each run's; best per column marked."""
    # a run with results but nothing at this scale and dataset gets no column of "not run"s
    sr_runs = [r for r in runs if "sr" in r.tasks
               and (r.results is None or not r.rows(task="sr", scale=scale, dataset=dataset).empty)]
    methods = set()
    metrics = set()
    for run in sr_runs:
        sel = run.rows(task="sr", scale=scale, dataset=dataset, image=MEAN)
        methods.update(sel["method"])
        metrics.update(sel["metric"])
    methods_list = ordered(methods, SR_METHOD_ORDER)
    metrics_list = ordered(metrics, SR_METRIC_ORDER)
    display: dict[tuple[str, str], list[str]] = {}
    numbers: dict[tuple[str, str], list[float]] = {}
    metric_of: dict[tuple[str, str], str] = {}
    paper_metrics = [m for m in metrics_list if m in ("psnr_y", "ssim_y")]
    confidences, protocols = [], []
    for metric in paper_metrics:
        col = (PAPER, metric_label(metric))
        display[col], numbers[col] = [], []
        for method in methods_list:
            ref = reference(published, task="sr", scale=scale, dataset=dataset,
                            method=method.removesuffix("_histmatch"), metric=metric)
            text = fmt_value(metric, ref.value) if ref else "\u2014"
            display[col].append(f"{text} (printed {ref.printed})" if ref and ref.misprint else text)
            numbers[col].append(np.nan)
    for method in methods_list:
        refs = [reference(published, task="sr", scale=scale, dataset=dataset,
                          method=method.removesuffix("_histmatch"), metric=m) for m in paper_metrics]
        found = [r for r in refs if r is not None]
        confidences.append(", ".join(sorted({r.confidence for r in found})) or "\u2014")
        protocols.append(", ".join(sorted({r.protocol for r in found if r.protocol})) or "\u2014")
    if paper_metrics:
        display[(PAPER, "confidence")] = confidences
        numbers[(PAPER, "confidence")] = [np.nan] * len(methods_list)
        display[(PAPER, "protocol")] = protocols
        numbers[(PAPER, "protocol")] = [np.nan] * len(methods_list)
    seen: dict[tuple[str, str, str], str] = {}
    for run in sr_runs:
        for metric in metrics_list:
            col = (run.header, metric_label(metric))
            metric_of[col] = metric
            display[col], numbers[col] = [], []
            for method in methods_list:
                value = run.value(task="sr", scale=scale, dataset=dataset, method=method, metric=metric)
                text = fmt_value(metric, value) if value is not None else missing_for(run)
                stats = run.seed_stats(task="sr", scale=scale, dataset=dataset, method=method, metric=metric)
                if value is not None and stats is not None and stats[0] > 1 and stats[3] > stats[2]:
                    text += f" \u00b1 {fmt_value(metric, (stats[3] - stats[2]) / 2)} (n={stats[0]})"
                display[col].append(text if value is None else same_as(seen, (metric, method, text), run.label))
                numbers[col].append(np.nan if value is None else value)
    evaluated = evaluated_methods(runs)  # a user's method: beside the paper's, with no paper number of its own
    index = pd.Index([method_label(m, evaluated) for m in methods_list])
    columns = pd.MultiIndex.from_tuples(list(display.keys()), names=["source", "metric"])
    disp = pd.DataFrame(list(zip(*display.values())), index=index, columns=columns)
    nums = pd.DataFrame(list(zip(*numbers.values())), index=index, columns=columns)
    classes = mark_best(nums, metric_of)
    if (PAPER, "confidence") in classes.columns:
        classes[(PAPER, "confidence")] = ["confidence-" + c.replace(" ", "-") for c in confidences]
    return render(disp, table_id=slug("sr", f"x{scale}", dataset), classes=classes, css_class="results sr")


def same_as(seen: dict[tuple[str, str, str], str], key: tuple[str, str, str], label: str) -> str:
    """A value identical (as printed) to an earlier run's in the same row: "same as A"; else the value itself."""
    if key in seen:
        return f"same as {seen[key]}"
    seen[key] = label
    return key[2]


def per_image_table(runs: list[Run], *, task: str, dataset: str, scale: str = "",
                    methods: tuple[str, ...] = SR_METHOD_ORDER, metrics: tuple[str, ...] = SR_METRIC_ORDER,
                    table_id: str) -> str | None:
    """Per-image values (rows: image x method, columns: run x metric) for the drill-down; None without any."""
    task_runs = [r for r in runs if task in r.tasks]
    frames = []
    for run in task_runs:
        sel = run.rows(task=task, scale=scale, dataset=dataset)
        sel = sel[sel["image"] != MEAN]
        if not sel.empty:
            frames.append(sel.assign(run=run.header))
    if not frames:
        return None
    long = pd.concat(frames, ignore_index=True)
    images = sorted(long["image"].unique(), key=natural_key)
    method_list = ordered(set(long["method"]), methods)
    metric_list = ordered(set(long["metric"]), metrics)
    run_headers = [r.header for r in task_runs if r.header in set(long["run"])]
    lookup = {(r.run, r.image, r.method, r.metric): r.value for r in long.itertuples()}
    evaluated = evaluated_methods(runs)
    index_tuples, rows = [], []
    label_of = {r.header: r.label for r in task_runs}
    for image in images:
        for method in method_list:
            if not any((h, image, method, m) in lookup for h in run_headers for m in metric_list):
                continue
            index_tuples.append((image, method_label(method, evaluated)))
            row = []
            seen: dict[tuple[str, str, str], str] = {}
            for header in run_headers:
                for metric in metric_list:
                    value = lookup.get((header, image, method, metric))
                    row.append(same_as(seen, (metric, method, fmt_value(metric, value)), label_of[header])
                               if value is not None else "not run")
            rows.append(row)
    columns = pd.MultiIndex.from_tuples([(h, metric_label(m)) for h in run_headers for m in metric_list],
                                        names=["run", "metric"])
    index = pd.MultiIndex.from_tuples(index_tuples, names=["image", "method"])
    return render(pd.DataFrame(rows, index=index, columns=columns), table_id=table_id, css_class="results per-image")


def sr_sections(runs: list[Run], published: pd.DataFrame) -> list[dict[str, Any]]:
    """One section per (scale, dataset): the means table and the per-image drill-down."""
    out = []
    for scale, dataset in sr_keys(runs):
        tid = slug("sr", f"x{scale}", dataset)
        n_images = max((len(set(r.rows(task="sr", scale=scale, dataset=dataset)["image"]) - {MEAN}) for r in runs),
                       default=0)
        coverage = [f"Run {r.label}: means {over} (unreadable files skipped: "
                    f"{', '.join(Path(s['file']).name for s in r.skipped_files if s.get('dataset') == dataset)})"
                    for r in runs if (over := r.mean_over(dataset)) is not None]
        out.append({"id": tid, "scale": scale, "dataset": dataset, "n_images": n_images, "coverage": coverage,
                    "table": sr_table(runs, published, scale, dataset),
                    "per_image": per_image_table(runs, task="sr", dataset=dataset, scale=scale,
                                                 table_id=f"{tid}-per-image")})
    return out


# ---- style: Table 1 and Fig. 5 ----------------------------------------------------------------------------------
def style_sizes(runs: list[Run], methods: tuple[str, ...]) -> list[str]:
    sizes = set()
    for run in runs:
        sel = run.rows(task="style")
        sizes.update(sel[sel["method"].isin(methods)]["dataset"])
    return sorted(sizes, key=natural_key)


def table1_html(runs: list[Run], published: pd.DataFrame) -> str | None:
    """Seconds for 100/300/500 L-BFGS iterations and one feed-forward pass, and the speedup, per size."""
    style_runs = [r for r in runs if "style" in r.tasks]
    # a user's evaluated stylizer: its forward time is a Table 1 row beside "ours, feed-forward"
    evaluated = sorted(m for m in evaluated_methods(style_runs)
                       if any(not r.rows(task="style", method=m, metric="seconds").empty for r in style_runs))
    methods = (*TABLE1_METHODS, *evaluated)
    sizes = sorted(set(style_sizes(style_runs, methods)) | {"256", "512", "1024"}, key=natural_key)
    if style_runs:
        sizes = [s for s in sizes if s in ("256", "512", "1024") or any(
            not r.rows(task="style", dataset=s, method=m).empty for r in style_runs for m in methods)]
    if not style_runs:
        return None
    # (results.csv method, its metric, row label): the paper's rows, each evaluated stylizer's, then per path
    # the rows `<method>_<path>` a run that timed both execution paths wrote (none in older runs)
    rows: list[tuple[str, str, str]] = [
        (m, TABLE1_METRIC[m], f"{method_label(m)} ({metric_label(TABLE1_METRIC[m])})") for m in TABLE1_METHODS]
    rows += [(m, "seconds", f"{method_label(m, evaluated)}, feed-forward ({metric_label('seconds')})")
             for m in evaluated]
    present = {m for r in style_runs for m in r.rows(task="style")["method"]}
    rows += [(f"{m}_{path}", TABLE1_METRIC[m], f"{method_label(m)} ({path} path) ({metric_label(TABLE1_METRIC[m])})")
             for path in TABLE1_PATHS for m in TABLE1_METHODS if f"{m}_{path}" in present]
    columns, data = [], []
    for size in sizes:
        columns.append((f"{size} px", "paper (Titan X)"))
        columns.extend((f"{size} px", run.header) for run in style_runs)
    for method, metric, _ in rows:
        row = []
        for size in sizes:
            ref = reference(published, task="style", dataset=size, method=method, metric=metric)
            row.append(fmt_value(metric, ref.value) if ref else "\u2014")
            for run in style_runs:
                value = run.value(task="style", dataset=size, method=method, metric=metric)
                if value is not None:
                    row.append(fmt_value(metric, value))
                    continue
                # traces shorter than 300/500 iterations: the harness extrapolates linearly and says so
                value = run.value(task="style", dataset=size, method=method, metric=f"{metric}_extrapolated")
                row.append(f"{fmt_value(metric, value)} (extrapolated)" if value is not None else missing_for(run))
        data.append(row)
    index = pd.Index([label for _, _, label in rows])
    frame = pd.DataFrame(data, index=index, columns=pd.MultiIndex.from_tuples(columns, names=["size", "source"]))
    caption = ("Rows labelled (fast path) / (reference path) time that execution path of the same run; the "
               "unlabelled rows are each run's own path (see its run.json table1.paths)."
               if len(rows) > len(TABLE1_METHODS) + len(evaluated) else None)
    return render(frame, table_id="table1", css_class="results table1", caption=caption)


def fig5_methods(style_runs: list[Run]) -> tuple[str, ...]:
    """The Fig. 5 rows: the suite's network, the content image, L-BFGS, then each evaluated stylizer (its objective
    on the same images and, with --compare, the L-BFGS iterations to match it)."""
    return (*FIG5_METHODS, *sorted(evaluated_methods(style_runs)))


def fig5_html(runs: list[Run]) -> str | None:
    """Dataset means of the Fig. 5 quantities per size and run, with the paper's iterations-to-match range."""
    style_runs = [r for r in runs if "style" in r.tasks]
    if not style_runs:
        return None
    evaluated = evaluated_methods(style_runs)
    methods = fig5_methods(style_runs)
    sizes = style_sizes(style_runs, methods) or ["256", "512", "1024"]
    pairs: set[tuple[str, str]] = set()
    for run in style_runs:
        sel = run.rows(task="style", image=MEAN)
        # an evaluated stylizer's forward time is Table 1's; its Fig. 5 quantities are these
        sel = sel[sel["method"].isin(FIG5_METHODS) | (sel["method"].isin(evaluated)
                                                     & sel["metric"].isin(FIG5_METRIC_ORDER))]
        pairs.update(zip(sel["method"], sel["metric"]))
    order = {m: i for i, m in enumerate(methods)} | {m: 10 + i for i, m in enumerate(FIG5_METRIC_ORDER)}
    pairs_list = sorted(pairs, key=lambda p: (order.get(p[0], 99), order.get(p[1], 99), p))
    if not pairs_list:
        pairs_list = [("gatys_lbfgs", "iters_to_match")]
    index, data = [], []
    for size in sizes:
        for method, metric in pairs_list:
            index.append((f"{size} px", f"{method_label(method, evaluated)}: {metric_label(metric)}"))
            row = ["50\u2013100 (printed)" if (method, metric) == ("gatys_lbfgs", "iters_to_match") else "\u2014"]
            for run in style_runs:
                value = run.value(task="style", dataset=size, method=method, metric=metric)
                row.append(fmt_value(metric, value) if value is not None else missing_for(run))
            data.append(row)
    frame = pd.DataFrame(data, index=pd.MultiIndex.from_tuples(index, names=["size", "quantity"]),
                         columns=pd.Index([PAPER] + [r.header for r in style_runs], name="source"))
    return render(frame, table_id="fig5-table", css_class="results fig5")


def fig5_per_image_html(runs: list[Run]) -> list[dict[str, str]]:
    """Per content image Fig. 5 quantities, one drill-down table per size."""
    out = []
    methods = fig5_methods([r for r in runs if "style" in r.tasks])
    for size in style_sizes([r for r in runs if "style" in r.tasks], methods):
        html = per_image_table(runs, task="style", dataset=size, methods=methods, metrics=FIG5_METRIC_ORDER,
                               table_id=slug("fig5", size, "per-image"))
        if html:
            out.append({"size": size, "html": html})
    return out


# ---- benchmarks -------------------------------------------------------------------------------------------------
def bench_html(records: pd.DataFrame) -> str | None:
    """One row per benchmark: where it ran, its size, median time and throughput."""
    if records.empty:
        return None
    frame = pd.DataFrame({
        "source": records["source"], "benchmark": records["name"], "group": records["group"],
        "device": records["device"], "size (px)": records["size"].map(
            lambda s: "\u2014" if s is None or (isinstance(s, float) and math.isnan(s)) else str(int(s))),
        "median (ms)": records["median_s"].map(lambda v: f"{v * 1e3:.4g}"),
        "Mpixel/s": records["pixels_per_s"].map(lambda v: "\u2014" if not np.isfinite(v) else f"{v / 1e6:.4g}"),
        "GFLOP/s": records["gflops"].map(lambda v: "\u2014" if not np.isfinite(v) else f"{v:.4g}"),
        "rounds": records["rounds"].astype(str),
    })
    return render(frame, table_id="bench-table", css_class="results bench", hide_index=True)
