"""The numbers every claim is checked against, each with where it is printed: one validated table.

Two sources, kept apart by the `origin` column:

* `paper`: `reports/johnson2016.csv`, a verbatim copy of `../shared/reference/johnson2016.csv`: every number the
  paper (ECCV 2016 camera-ready) prints for its claims, with the page/figure it is printed in. Column `value` is what
  the suite compares against, `printed` the figure as printed; where they differ (three misprints) `note` says why.
  Its x4 rows are the standard evaluation protocol; its x8 rows the paper's own x8 protocol (`johnson2016`).
* `later paper`: the `published` rows of `reports/published.csv` (ESRGAN's table, standard protocol: bicubic and the
  released SRCNN at x4). A `recalled` row of that file is kept only where the paper prints no number for the same
  cell; today the paper's own table supersedes every one of them.

Loading validates every row of the paper's table (columns, numbers, known table/task/scale/metric) and refuses a
malformed one with a message that names the file, the line and the field.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from reports.published import load_published

PAPER_FILE = "johnson2016.csv"
PAPER_COLUMNS = ("table", "task", "scale", "dataset", "method", "image", "metric", "value", "printed", "source",
                 "note")
# table -> (task, scale, metrics): the only tables the paper's claims use
PAPER_TABLES = {
    "sr_x4": ("sr", "4", ("psnr_y", "ssim_y")),
    "sr_x8": ("sr", "8", ("psnr_y", "ssim_y")),
    "speed": ("style", "", ("seconds", "ratio")),
    "fig5": ("style", "", ("iters_to_match_low", "iters_to_match_high")),
}
# The evaluation protocol behind each SR table of the paper (johnson2016.md): x4 standard, x8 the paper's own.
PAPER_PROTOCOL = {"4": "standard", "8": "johnson2016"}
PAPER_CITATION = "Johnson et al. 2016"
COLUMNS = ("task", "scale", "dataset", "method", "image", "metric", "value", "printed", "confidence", "origin",
           "protocol", "source", "note")
CONFIDENCES = ("printed", "misprint corrected", "published", "recalled")
CONFIDENCE_NOTE = {
    "printed": "the paper's own number as printed (ECCV 2016 camera-ready, read from the text)",
    "misprint corrected": "the paper prints a misprint here; the value compared against and the reason are given",
    "published": "copied from a later paper's table (standard protocol): a second source, labelled as such",
    "recalled": "a figure as remembered, not checked against a printed table: a target, not ground truth",
}
MEAN = "__mean__"


class ReferenceTableError(ValueError):
    """A row of a reference table that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class Reference:
    """One number a claim is checked against, with its provenance."""

    value: float
    confidence: str
    source: str
    origin: str = "paper"
    printed: str = ""
    note: str = ""
    protocol: str = ""

    @property
    def misprint(self) -> bool:
        return self.confidence == "misprint corrected"

    @property
    def label(self) -> str:
        """The source as a claims table names it."""
        if self.origin == "paper":
            return f"{PAPER_CITATION}: {self.source}"
        return f"later paper ({self.protocol or 'standard'} protocol): {self.source}"


def packaged_paper_path() -> Path:
    """Where the shipped copy of the paper's table lives (inside the installed `reports` package)."""
    return Path(str(resources.files("reports") / PAPER_FILE))


def _number(text: str, path: Path, line: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReferenceTableError(f"{path}, line {line}, field {field!r}: {text!r} is not a number; "
                                  f"write the value as printed digits, e.g. 28.43") from None
    if not math.isfinite(value):
        raise ReferenceTableError(f"{path}, line {line}, field {field!r}: {text!r} is not a finite number")
    return value


def _check_row(row: dict[str, str], path: Path, line: int) -> None:
    for field in ("table", "task", "dataset", "method", "image", "metric", "value", "printed", "source"):
        if not row[field].strip():
            raise ReferenceTableError(f"{path}, line {line}, field {field!r}: empty; every row needs it")
    table = row["table"]
    if table not in PAPER_TABLES:
        raise ReferenceTableError(f"{path}, line {line}, field 'table': unknown table {table!r}; "
                                  f"use one of {', '.join(PAPER_TABLES)}")
    task, scale, metrics = PAPER_TABLES[table]
    if row["task"] != task:
        raise ReferenceTableError(f"{path}, line {line}, field 'task': {row['task']!r} in table {table!r}; "
                                  f"expected {task!r}")
    if row["scale"].strip() != scale:
        raise ReferenceTableError(f"{path}, line {line}, field 'scale': {row['scale']!r} in table {table!r}; "
                                  f"expected {scale!r}")
    if row["metric"] not in metrics:
        raise ReferenceTableError(f"{path}, line {line}, field 'metric': unknown metric {row['metric']!r} for "
                                  f"table {table!r}; use one of {', '.join(metrics)}")
    value = _number(row["value"], path, line, "value")
    printed = _number(row["printed"], path, line, "printed")
    if value != printed and not row["note"].strip():
        raise ReferenceTableError(f"{path}, line {line}, field 'note': value {row['value']} differs from printed "
                                  f"{row['printed']} but no note says why")


def load_paper_table(path: Path | None = None) -> pd.DataFrame:
    """The paper's own numbers (johnson2016.csv), every row validated; keys stay strings like results.csv."""
    path = Path(path) if path is not None else packaged_paper_path()
    if not path.is_file():
        raise FileNotFoundError(f"the paper's table not found at {path}: reinstall the package or pass a CSV path")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ReferenceTableError(f"{path}, line 1: the file is empty; expected the header "
                                      f"{','.join(PAPER_COLUMNS)}")
        if tuple(header) != PAPER_COLUMNS:
            raise ReferenceTableError(f"{path}, line 1, header: {','.join(header)!r}; expected "
                                      f"{','.join(PAPER_COLUMNS)}")
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(PAPER_COLUMNS):
                raise ReferenceTableError(f"{path}, line {line}: {len(fields)} fields, expected {len(PAPER_COLUMNS)} "
                                          f"({','.join(PAPER_COLUMNS)}); quote a field that holds a comma")
            row = dict(zip(PAPER_COLUMNS, fields))
            _check_row(row, path, line)
            rows.append(row)
    if not rows:
        raise ReferenceTableError(f"{path}: no rows after the header")
    return pd.DataFrame(rows, columns=list(PAPER_COLUMNS))


def _paper_frame(paper: pd.DataFrame) -> pd.DataFrame:
    out = paper.copy()
    out["value"] = out["value"].astype(float)
    out["confidence"] = [("printed" if float(v) == float(p) else "misprint corrected")
                         for v, p in zip(paper["value"], paper["printed"])]
    out["origin"] = "paper"
    out["protocol"] = [PAPER_PROTOCOL.get(s, "") if t == "sr" else "" for t, s in zip(out["task"], out["scale"])]
    return out[list(COLUMNS)]


def _later_frame(later: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """published.csv's rows as a second source: every `published` row; a `recalled` one only where the paper's
    table has no number for the same cell."""
    printed_cells = {(r.task, r.scale, r.dataset, r.method, r.metric) for r in paper.itertuples()
                     if r.image == MEAN}
    keep = [(c == "published") or (c == "recalled" and (t, s, d, m, k) not in printed_cells)
            for c, t, s, d, m, k in zip(later["confidence"], later["task"], later["scale"], later["dataset"],
                                        later["method"], later["metric"])]
    out = later[keep].copy()
    out["image"] = MEAN
    out["printed"] = out["value"].map(lambda v: f"{v:g}")
    out["origin"] = "later paper"
    out["protocol"] = ["standard" if t == "sr" else "" for t in out["task"]]
    out["note"] = ""
    return out[list(COLUMNS)]


def load_references(paper_path: Path | None = None, later_path: Path | None = None) -> pd.DataFrame:
    """The paper's table and the later papers' standard-protocol rows, one frame (`origin` tells them apart)."""
    paper = load_paper_table(paper_path)
    later = load_published(later_path)
    frame = pd.concat([_paper_frame(paper), _later_frame(later, paper)], ignore_index=True)
    return frame


def _reference(row: pd.Series) -> Reference:
    return Reference(value=float(row["value"]), confidence=str(row["confidence"]), source=str(row["source"]),
                     origin=str(row["origin"]), printed=str(row["printed"]), note=str(row["note"]),
                     protocol=str(row["protocol"]))


def references_for(refs: pd.DataFrame, *, task: str, dataset: str, method: str, metric: str, scale: str = "",
                   image: str = MEAN) -> list[Reference]:
    """Every reference number for one cell, the paper's first."""
    sel = refs[(refs["task"] == task) & (refs["scale"] == str(scale)) & (refs["dataset"] == str(dataset))
               & (refs["method"] == method) & (refs["metric"] == metric) & (refs["image"] == image)]
    sel = sel.sort_values("origin", key=lambda s: s != "paper", kind="stable")
    return [_reference(row) for _, row in sel.iterrows()]


def reference(refs: pd.DataFrame, **cell: str) -> Reference | None:
    """The preferred reference for one cell (the paper's own when it prints one), or None."""
    found = references_for(refs, **cell)
    return found[0] if found else None


def misprints(refs: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows whose printed figure is not the value compared against, with the reason."""
    return refs[refs["confidence"] == "misprint corrected"].reset_index(drop=True)


__all__ = [
    "CONFIDENCES",
    "CONFIDENCE_NOTE",
    "PAPER_PROTOCOL",
    "Reference",
    "ReferenceTableError",
    "load_paper_table",
    "load_references",
    "misprints",
    "packaged_paper_path",
    "reference",
    "references_for",
]
