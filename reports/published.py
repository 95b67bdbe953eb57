"""Later papers' standard-protocol tables (and, superseded, numbers once recalled), as shipped in published.csv.

`reports/published.csv` is a copy of `../shared/reference/published.csv` shipped as package data, so a report can be
built on a machine without the shared folder. Its `confidence` column is either `published` (copied from a table of
a later paper) or `recalled` (a figure as remembered, not checked against a printed table). The report reads it
through `reports.references`, which keeps its `published` rows as a second source beside the paper's own printed
table (johnson2016.csv) and drops every `recalled` row the paper's table supersedes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

COLUMNS = ("table", "task", "scale", "dataset", "method", "metric", "value", "confidence", "source")
CONFIDENCES = ("published", "recalled")
CONFIDENCE_NOTE = {
    "published": "copied from a later paper's table",
    "recalled": "the paper's own figure as recalled, not checked against the PDF: a target, not ground truth",
}


@dataclass(frozen=True)
class PaperValue:
    """One published number with its provenance, as the claims table shows it."""

    value: float
    confidence: str
    source: str


def packaged_path() -> Path:
    """Where the shipped copy lives (inside the installed `reports` package)."""
    return Path(str(resources.files("reports") / "published.csv"))


def load_published(path: Path | None = None) -> pd.DataFrame:
    """Read the published numbers; keys stay strings (scale "4", dataset "256") to match results.csv as read here."""
    path = Path(path) if path is not None else packaged_path()
    if not path.is_file():
        raise FileNotFoundError(f"published numbers not found at {path}: reinstall the package or pass a CSV path")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; expected {', '.join(COLUMNS)}")
    bad = sorted(set(df["confidence"]) - set(CONFIDENCES))
    if bad:
        raise ValueError(f"{path}: unknown confidence values {bad}; use one of {CONFIDENCES}")
    df = df.copy()
    df["value"] = pd.to_numeric(df["value"], errors="raise").astype(float)
    return df


def paper_value(published: pd.DataFrame, *, task: str, dataset: str, method: str, metric: str,
                scale: str = "") -> PaperValue | None:
    """The published number for one cell, or None when the paper (and the reference tables) give none."""
    sel = published[(published["task"] == task) & (published["scale"] == str(scale))
                    & (published["dataset"] == str(dataset)) & (published["method"] == method)
                    & (published["metric"] == metric)]
    if sel.empty:
        return None
    row = sel.iloc[0]
    value = float(row["value"])
    if math.isnan(value):
        return None
    return PaperValue(value=value, confidence=str(row["confidence"]), source=str(row["source"]))
