"""The benchmark-based GPU check: fast-path correctness on CUDA, the benchmarks, 500 L-BFGS iterations at 1024 px
(with the L-BFGS the device's config names), and each target measured against its number.

Superseded for the one device call by bench/gpu/protocol.py; kept for the pytest-benchmark sweep
(`python -m bench.gpu.check --steps sweep`) and for `--summarize` of a benchmark JSON. Every step runs in its own
process with a time limit from one budget, so nothing hangs. Steps and output: docs/gpu-check.md.

    python -m bench.gpu.check --device cpu --quick     # rehearsal here: a tiny subset of every step
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

from bench.gpu.protocol import gpu_name, nvidia_smi
from bench.run.options import add_device_option  # the one --device declaration
from data.files import atomic_write_text

REPO = Path(__file__).resolve().parents[2]

# (target name, benchmark group, paths whose best median counts, target seconds, what it scales to)
TARGETS: list[dict[str, Any]] = [
    {"name": "style forward 1024x1024", "group": "style_forward_1024", "target_s": 3e-3, "anchor_s": 9.5e-3,
     "nodeid": "test_style_forward[1024-"},
    {"name": "style forward 2048x2048", "group": "style_forward_2048", "target_s": 12e-3, "anchor_s": 36e-3,
     "nodeid": "test_style_forward[2048-"},
    {"name": "style training step (4x256x256, VGG-16 loss)", "group": "train_step_style", "target_s": 6e-3,
     "anchor_s": 18.4e-3, "iterations": 40_000, "iterations_target_s": 300, "nodeid": "test_train_step[style-"},
    {"name": "SR x4 training step (4x72->288, l_feat)", "group": "train_step_sr_x4", "target_s": 4.5e-3,
     "anchor_s": 14.4e-3, "iterations": 200_000, "iterations_target_s": 900, "nodeid": "test_train_step[sr_x4-"},
]
GATYS_TARGET_S = 15.0  # 500 L-BFGS iterations at 1024 (anchor ~22 s)
NOT_SLOWER = 0.95  # reference/fast at or above this counts as "not slower" (timing spread on a shared machine)

INF, GATYS, TRAIN = "bench/benchmarks/test_bench_inference.py", "bench/benchmarks/test_bench_gatys.py", "bench/benchmarks/test_bench_train.py"
TARGET_IDS = [f"{INF}::test_style_forward[{s}-{p}]" for s in (1024, 2048) for p in ("reference", "fast")] + \
    [f"{TRAIN}::test_train_step[{n}-{p}]" for n in ("style", "sr_x4") for p in ("reference", "fast")]
QUICK_TARGET_IDS = [f"{INF}::test_style_forward[256-{p}]" for p in ("reference", "fast")] + \
    [f"{TRAIN}::test_train_step[srcnn-{p}]" for p in ("reference", "fast")]
QUICK_REST = ["-k", "test_srcnn_forward"]
QUICK_TESTS = ["-k", "config or batched or padded or fast_objective"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def _log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Budget:
    """Seconds left of the overall budget; each step gets min(its own limit, what is left - reserve)."""

    def __init__(self, total_s: float, reserve_s: float = 10.0):
        self.t0, self.total, self.reserve = time.monotonic(), total_s, reserve_s

    def left(self) -> float:
        return self.total - (time.monotonic() - self.t0)

    def for_step(self, limit_s: float) -> float:
        return max(0.0, min(limit_s, self.left() - self.reserve))


def _run(cmd: list[str], timeout_s: float, env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Run a step's process with a hard time limit; its output goes to our stdout and to `log`. On timeout the
    step's own process group (started here, in a new session) is killed, nothing else."""
    if timeout_s < 5:
        return {"status": "skipped", "reason": "no budget left", "seconds": 0.0, "cmd": cmd}
    _log(f"$ {' '.join(cmd)}   (limit {timeout_s:.0f} s)")
    t0 = time.monotonic()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log or os.devnull, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                sink.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
    seconds = time.monotonic() - t0
    status = "timeout" if timed_out else ("ok" if proc.returncode == 0 else f"exit {proc.returncode}")
    _log(f"step finished: {status} after {seconds:.0f} s")
    return {"status": status, "seconds": round(seconds, 1), "cmd": cmd, "returncode": proc.returncode}


# ----------------------------------------------------------------------------------------------- the gatys step


def gatys500(device: str, size: int, iterations: int, ref_budget_s: float, out: Path) -> None:
    """500 L-BFGS iterations of baselines.gatys.stylise at `size` on the fast objective (after a 5-iteration warm-up),
    then the reference objective for as many iterations (500, else 100, else 20) as fit in `ref_budget_s` by the
    measured fast rate x the expected reference slowdown. Writes a JSON record to `out`."""
    import torch

    from baselines.gatys import GatysConfig, stylise
    from bench.benchmarks.runner import rand
    from perceptual.fast import best_config, fast_objective
    from perceptual.losses import PerceptualObjective
    from perceptual.vgg import LossNetwork

    dev = torch.device(device)
    torch.manual_seed(0)
    objective = PerceptualObjective(LossNetwork(weights="random", device=dev), rand(1, 3, 256, 256, device=dev, seed=1))
    content = rand(1, 3, size, size, device=dev, seed=2)
    cfg = best_config(dev, "gatys")
    fast = fast_objective(objective, cfg)
    lbfgs: Literal["torch", "device"] = "device" if cfg.device_lbfgs else "torch"  # the L-BFGS the config names, and the record says which ran
    record: dict[str, Any] = {"device": device, "size": size, "iterations": iterations,
                              "config": f"{cfg.label()} ({lbfgs} L-BFGS)", "lbfgs": lbfgs, "vgg_weights": "random"}
    stylise(fast, content, GatysConfig(iterations=5, lbfgs=lbfgs))  # warm-up: cuDNN autotuning, allocator growth
    run = stylise(fast, content, GatysConfig(iterations=iterations, lbfgs=lbfgs))
    record["fast"] = {"seconds": run.trace[-1]["wall_time_s"], "final_total": run.final["total"],
                      "evaluations": run.evaluations}
    _log(f"gatys fast: {iterations} iterations at {size}: {record['fast']['seconds']:.2f} s")
    atomic_write_text(out, json.dumps(record, indent=1))  # keep what we have if the reference runs out of time
    per_iter = record["fast"]["seconds"] / max(iterations, 1)
    n_ref = next((n for n in (iterations, 100, 20) if n * per_iter * 3 <= ref_budget_s), 0)
    if n_ref:
        stylise(objective, content, GatysConfig(iterations=5))
        ref = stylise(objective, content, GatysConfig(iterations=n_ref))
        record["reference"] = {"iterations": n_ref, "seconds": ref.trace[-1]["wall_time_s"],
                               "final_total": ref.final["total"],
                               "seconds_per_500": ref.trace[-1]["wall_time_s"] * 500 / n_ref}
        if n_ref == iterations:
            record["final_total_rel_diff"] = abs(run.final["total"] - ref.final["total"]) / abs(ref.final["total"])
        _log(f"gatys reference: {n_ref} iterations: {record['reference']['seconds']:.2f} s")
    atomic_write_text(out, json.dumps(record, indent=1))


# ------------------------------------------------------------------------------------------------ merge/summary


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def merge(parts: list[Path]) -> dict:
    """One pytest-benchmark document from the parts that exist (benchmarks and skipped lists concatenated)."""
    docs = [d for d in (_load(p) for p in parts) if d]
    if not docs:
        return {"benchmarks": [], "skipped": [], "machine_info": {}, "commit_info": {}}
    base = dict(docs[0])
    base["benchmarks"] = [b for d in docs for b in d.get("benchmarks", [])]
    base["skipped"] = [s for d in docs for s in d.get("skipped", [])]
    return base


def _medians(doc: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for b in doc.get("benchmarks", []):
        path = (b.get("extra_info") or {}).get("path") or (b.get("params") or {}).get("path")
        out.setdefault(b.get("group") or "", {})[str(path)] = float(b["stats"]["median"])
    return out


def _doc_device(doc: dict) -> str:
    meta = doc.get("perceptual_bench") or {}
    if meta.get("device"):
        return str(meta["device"])
    devices = {(b.get("extra_info") or {}).get("device") for b in doc.get("benchmarks", [])}
    return "cuda" if any(str(d).startswith("cuda") for d in devices) else "cpu"


def targets(doc: dict, gatys: dict | None) -> list[dict[str, Any]]:
    """Each issue target: measured (fast path, and the best sweep variant), reference, verdict. The time targets are
    for one H100; on another device they are reported as measured with the verdict 'n/a (not a GPU run)'."""
    med = _medians(doc)
    on_gpu = _doc_device(doc).startswith("cuda")
    rows = []
    for t in TARGETS:
        paths = med.get(t["group"], {})
        fast = paths.get("fast")
        variants = {k: v for k, v in paths.items() if k != "reference"}
        best_path = min(variants, key=lambda k: variants[k]) if variants else None
        row = {"target": t["name"], "group": t["group"], "target_s": t["target_s"], "anchor_s": t["anchor_s"],
               "reference_s": paths.get("reference"), "fast_s": fast, "best_path": best_path,
               "best_s": variants.get(best_path) if best_path else None}
        if row["best_s"] is None:
            reasons = sorted({s["reason"] for s in doc.get("skipped", []) if t["nodeid"] in s["nodeid"]})
            row.update(verdict="not measured", note="; ".join(reasons) or "no benchmark ran")
        else:
            row["verdict"] = ("n/a (not a GPU run)" if not on_gpu else
                              "met" if row["best_s"] <= t["target_s"] else "missed")
            if "iterations" in t:
                row["iterations_s"] = row["best_s"] * t["iterations"]
                row["note"] = (f"{t['iterations']} iterations: {row['iterations_s'] / 60:.1f} min "
                               f"(target {t['iterations_target_s'] / 60:.0f} min)")
        rows.append(row)
    g = {"target": "Gatys 500 L-BFGS iterations at 1024", "group": "gatys500", "target_s": GATYS_TARGET_S,
         "anchor_s": 22.0}
    if gatys and "fast" in gatys and gatys.get("size") == 1024 and gatys.get("iterations") == 500:
        g.update(fast_s=gatys["fast"]["seconds"], best_s=gatys["fast"]["seconds"], best_path="fast",
                 reference_s=(gatys.get("reference") or {}).get("seconds_per_500"),
                 verdict=("n/a (not a GPU run)" if not str(gatys.get("device", "")).startswith("cuda") else
                          "met" if gatys["fast"]["seconds"] <= GATYS_TARGET_S else "missed"))
        if "final_total_rel_diff" in gatys:
            g["note"] = f"final objective fast vs reference: rel. diff {gatys['final_total_rel_diff']:.2e}"
        elif gatys.get("reference"):
            g["note"] = f"reference extrapolated from {gatys['reference']['iterations']} iterations"
    else:
        g.update(verdict="not measured", note="gatys500 step did not run at 1024 x 500" if not gatys else
                 f"rehearsal size {gatys.get('size')} x {gatys.get('iterations')} iterations: "
                 f"{(gatys.get('fast') or {}).get('seconds', float('nan')):.2f} s")
    rows.append(g)
    slower = speedups(doc)
    spread = _spreads(doc)
    bad = {g: r for g, r in slower.items() if r < 1 - max(1 - NOT_SLOWER, spread.get(g, 0.0))}
    rows.append({"target": "fast path not slower than reference (every case of this run)", "group": "all",
                 "verdict": "not measured" if not slower else "missed" if bad else "met",
                 "note": ", ".join(f"{grp} {r:.2f}x" for grp, r in slower.items()) +
                 f" (reference/fast median time, from interleaved rounds where recorded; slower means below 1 by "
                 f"more than max({1 - NOT_SLOWER:.2f}, the rounds' relative IQR))" +
                 (f"; slower: {', '.join(bad)}" if bad else "")})
    return rows


def _spreads(doc: dict) -> dict[str, float]:
    """Per group: the larger relative interquartile range (IQR / median) of its benchmarks' rounds."""
    out: dict[str, float] = {}
    for b in doc.get("benchmarks", []):
        st = b.get("stats") or {}
        if st.get("median"):
            out[b["group"]] = max(out.get(b["group"], 0.0), float(st.get("iqr", 0.0)) / float(st["median"]))
    return out


def speedups(doc: dict) -> dict[str, float]:
    """Per group: reference / fast median time, from the interleaved rounds (speedup_paired) when the fast case
    recorded them, else from the two benchmarks' medians."""
    med = _medians(doc)
    out = {}
    for b in doc.get("benchmarks", []):
        extra = b.get("extra_info") or {}
        if extra.get("path") == "fast" and extra.get("speedup_paired"):
            out[b["group"]] = float(extra["speedup_paired"])
    for grp, p in med.items():
        if grp not in out and "reference" in p and "fast" in p:
            out[grp] = p["reference"] / p["fast"]
    return dict(sorted(out.items()))


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.2f} s"


def summary_md(doc: dict, rows: list[dict], info: dict) -> str:
    lines = [f"# Benchmark targets: {info.get('device_name')} ({info.get('date')})", "",
             f"torch {info.get('torch')}, commit {info.get('commit')}"
             + (f", budget {info['budget_s']:.0f} s, wall {info.get('wall_s') or 0:.0f} s" if info.get("budget_s") else ""),
             "",
             "| target | target | measured (best fast variant) | fast | reference | anchor (DESIGN.md 7) | verdict | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = f"{_fmt_s(r.get('best_s'))} ({r.get('best_path')})" if r.get("best_s") is not None else "-"
        lines.append(f"| {r['target']} | {_fmt_s(r.get('target_s'))} | {best} | {_fmt_s(r.get('fast_s'))} | "
                     f"{_fmt_s(r.get('reference_s'))} | {_fmt_s(r.get('anchor_s'))} | {r['verdict']} | "
                     f"{r.get('note', '')} |")
    if info.get("steps"):
        lines += ["", "## Steps", "", "| step | status | seconds |", "|---|---|---|"]
        lines += [f"| {name} | {s['status']} | {s.get('seconds', 0)} |" for name, s in info["steps"].items()]
    tests = info.get("tests")
    if tests:
        lines += ["", f"## tests/test_fast_path.py on {info.get('device')}: {tests}"]
    if doc.get("skipped"):
        lines += ["", "## Skipped cases", ""] + [f"- {s['nodeid']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"


def _junit_counts(path: Path) -> dict[str, Any] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    counts: dict[str, Any] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    problems = [(c, c.find("failure") if c.find("failure") is not None else c.find("error"))
                for c in suite.iter("testcase")]
    counts["failed"] = [f"{c.get('name')}: {p.get('message', '')[:200]}" for c, p in problems if p is not None]
    return counts


# ------------------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    """The command line: the steps and their budget, `--summarize`, and the gatys500 process's internal options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_option(p, help="cuda (default when available) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny subset of every step (CPU rehearsal)")
    p.add_argument("--budget-s", type=float, default=420.0, help="overall seconds for all steps (default 420)")
    p.add_argument("--steps", default="targets,gatys500,tests,rest,sweep", help="comma-separated subset, in order")
    p.add_argument("--out", type=Path, default=REPO / "results" / "bench", help="where the JSON and summary go")
    p.add_argument("--case-timeout-s", type=float, default=150.0, help="per benchmark case (build+warm-up+timing)")
    p.add_argument("--summarize", type=Path, default=None, metavar="JSON",
                   help="print the targets table of an existing benchmark JSON (e.g. the CPU run) and exit")
    p.add_argument("--gatys-run", action="store_true", help=argparse.SUPPRESS)  # internal: the gatys500 process
    p.add_argument("--gatys-size", type=int, default=1024, help=argparse.SUPPRESS)
    p.add_argument("--gatys-iterations", type=int, default=500, help=argparse.SUPPRESS)
    p.add_argument("--gatys-ref-budget-s", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--gatys-json", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def _print_summary(doc: dict) -> None:
    """Print the targets table of a benchmark JSON already written (`--summarize`)."""
    rows = targets(doc, doc.get("gatys500"))
    meta = doc.get("perceptual_bench") or {}
    print(summary_md(doc, rows, {"device_name": meta.get("device_name"), "date": doc.get("datetime"),
                                 "torch": meta.get("torch"), "commit": (doc.get("commit_info") or {}).get("id")}))


def _run_steps(steps: list[str], args: argparse.Namespace, device: str, work: Path, stem: str,
               info: dict[str, Any], budget: Budget) -> Path:
    """Run the steps in order, each in its own process with its share of the budget, recording each one's result in
    `info["steps"]`; the JSON and its summary are rewritten after every step. Returns the JSON's path."""
    py = [sys.executable]
    bench_common = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only", f"--bench-device={device}",
                    f"--bench-case-timeout={args.case_timeout_s:g}", "--benchmark-columns=min,median,max,rounds",
                    "-o", "addopts=-ra"]
    parts: list[Path] = []
    gatys_json = work / "gatys500.json"
    for step in steps:
        part = work / f"{step}.json"
        log = work / f"{step}.log"
        if step == "targets":
            ids = QUICK_TARGET_IDS if args.quick else TARGET_IDS
            res = _run(py + bench_common + ["--bench-heavy", f"--benchmark-json={part}", *ids],
                       budget.for_step(240), log=log)
            parts.append(part)
        elif step == "gatys500":
            size, iters = (64, 5) if args.quick else (1024, 500)
            limit = budget.for_step(150)
            res = _run(py + ["-m", "bench.gpu.check", "--gatys-run", f"--device={device}", f"--gatys-size={size}",
                             f"--gatys-iterations={iters}", f"--gatys-ref-budget-s={max(0.0, limit - 60):g}",
                             f"--gatys-json={gatys_json}"], limit, log=log)
        elif step == "tests":
            junit = work / "tests.xml"
            env = {"PERCEPTUAL_TEST_DEVICE": device, "PERCEPTUAL_TEST_COMPILE": "0" if args.quick else "1"}
            res = _run(py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                             f"--junitxml={junit}", "tests/test_fast_path.py", *(QUICK_TESTS if args.quick else [])],
                       budget.for_step(200), env=env, log=log)
            info["tests"] = _junit_counts(junit)
        elif step == "rest":
            if args.quick:
                extra = QUICK_REST
            else:
                extra = ["--bench-heavy", *[f"--deselect={i}" for i in TARGET_IDS]]
            res = _run(py + bench_common + [f"--benchmark-json={part}", *extra, "bench"], budget.for_step(600),
                       log=log)
            parts.append(part)
        else:  # sweep
            if device != "cuda":
                res = {"status": "skipped", "reason": "the sweep is for CUDA", "seconds": 0.0}
            else:
                res = _run(py + bench_common + ["--bench-heavy", "--bench-sweep", "-k", "fast_",
                                                f"--benchmark-json={part}", "bench"], budget.for_step(600), log=log)
                parts.append(part)
        info["steps"][step] = res
        _write(args.out, stem, parts, gatys_json, info, budget)  # after every step: a later failure keeps these
    return _write(args.out, stem, parts, gatys_json, info, budget)


def main(argv: list[str] | None = None) -> int:
    """Run the GPU check's steps (or `--summarize` a benchmark JSON); 0 when every step ran ok or was skipped."""
    p = _parser()
    args = p.parse_args(argv)

    if args.summarize is not None:
        doc = _load(args.summarize)
        if doc is None:
            p.error(f"--summarize: cannot read {args.summarize} as JSON")
        _print_summary(doc)
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch.cuda.is_available() is False; use --device cpu --quick for the "
              "rehearsal", file=sys.stderr)
        return 2
    if args.gatys_run:
        gatys500(device, args.gatys_size, args.gatys_iterations, args.gatys_ref_budget_s, args.gatys_json)
        return 0
    try:
        import resize_right  # noqa: F401 - data.resize (SRCNN, bicubic) needs it; missing on the GPU image
    except ImportError:
        print("gpu_check: the package resize_right is missing: carry .whl (see scripts/gpu_check.sh)", file=sys.stderr)
        return 2

    budget = Budget(args.budget_s)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - {"targets", "gatys500", "tests", "rest", "sweep"}
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}")
    date = time.strftime("%Y-%m-%d")
    gpu = gpu_name(nvidia_smi()) if device == "cuda" else "cpu"  # no CUDA context here: the steps need the device
    name = "cpu" if device == "cpu" else _slug(gpu)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{date}" + ("_quick" if args.quick else "")
    info: dict[str, Any] = {"device": device, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
                            "budget_s": args.budget_s, "quick": args.quick, "steps": {},
                            "device_name": gpu,
                            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                                     capture_output=True, text=True, check=False).stdout.strip() or "unknown"}
    _log(f"{info['device_name']}, torch {torch.__version__}, budget {args.budget_s:.0f} s, steps {steps}")
    if device == "cuda":
        subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu",
                        "--format=csv"], check=False)

    path = _run_steps(steps, args, device, work, stem, info, budget)
    print(path.with_name(path.stem + "_summary.md").read_text(encoding="utf-8"))
    shutil.rmtree(work, ignore_errors=True)
    bad = [s for s, r in info["steps"].items() if r["status"] not in ("ok", "skipped")]
    return 1 if bad else 0


def _write(out: Path, stem: str, parts: list[Path], gatys_json: Path, info: dict, budget: Budget) -> Path:
    doc = merge(parts)
    gatys = _load(gatys_json)
    rows = targets(doc, gatys)
    info["wall_s"] = budget.total - budget.left()
    doc.update({"targets": rows, "gatys500": gatys, "gpu_check": info})
    path = atomic_write_text(out / f"{stem}.json", json.dumps(doc, indent=1, default=str))
    md = atomic_write_text(out / f"{stem}_summary.md", summary_md(doc, rows, info))
    if os.environ.get("OUT"):
        for f in (path, md):
            shutil.copy(f, Path(os.environ["OUT"]) / f.name)
    return path


if __name__ == "__main__":
    sys.exit(main())
