"""Build the report: run folders + benchmark JSON + the paper's numbers -> one HTML page and a Markdown summary.

    python -m reports.build RUN_DIR [RUN_DIR ...] [--bench JSON ...] --out DIR

The page (`DIR/report.html`) needs nothing outside DIR: figures and image crops are written to `DIR/assets/`, styles
are inline, there is no script and no web font. `DIR/report.md` is the short summary to paste into an issue. Harnesses
call `build_report` at the end of every run. A missing or broken run folder, results.csv, run.json, log or trace
shows as "not run" / "malformed" where its numbers would be; the other runs still render.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from data.files import atomic_write_text
from reports import claims as claims_mod
from reports import figures, grids, headline, tables
from reports.benchjson import load_bench
from reports.formatting import fmt_value, method_label, metric_label
from reports.references import CONFIDENCE_NOTE, load_references, reference
from reports.results import MEAN
from reports.runs import Run, evaluated_methods, load_runs
from reports.spread import SpreadTable, load_spread

DEFAULT_OUT = Path("reports/generated")
DEFAULT_BENCH_GLOB = "results/bench/*.json"
ASSETS = "assets"
ASSETS_MARKER = ".report-assets"  # only a folder holding this file is ever replaced by a rebuild
T = TypeVar("T")
D = TypeVar("D")


def default_bench_jsons(root: Path | None = None) -> list[Path]:
    """Benchmark JSON files under results/bench/ (relative to `root`, default the working directory)."""
    return sorted((root or Path.cwd()).glob(DEFAULT_BENCH_GLOB))


def discover_runs(roots: tuple[Path, ...] = (Path("runs"), Path("results"))) -> list[Path]:
    """Run folders (holding run.json or results.csv) one or two levels under runs/ and results/."""
    found: set[Path] = set()
    for root in roots:
        for marker in ("run.json", "results.csv"):
            found.update(p.parent for p in root.glob(f"*/{marker}"))
            found.update(p.parent for p in root.glob(f"*/*/{marker}"))
    return sorted(found)


def _environment() -> Environment:
    """Jinja2 with autoescaping for .html templates; Markdown is rendered unescaped (it is not HTML)."""
    env = Environment(loader=PackageLoader("reports", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True,
                                                   default=False),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env


class Problems:
    """Parts of the report that could not be built: each is shown on the page instead of stopping the build."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def guard(self, what: str, fn: Callable[[], T], default: D) -> T | D:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - shown on the page with the traceback's last line
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.items.append(f"could not build {what}: {last}")
            return default


def _prepare_assets(out_dir: Path) -> tuple[Path, Path]:
    """A fresh folder to write this build's assets into, swapped in at the end (old crops never linger)."""
    final = out_dir / ASSETS
    if final.exists() and not (final / ASSETS_MARKER).is_file():
        raise FileExistsError(f"{final} exists and was not made by the report builder: choose another --out")
    staging = out_dir / f".{ASSETS}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    (staging / ASSETS_MARKER).write_text("written by reports.build; replaced on every build\n")
    return staging, final


def _swap_assets(staging: Path, final: Path) -> None:
    old = final.with_name(f".{ASSETS}-old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)


def fig5_claim_band(refs: Any) -> tuple[float, float] | None:
    """The paper's Fig. 5 claim at 256 px (L-BFGS iterations 50-100) from its table, for the figure's band."""
    low = reference(refs, task="style", dataset="256", method="gatys_lbfgs", metric="iters_to_match_low")
    high = reference(refs, task="style", dataset="256", method="gatys_lbfgs", metric="iters_to_match_high")
    return (low.value, high.value) if low is not None and high is not None else None


def load_spread_table(path: Path | None = None) -> SpreadTable:
    """The measured spread table (reports/measured_spread.csv): a single-seed run's relative verdicts are set beside
    their profile's measured seed spread, or say that it is not measured."""
    return load_spread(path)


SECTION_ORDER = {key: i for i, (key, _) in enumerate(headline.SECTIONS)}
SECTION_TITLE = dict(headline.SECTIONS)


def _headline_context(rows: Any) -> list[dict[str, Any]]:
    records = rows.to_dict("records") if not rows.empty else []
    for r in records:
        r["section_order"] = SECTION_ORDER.get(r["section"], 99)
        r["section_title"] = SECTION_TITLE.get(r["section"], r["section"])
    return sorted(records, key=lambda r: r["section_order"])


def _run_context(run: Run) -> dict[str, Any]:
    return {"label": run.label, "header": run.header, "status": run.status, "tasks": sorted(run.tasks),
            "profile": run.profile, "device": run.device, "device_name": run.device_name,
            "corpus": run.corpus_text, "commit": run.commit, "date": run.date, "variant": run.variant,
            "path": str(run.path), "notes": run.notes, "deviations": run.deviations(),
            "harness_notes": run.harness_notes,
            "paper_protocol": run.paper_protocol, "evaluated": run.evaluated_name if run.is_evaluation else None,
            "skipped_files": run.skipped_files, "reproduction": run.reproduction, "seeds": run.seeds}


def _md_sr_rows(runs: list[Run], sections: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Dataset means for the Markdown summary: one row per scale/dataset/method, a PSNR/SSIM cell per run."""
    rows = []
    for sec in sections:
        methods = set()
        for run in runs:
            methods.update(run.rows(task="sr", scale=sec["scale"], dataset=sec["dataset"], image=MEAN)["method"])
        evaluated = evaluated_methods(runs)
        for method in tables.ordered(methods, tables.SR_METHOD_ORDER):
            cells = []
            for run in runs:
                if "sr" not in run.tasks:
                    continue
                p = run.value(task="sr", scale=sec["scale"], dataset=sec["dataset"], method=method, metric="psnr_y")
                s = run.value(task="sr", scale=sec["scale"], dataset=sec["dataset"], method=method, metric="ssim_y")
                cells.append(f"{fmt_value('psnr_y', p)} / {fmt_value('ssim_y', s)}" if p is not None or s is not None
                             else run.missing_text)
            rows.append({"scale": sec["scale"], "dataset": sec["dataset"], "method": method_label(method, evaluated),
                         "cells": cells})
    return rows


def _sr_sections(runs: list[Run], published: pd.DataFrame, problems: Problems) -> list[dict[str, Any]]:
    """The SR tables, one section per scale and dataset, their HTML marked safe for the template."""
    sections = problems.guard("the SR tables", lambda: tables.sr_sections(runs, published), [])
    for sec in sections:
        sec["table"] = Markup(sec["table"])
        sec["per_image"] = Markup(sec["per_image"]) if sec["per_image"] else None
    return sections


def _run_figures(runs: list[Run], staging: Path, published: pd.DataFrame, fig5_band: tuple[float, float] | None,
                 problems: Problems) -> list[dict[str, Any]]:
    """Per run, its figures written to `staging` (training, Gatys, curve, style trend, loss terms) as asset links."""
    run_figures = []
    for run in runs:
        entry: dict[str, Any] = {"label": run.label, "header": run.header, "notes": []}
        for key, fn in (("training", figures.training_figure),
                        ("gatys", partial(figures.gatys_figure, band=fig5_band)),
                        ("curve", partial(figures.curve_figure, refs=published))):
            path, notes = problems.guard(
                f"the {key} figure of run {run.label}",
                partial(fn, run, staging / f"{run.label}_{key}.png"), (None, []))
            entry[key] = f"{ASSETS}/{path.name}" if path else None
            entry["notes"].extend(notes)
        trend = problems.guard(f"the style-trend figure of run {run.label}",
                               partial(figures.trend_figure, run, staging / f"{run.label}_trend.png",
                                       band=fig5_band), None)
        entry["trend"] = f"{ASSETS}/{trend.name}" if trend else None
        terms = problems.guard(f"the loss-terms figure of run {run.label}",
                               partial(figures.terms_figure, run, staging / f"{run.label}_terms.png"),
                               None)
        entry["terms"] = f"{ASSETS}/{terms.name}" if terms else None
        run_figures.append(entry)
    return run_figures


def _image_grids(runs: list[Run], staging: Path, problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per run label, its SR image grids and its style grids written to `staging`, each with the evaluated methods
    placed beside the runs' own."""
    sr_grid = {r.label: problems.guard(f"the SR image grids of run {r.label}",
                                       partial(grids.sr_grids, r, staging, href=ASSETS), [])
               for r in runs}
    problems.guard("the evaluated methods beside the SR image grids",
                   partial(grids.place_evaluated_sr, runs, sr_grid, staging, href=ASSETS), None)
    style_grid = {r.label: problems.guard(f"the style grids of run {r.label}",
                                          partial(grids.style_grids, r, staging, href=ASSETS), [])
                  for r in runs}
    problems.guard("the evaluated stylizers beside the style grids",
                   partial(grids.place_evaluated_style, runs, style_grid, staging, href=ASSETS), None)
    return sr_grid, style_grid


def _html_tables(runs: list[Run], published: pd.DataFrame, claims: pd.DataFrame, summary: pd.DataFrame,
                 records: pd.DataFrame, problems: Problems) -> dict[str, Any]:
    """The page's tables as HTML marked safe for the template: claim summary, misprints, claims, runs, Table 1,
    Fig. 5 (and its per-image drill-down), benchmarks."""
    html_tables: dict[str, Any] = {
        "summary": tables.summary_html(summary, attempted=True),
        "summary_not_run": tables.summary_html(summary, attempted=False),
        "misprints": tables.misprints_html(published),
        "claims": [dict(t, html=Markup(t["html"]) if t["html"] else None,
                        not_run_html=Markup(t["not_run_html"]) if t["not_run_html"] else None)
                   for t in tables.claims_tables(claims)],
        "runs": Markup(tables.runs_html(runs)) if runs else None,
        "table1": problems.guard("Table 1", lambda: tables.table1_html(runs, published), None),
        "fig5": problems.guard("the Fig. 5 table", lambda: tables.fig5_html(runs), None),
        "fig5_per_image": problems.guard("the Fig. 5 drill-down", lambda: tables.fig5_per_image_html(runs), []),
        "bench": problems.guard("the benchmark table", lambda: tables.bench_html(records), None),
    }
    for key in ("table1", "fig5", "bench", "summary", "summary_not_run", "misprints"):
        if html_tables[key]:
            html_tables[key] = Markup(html_tables[key])
    for item in html_tables["fig5_per_image"]:
        item["html"] = Markup(item["html"])
    return html_tables


def _environment_tables(runs: list[Run], problems: Problems) -> list[dict[str, Any]]:
    """Per run, its environment and stages tables as HTML marked safe for the template."""
    env_tables = []
    for run in runs:
        env_html = problems.guard(f"the environment table of run {run.label}",
                                  partial(tables.environment_html, run), None)
        stages_html = problems.guard(f"the stages table of run {run.label}",
                                     partial(tables.stages_html, run), None)
        env_tables.append({"label": run.label, "header": run.header, "info_error": run.info_error,
                           "env": Markup(env_html) if env_html else None,
                           "stages": Markup(stages_html) if stages_html else None})
    return env_tables


def build_report(run_dirs: list[Path], bench_jsons: list[Path] | None = None,
                 out_dir: Path = DEFAULT_OUT, spread: Any = "default") -> Path:
    """Write `out_dir/report.html` (+ `report.md`, `assets/`) comparing the runs; return the HTML's path.

    `bench_jsons=None` reads results/bench/*.json under the working directory; pass [] for no benchmarks.
    `spread`: the measured spread table (anything with `.spread(kind, task, profile, dataset, scale, method, image,
    metric)`), None for none; by default reports.spread's committed table when there is one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    runs = load_runs([Path(p) for p in run_dirs])
    published = load_references()
    bench_paths = default_bench_jsons() if bench_jsons is None else [Path(p) for p in bench_jsons]
    records, bench_notes = load_bench(bench_paths)
    staging, final_assets = _prepare_assets(out_dir)
    spread_table = load_spread_table() if isinstance(spread, str) and spread == "default" else spread
    try:
        claims = claims_mod.check_claims(runs, published, spread_table)
        head = headline.headline_rows(claims, published, runs)
        verdicts = headline.section_verdicts(head, claims, runs)
        noise_note = headline.default_profile_noise(claims)
        fig5_band = fig5_claim_band(published)
        summary = claims_mod.claim_summary(claims)
        sr_sections = _sr_sections(runs, published, problems)
        run_figures = _run_figures(runs, staging, published, fig5_band, problems)
        throughput = problems.guard("the throughput figure",
                                    lambda: figures.throughput_figure(records, staging / "throughput.png"), None)
        sr_grid, style_grid = _image_grids(runs, staging, problems)
        html_tables = _html_tables(runs, published, claims, summary, records, problems)
        env_tables = _environment_tables(runs, problems)
        context = {
            "title": "Perceptual losses (Johnson et al. 2016): reproduction report",
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "runs": [_run_context(r) for r in runs],
            "any_deviation": any(not r.paper_protocol for r in runs),
            "confidence_note": CONFIDENCE_NOTE,
            "tables": html_tables, "sr_sections": sr_sections, "sr_grids": sr_grid, "style_grids": style_grid,
            "run_figures": run_figures, "throughput": f"{ASSETS}/throughput.png" if throughput else None,
            "bench_sources": [str(p) for p in bench_paths], "bench_notes": bench_notes,
            "env_tables": env_tables, "problems": problems.items,
            "has_sr": any("sr" in r.tasks for r in runs), "has_style": any("style" in r.tasks for r in runs),
            "claim_rows": claims[claims["verdict_class"].isin(claims_mod.JUDGED)].to_dict("records"),
            "n_claim_rows_left_out": int((~claims["verdict_class"].isin(claims_mod.JUDGED)).sum()),
            "summary_rows": summary.to_dict("records"),
            "misprint_rows": published[published["confidence"] == "misprint corrected"].to_dict("records"),
            "verdicts": claims_mod.VERDICTS, "md_sr_rows": _md_sr_rows(runs, sr_sections),
            "md_sr_runs": [r.header for r in runs if "sr" in r.tasks],
            "metric_label": metric_label,
            "section_verdicts": verdicts, "noise_note": noise_note,
            "headline_main": _headline_context(head[~head["example"]] if not head.empty else head),
            "headline_examples": _headline_context(head[head["example"]] if not head.empty else head),
        }
        env = _environment()
        html = env.get_template("report.html").render(**context)
        markdown = env.get_template("report.md").render(**context)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_assets(staging, final_assets)
    atomic_write_text(out_dir / "report.md", markdown)
    return atomic_write_text(out_dir / "report.html", html)


def main(argv: list[str] | None = None) -> int:
    """CLI: build the report from run folders (default: every run folder found under runs/ and results/)."""
    parser = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR",
                        help="run folders (results.csv, run.json, logs/, traces/, images/); default: every folder "
                             "holding run.json or results.csv under runs/ and results/")
    parser.add_argument("--bench", nargs="*", type=Path, default=None, metavar="JSON",
                        help=f"pytest-benchmark JSON files (default: {DEFAULT_BENCH_GLOB}; give --bench with no "
                             "file for none)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    run_dirs = args.runs or discover_runs()
    if not run_dirs:
        parser.error("no run folders given and none found under runs/ or results/: pass RUN_DIR ...")
    path = build_report(run_dirs, args.bench, args.out)
    print(f"report: {path}")
    print(f"summary: {path.with_name('report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
