"""Read pytest-benchmark's JSON (`pytest --benchmark-json` / `--benchmark-autosave`) into one row per benchmark.

What is read from each benchmark: `name`, `group`, `params`, `stats.median` (seconds), `stats.rounds`, and from
`extra_info` (the benchmarks' own fields): the image side in pixels (`image_size`, `size`, `resolution`, `height`,
or a size-like parameter), throughput (`pixels_per_s`, `pixels_per_second`, or `mpix_per_s` in megapixels; otherwise
batch x size^2 / median), `gflops` (or `gflop_per_s`, `achieved_gflops`), `device` / `device_name` and `dtype`.
An unreadable file becomes a note, not an error.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

SIZE_KEYS = ("image_size", "size", "resolution", "height", "side", "hw", "res", "px")
PPS_KEYS = ("pixels_per_s", "pixels_per_second", "pixel_per_s", "px_per_s")
MPPS_KEYS = ("mpix_per_s", "megapixels_per_s", "mpixels_per_s")
GFLOPS_KEYS = ("gflops", "gflop_per_s", "gflops_per_s", "achieved_gflops", "achieved_gflop_per_s")
RECORD_COLUMNS = ("source", "name", "base", "group", "device", "dtype", "size", "median_s", "pixels_per_s", "gflops",
                  "rounds", "series", "path", "variant", "batch")


def _as_size(value: Any) -> float | None:
    """512, "512", "512x512", [512, 512] -> 512.0; anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, (list, tuple)) and value:
        return _as_size(value[0])
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)(?:\s*[x\u00d7]\s*\d+)?\s*(?:px)?\s*", value)
        return float(m.group(1)) if m else None
    return None


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def records_from(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """One record per benchmark of a pytest-benchmark JSON document."""
    machine = doc.get("machine_info") or {}
    fallback_device = (machine.get("cpu") or {}).get("brand_raw") or machine.get("processor") or "unknown"
    out = []
    for bench in doc.get("benchmarks") or []:
        extra = bench.get("extra_info") or {}
        params = bench.get("params") or {}
        stats = bench.get("stats") or {}
        size = _as_size(_first(extra, SIZE_KEYS))
        size_param = None
        if size is None:
            for key in SIZE_KEYS:
                if key in params and _as_size(params[key]) is not None:
                    size, size_param = _as_size(params[key]), key
                    break
        else:
            size_param = next((k for k in SIZE_KEYS if k in params), None)
        median = _number(stats.get("median"))
        pps = _number(_first(extra, PPS_KEYS))
        if math.isnan(pps) and _first(extra, MPPS_KEYS) is not None:
            pps = _number(_first(extra, MPPS_KEYS)) * 1e6
        if math.isnan(pps) and size and median > 0:
            pps = _number(extra.get("batch", 1)) * size * size / median
        name = str(bench.get("name") or bench.get("fullname") or "benchmark")
        base = name.split("[", 1)[0]
        other = [f"{k}={v}" for k, v in params.items() if k != size_param and k not in SIZE_KEYS]
        path = str(params.get("path") or extra.get("path") or "")
        variant = " ".join(f"{k}={v}" for k, v in params.items()
                           if k != size_param and k not in SIZE_KEYS and k != "path")
        device = str(extra.get("device_name") or extra.get("device") or fallback_device)
        dtype = str(extra.get("dtype") or "")
        series = " ".join([base] + other) + f" ({device}{', ' + dtype if dtype else ''})"
        out.append({"source": source, "name": name, "base": base, "group": str(bench.get("group") or ""),
                    "device": device, "dtype": dtype, "size": size, "median_s": median, "pixels_per_s": pps,
                    "gflops": _number(_first(extra, GFLOPS_KEYS)), "rounds": stats.get("rounds", ""),
                    "series": series, "path": path, "variant": variant, "batch": _number(extra.get("batch", 1))})
    return out


def load_bench(paths: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """All benchmark records of the given JSON files, and a note per file that could not be read."""
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in paths:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            notes.append(f"{path}: not readable as benchmark JSON ({exc})")
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
            notes.append(f"{path}: not pytest-benchmark JSON (no 'benchmarks' list)")
            continue
        found = records_from(doc, path.stem)
        if not found:
            notes.append(f"{path}: holds no benchmarks")
        records.extend(found)
    return pd.DataFrame(records, columns=list(RECORD_COLUMNS)), notes
