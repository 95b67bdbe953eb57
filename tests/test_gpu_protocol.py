"""The GPU check (bench/gpu/protocol.py): its summary names every target from steady-state numbers, numbers survive a
killed step, its prerequisite checks skip with a reason instead of failing, --device cuda fails loudly without CUDA,
the rehearsal runs the GPU's argument lists, and the budget arithmetic gives every target's step its minimum. The
CUDA branches run with torch.cuda faked (tests/fake_cuda.py); the CPU rehearsal itself runs in .ci/run."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from bench.gpu import protocol as gp
from tests.fake_cuda import FakeCuda

STATUSES = ("measured", "not measured (", "n/a on CPU")


def _records(scale: float) -> list[dict]:
    out = [{"kind": "gatys", "path": "fast", "seconds": 12.0 * scale, "mode": "uncompiled", "config": "bf16+cl"}]
    for size in (1024, 2048):
        out += [{"kind": "forward", "name": f"style forward {size}", "size": size, "path": p, "mode": "uncompiled",
                 "median_s": (2e-3 if size == 1024 else 20e-3) * scale * (2 if p == "reference" else 1)}
                for p in ("fast", "reference")]
    for task in ("style", "sr_x4"):
        out += [{"kind": "train", "name": f"{task} step", "task": task, "path": p, "mode": "uncompiled",
                 "median_s": 5e-3 * scale * (3 if p == "reference" else 1)} for p in ("fast", "reference")]
    out.append({"kind": "style_run", "iterations": 2000, "seconds": 20.0, "seconds_per_iteration": 0.01 * scale,
                "first_step_s": 40.0, "later_steps_s": 0.009 * scale, "n": 40_000,
                "seconds_for_40k": 40.0 + 0.009 * scale * 39_999})
    return out


def _status_of(md: str, target: str) -> str:
    line = next(x for x in md.splitlines() if x.startswith(f"| {target} |"))
    return line.split(" | ")[1]


def test_summary_names_every_target_measured_on_gpu():
    md = gp.summary_md(_records(1.0), {}, {"device": "cuda", "device_name": "H200"}, gp.GPU)
    for t in gp.TARGETS:
        assert _status_of(md, t["target"]).startswith("measured: ")
    assert "2.00 ms (met)" in _status_of(md, "style forward 1024 px <= 3 ms")
    assert "20.00 ms (missed)" in _status_of(md, "style forward 2048 px <= 12 ms")
    assert "(missed)" in _status_of(md, gp.TARGETS[-1]["target"])  # 40 s + 39,999 x 9 ms > 6 min
    assert _status_of(md, "fast path not slower than the reference (uncompiled pairs of this run)") == "measured: met"


def test_summary_says_why_a_target_was_not_measured():
    steps = {"gatys500_1024": {"status": "timeout", "seconds": 75.0},
             "forward_1024_uncompiled": {"status": "exit 1", "seconds": 3.0},
             "forward_1024_compiled": {"status": "skipped", "reason": "no C compiler for Triton", "seconds": 0.0}}
    md = gp.summary_md([], steps, {"device": "cuda"}, gp.GPU)
    assert _status_of(md, "Gatys 500 L-BFGS iterations at 1024 px < 15 s") == \
        "not measured (gatys500_1024: timeout)"
    s = _status_of(md, "style forward 1024 px <= 3 ms")
    assert "forward_1024_uncompiled: exit 1" in s and "no C compiler for Triton" in s
    for t in gp.TARGETS:
        assert _status_of(md, t["target"]).startswith("not measured (")
    assert "| CUDA tests (tests/test_fast_path.py on the device) | not measured (tests did not run) |" in md


def test_rehearsal_summary_is_na_on_cpu():
    md = gp.summary_md(_records(50.0), {}, {"device": "cpu"}, gp.GPU)
    for t in gp.TARGETS:
        assert _status_of(md, t["target"]).startswith("n/a on CPU")
    assert all(any(_status_of(md, t["target"]).startswith(s) for s in STATUSES) for t in gp.TARGETS)


def test_numbers_survive_a_killed_step(tmp_path):
    """A step appends a record, then hangs: killed at its limit, its record stays; a half-written line is skipped."""
    jsonl = tmp_path / "r.jsonl"
    code = (f"import sys, time; sys.path.insert(0, {str(gp.REPO)!r}); from bench.gpu.protocol import append_jsonl; "
            f"from pathlib import Path; append_jsonl(Path({str(jsonl)!r}), {{'kind': 'forward', 'median_s': 0.5}}); "
            "time.sleep(600)")
    step = gp.Step("hang", [sys.executable, "-c", code], 600)
    # 12 s: the child imports bench.gpu.protocol (torch) before it writes, which took over 4 s on 2 busy cores
    with open(tmp_path / "log", "w") as log:
        res = gp.run_step(step, 12.0, log)
    assert res["status"] == "timeout" and res["seconds"] < 60
    with open(jsonl, "a") as f:
        f.write('{"kind": "forward", "median')  # what a kill in the middle of a write would leave
    assert gp.read_jsonl(jsonl) == [{"kind": "forward", "median_s": 0.5}]
    gp.append_jsonl(jsonl, {"kind": "train", "median_s": 0.25})  # the next record starts on a line of its own
    assert gp.read_jsonl(jsonl) == [{"kind": "forward", "median_s": 0.5}, {"kind": "train", "median_s": 0.25}]


def test_device_must_be_explicit_and_cuda_present(monkeypatch, capsys):
    assert gp.main([]) == 2
    assert "--device cuda" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gp.main(["--device", "cuda", "--out", "/nonexistent/never-written"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def _data(tmp_path):
    d = tmp_path / "data"
    for name in gp.DATA_LAYOUT:
        (d / name).mkdir(parents=True)
    return d


SMI = "NVIDIA H200 (emulated), 143771 MiB, 570.00, 1980 MHz"


def test_prerequisites_skip_with_reasons_on_emulated_cuda(monkeypatch, tmp_path):
    """On (fake) CUDA: no git, no C compiler, a missing package: each step that needs one is skipped with its reason
    (the harness runs too: they compile by default on CUDA), the others run, and the summary and JSONL are written.
    The orchestrator reads the GPU's name from nvidia-smi and never opens a CUDA context itself."""
    cuda = FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp.shutil, "which", lambda name: None)  # no git, cc
    monkeypatch.setattr(gp, "nvidia_smi", lambda: SMI)
    monkeypatch.setattr(gp, "c_compiler", lambda: None)
    monkeypatch.setattr(gp, "missing_module", lambda mods: "resize_right" if "bench.sr" in mods else None)
    ran = []
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: ran.append(step.name) or
                        {"status": "ok", "seconds": 1.0})
    out = tmp_path / "out"
    rc = gp.main(["--device", "cuda", "--out", str(out), "--data", str(_data(tmp_path)),
                  "--only", "forward_1024_uncompiled,forward_1024_compiled,sr_run,style_train"])
    assert rc == 0 and ran == ["forward_1024_uncompiled"]
    md = (out / gp.SUMMARY).read_text()
    assert cuda.name in md and "unknown (no git)" in md and "no C compiler" in md
    assert "| sr_run | skipped (no C compiler for Triton) |" in md
    assert "| style_train | skipped (no C compiler for Triton) |" in md
    assert "| forward_1024_compiled | skipped (no C compiler for Triton) |" in md
    assert not [c for c in cuda.calls if c[0] == "get_device_name"]  # no CUDA context in the orchestrator
    machine = json.loads((out / gp.JSONL).read_text().splitlines()[0])
    assert machine["kind"] == "machine" and machine["nvidia_smi"] == SMI and machine["device_name"] == cuda.name
    for t in gp.TARGETS:
        assert any(_status_of(md, t["target"]).startswith(s) for s in STATUSES)


def test_a_missing_package_skips_its_step(monkeypatch, tmp_path):
    FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp, "nvidia_smi", lambda: SMI)
    monkeypatch.setattr(gp, "compiler_missing", lambda cc: None)
    monkeypatch.setattr(gp, "missing_module", lambda mods: "resize_right" if "bench.sr" in mods else None)
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: {"status": "ok", "seconds": 1.0})
    out = tmp_path / "out"
    gp.main(["--device", "cuda", "--out", str(out), "--data", str(_data(tmp_path)), "--only", "sr_run"])
    assert "| sr_run | skipped (package 'resize_right' missing: carry its wheel in .gpu/whl/) |" in \
        (out / gp.SUMMARY).read_text()


def test_compiling_steps_need_a_c_compiler_and_triton(monkeypatch):
    monkeypatch.setattr(gp, "missing_module", lambda mods: "triton" if "triton" in mods else None)
    assert "triton" in gp.compiler_missing("/usr/bin/cc")
    assert gp.compiler_missing(None) == "no C compiler for Triton"
    monkeypatch.setattr(gp, "missing_module", lambda mods: None)
    assert gp.compiler_missing("/usr/bin/cc") is None
    assert {s.name for s in _plan() if s.compiled} >= {"style_train", "style_eval", "sr_run"}  # they compile on CUDA


def test_gpu_name_without_nvidia_smi_asks_a_child_process(monkeypatch):
    seen = []

    def run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="NVIDIA H100 80GB HBM3\n", stderr="")
    monkeypatch.setattr(gp.subprocess, "run", run)
    assert gp.gpu_name(None) == "NVIDIA H100 80GB HBM3" and seen[0][0] == sys.executable
    assert gp.gpu_name(SMI) == "NVIDIA H200 (emulated)"


def test_budget_spent_skips_the_rest(monkeypatch, tmp_path):
    FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp, "nvidia_smi", lambda: SMI)
    monkeypatch.setattr(gp, "compiler_missing", lambda cc: None)
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: pytest.fail("no budget: nothing may run"))
    out = tmp_path / "out"
    assert gp.main(["--device", "cuda", "--out", str(out), "--budget-s", "1", "--data", str(_data(tmp_path))]) == 0
    md = (out / gp.SUMMARY).read_text()
    assert "| style_train | skipped (budget: " in md and "| gatys500_1024 | skipped (budget: " in md


# ------------------------------------------------------------------------------------ the budget arithmetic


def _plan(device="cuda", sizes=gp.GPU, vgg="imagenet"):
    from pathlib import Path

    work = Path("/work-folder")
    data = {k: f"/data/{k}" for k in gp.DATA_LAYOUT}
    return gp.plan(device, sizes, work, work / "r.jsonl", data, vgg)


def test_the_target_steps_fit_the_budget_with_a_cold_compile_each():
    steps = _plan()
    producers = gp.target_steps(steps)
    assert all(producers[i] for i in range(len(gp.TARGETS))), producers  # every target has a planned source
    planned = [s for s in steps if s.targets]
    assert sum(s.min_s + gp.STEP_OVERHEAD_S for s in planned) + gp.RESERVE_S <= gp.BUDGET_S
    for s in planned:
        assert s.min_s <= s.cap_s
        if s.compiled:
            assert s.min_s >= gp.COLD_COMPILE_S or s.name == "forward_2048_compiled"  # a recompile of a warm net
    names = [s.name for s in steps]
    # the order: paper style training, the compiled steps, then the uncompiled pairs, Gatys, the SR run, the tests
    assert names[0] == "style_train" and steps[0].targets == (5,) and "--stages" in steps[0].cmd
    assert steps[0].cmd[steps[0].cmd.index("--stages") + 1:steps[0].cmd.index("--stages") + 2] == ["train"]
    compiled = [i for i, n in enumerate(names) if n.endswith("_compiled")]
    uncompiled = [i for i, n in enumerate(names) if n.endswith("_uncompiled")]
    assert compiled == [1, 2, 3, 4] and min(uncompiled) > max(compiled)
    assert max(uncompiled) < names.index("gatys500_1024") < names.index("sr_run") < names.index("tests")


def test_worst_case_every_step_times_out_and_every_target_step_still_runs(monkeypatch, tmp_path):
    """Each step runs to its full limit (a timeout): the reservation still leaves every target's step its
    minimum, and nothing starts with less than its own minimum."""
    FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp, "nvidia_smi", lambda: SMI)
    monkeypatch.setattr(gp, "compiler_missing", lambda cc: None)
    clock = [1000.0]
    monkeypatch.setattr(gp.time, "monotonic", lambda: clock[0])
    limits = {}

    def run(step, limit, log):
        limits[step.name] = limit
        clock[0] += limit + gp.STEP_OVERHEAD_S  # the whole limit, and the most a kill and collect may add
        return {"status": "timeout", "seconds": limit}
    monkeypatch.setattr(gp, "run_step", run)
    out = tmp_path / "out"
    gp.main(["--device", "cuda", "--out", str(out), "--data", str(_data(tmp_path))])
    steps = {s.name: s for s in _plan()}
    for name, s in steps.items():
        if s.targets:
            assert name in limits and limits[name] >= s.min_s, (name, limits.get(name))
    assert all(limits[n] >= steps[n].min_s for n in limits)
    md = (out / gp.SUMMARY).read_text()
    assert "skipped (budget: " in md  # the lower-priority steps are what is dropped


def test_the_rehearsal_runs_every_step_whatever_the_clock(monkeypatch, tmp_path):
    monkeypatch.setenv(gp.COMPILE_BACKEND_ENV, "inductor")  # main sets it for the rehearsal; restored after
    clock = [0.0]
    monkeypatch.setattr(gp.time, "monotonic", lambda: clock[0])
    ran = []

    def run(step, limit, log):
        ran.append(step.name)
        clock[0] += 10_000.0  # far past any budget
        return {"status": "ok", "seconds": 1.0}
    monkeypatch.setattr(gp, "run_step", run)
    gp.main(["--rehearse", "--out", str(tmp_path / "out"), "--budget-s", "1", "--data", str(_data(tmp_path))])
    assert ran == [s.name for s in _plan("cpu", gp.REHEARSAL)]


# ------------------------------------------------------------------- the rehearsal runs the GPU's argument lists


def _normalised(step: gp.Step) -> tuple:
    """A step with only what may differ replaced: the device, the VGG weights (the ImageNet ones where the machine
    has them, else random), the values of SCALED_OPTIONS (and the sizes in the step's name, a label)."""
    tokens, option = [], None
    name = re.sub(r"\d+", "<n>", step.name)
    for tok in step.cmd:
        if tok.startswith("--step="):
            tok = f"--step={name}"
        elif tok.startswith(("--device=", "--vgg-weights=")):
            tok = tok.split("=")[0] + "=<machine>"
        elif tok.startswith("--") and "=" in tok and tok.split("=")[0] in gp.SCALED_OPTIONS:
            tok = tok.split("=")[0] + "=<n>"
        elif option in gp.SCALED_OPTIONS and not tok.startswith("--"):
            float(tok)  # a scaled option's value is a number
            tok = "<n>"
        if tok.startswith("--"):
            option = tok.split("=")[0]
        tokens.append(tok)
    env = {k: ("<device>" if k == "PERCEPTUAL_TEST_DEVICE" else v) for k, v in step.env.items()}
    return (name, tuple(tokens), env, step.requires, step.needs_data, step.compiled, step.after, step.targets)


def test_the_rehearsal_runs_the_gpu_argument_lists():
    gpu, rehearsal = _plan("cuda", gp.GPU, "imagenet"), _plan("cpu", gp.REHEARSAL, "random")
    assert [_normalised(s) for s in rehearsal] == [_normalised(s) for s in gpu]
    assert [s.cmd for s in rehearsal] != [s.cmd for s in gpu]  # the sizes do differ
    style = next(s for s in gpu if s.name == "style_train").cmd
    assert style[style.index("--profile") + 1] == "paper" and "--no-tv-search" in style  # no TV search in a cap
    # the comparison catches anything else: another profile, a dropped flag
    changed = _plan("cpu", gp.REHEARSAL, "random")
    changed[0].cmd[changed[0].cmd.index("paper")] = "smoke"
    assert _normalised(changed[0]) != _normalised(gpu[0])
    changed[1].cmd.remove("--mode=compiled")
    assert _normalised(changed[1]) != _normalised(gpu[1])


# ---------------------------------------------------------------------------- steady state and robustness


def test_style_target_is_read_from_steady_state_numbers(tmp_path):
    """A session of 2,000 iterations whose first step held a 60 s compile: 40k iterations are 60 s + 39,999 x
    20 ms (860 s), not the session's average rate x 40k (which counts the compile 20 times over)."""
    run = {"path": "fast", "fast_config": {"train": {"label": "bf16+cl+compile+graphs"}},
           "training": {"la_muse": {"iterations": 2000, "start_iteration": 0, "session_time_s": 100.0,
                                    "first_step_s": 60.0, "later_steps_s": 0.02}}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    rec = next(r for r in gp.collect_style_run(tmp_path) if r["kind"] == "style_run")
    assert rec["seconds_for_40k"] == pytest.approx(60.0 + 0.02 * 39_999)
    assert rec["compile_warmup_s"] == pytest.approx(60.0 - 0.02)
    md = gp.summary_md([rec], {}, {"device": "cuda"}, gp.GPU)
    status = _status_of(md, gp.TARGETS[5]["target"])
    assert status == "measured: 14.3 min (missed)"
    row = next(x for x in md.splitlines() if x.startswith(f"| {gp.TARGETS[5]['target']} |"))
    assert "first step 60.00 s (compile, warm-up, capture) + 39,999 x 20.00 ms" in row
    del run["training"]["la_muse"]["first_step_s"]
    (tmp_path / "run.json").write_text(json.dumps(run))
    rec = next(r for r in gp.collect_style_run(tmp_path) if r["kind"] == "style_run")
    assert rec["seconds_for_40k"] is None and "first_step_s" in rec["why"]


def test_a_failing_collect_does_not_stop_the_later_steps(monkeypatch, tmp_path):
    FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp, "nvidia_smi", lambda: SMI)
    monkeypatch.setattr(gp, "compiler_missing", lambda cc: None)

    def broken(folder):
        raise ValueError("results.csv: bad row 3")
    monkeypatch.setattr(gp, "collect_style_run", broken)
    ran = []
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: ran.append(step.name) or
                        {"status": "ok", "seconds": 1.0})
    out = tmp_path / "out"
    assert gp.main(["--device", "cuda", "--out", str(out), "--data", str(_data(tmp_path)),
                    "--only", "style_train,gatys500_1024"]) == 1
    assert ran == ["style_train", "gatys500_1024"]
    md = (out / gp.SUMMARY).read_text()
    assert "| style_train | collect failed (collecting its results failed: ValueError: results.csv: bad row 3) |" in md


def test_append_jsonl_is_one_line_per_record(tmp_path):
    p = tmp_path / "x.jsonl"
    gp.append_jsonl(p, {"a": 1})
    gp.append_jsonl(p, {"b": float("nan")})
    assert len(p.read_text().splitlines()) == 2


def test_prepare_data_copies_the_protocol_images(tmp_path):
    mirror = tmp_path / "mirror"
    for rel in gp.DATA_LAYOUT.values():
        if rel.endswith(".jpg"):
            (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
            (mirror / rel).write_bytes(b"jpg")
        else:
            (mirror / rel).mkdir(parents=True)
            for i in range(40):
                (mirror / rel / f"{i:03d}.jpg").write_bytes(b"x")
    dest = gp.prepare_data(tmp_path / "carry", mirror)
    assert len(list((dest / "coco_train").iterdir())) == gp.N_TRAIN_IMAGES
    assert len(list((dest / "coco_val").iterdir())) == gp.N_VAL_IMAGES and (dest / "la_muse.jpg").is_file()
    assert len(list((dest / "Set5").iterdir())) == 40
    root, why = gp.data_folder(dest)
    assert root == dest and not why and gp._data_paths(dest)["Set5"] == str(dest / "Set5")
    assert gp.data_folder(tmp_path)[0] is None and "lacks" in gp.data_folder(tmp_path)[1]


def test_gatys_measures_the_lbfgs_its_config_names(monkeypatch, tmp_path):
    """Where the device's config says device_lbfgs, the timed run is baselines.lbfgs.DeviceLBFGS and its record
    says so; the reference stays torch.optim.LBFGS and is labelled as such."""
    import baselines.gatys
    import perceptual.fast
    from bench.gpu import measure as gpu_measure
    from perceptual.fast import FastConfig

    monkeypatch.setattr(perceptual.fast, "best_config", lambda device, task="inference": FastConfig(device_lbfgs=True))
    used = []
    real = baselines.gatys.stylise

    def stylise(objective, content, config, *a, **k):
        used.append(config.lbfgs)
        return real(objective, content, config, *a, **k)
    monkeypatch.setattr(baselines.gatys, "stylise", stylise)
    jsonl = tmp_path / "g.jsonl"
    assert gpu_measure.main(["gatys", "--device", "cpu", "--jsonl", str(jsonl), "--size", "32", "--iterations", "3",
                             "--reference-budget-s", "1000"]) == 0
    fast, ref = gp.read_jsonl(jsonl)
    assert used == ["device", "device", "torch", "torch"]
    assert fast["lbfgs"] == "device" and "device L-BFGS" in fast["config"] and "device L-BFGS" in fast["name"]
    assert ref["lbfgs"] == "torch" and "torch L-BFGS" in ref["config"]
    assert fast["mode"] == "uncompiled" and fast["warmup_s"] > 0


def test_layout_step_times_both_layouts(tmp_path):
    from bench.gpu import measure as gpu_measure

    jsonl = tmp_path / "l.jsonl"
    assert gpu_measure.main(["layout", "--device", "cpu", "--jsonl", str(jsonl), "--size", "32", "--train-size", "32",
                             "--warmup", "1", "--repeats", "1"]) == 0
    records = gp.read_jsonl(jsonl)
    assert [(r["name"].split(",")[0], r["channels_last"]) for r in records] == [
        ("style forward 32", False), ("style forward 32", True),
        ("style training step (4x32)", False), ("style training step (4x32)", True)]
    assert all(r["mode"] == "uncompiled" and "compile" not in r["config"] for r in records)
    md = gp.summary_md(records, {}, {"device": "cpu"}, gp.REHEARSAL)
    assert "## Layout without torch.compile" in md and "| style forward 32, uncompiled |" in md


def _script_copy(tmp_path):
    """scripts/gpu_check.sh in an empty checkout, and a PATH whose python3 cannot import torch."""
    import shutil

    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(gp.REPO / "scripts" / "gpu_check.sh", root / "scripts" / "gpu_check.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "python3").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return root, env


def test_script_without_a_torch_python_stops_with_one_line_naming_python(tmp_path):
    root, env = _script_copy(tmp_path)
    res = subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh"), "--rehearse"], env=env, check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "ModuleNotFoundError" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "PYTHON=" in lines[0]


def test_script_falls_back_to_the_tox_environment(tmp_path):
    root, env = _script_copy(tmp_path)
    tox_py = root / ".tox" / "py" / "bin" / "python"
    tox_py.parent.mkdir(parents=True)
    tox_py.write_text('#!/bin/sh\n[ "$1" = "-c" ] && exit 0\necho "tox python: $*"\n')
    tox_py.chmod(0o755)
    res = subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh"), "--rehearse"], env=env, check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "tox python: -m bench.gpu.protocol --rehearse" in res.stdout


def test_benchmark_based_gpu_check_summary_on_cuda():
    """bench/gpu/check.py (kept for the benchmark sweep): its targets table from a CUDA benchmark JSON."""
    from bench.gpu import check as gpu_check

    def bench(group: str, path: str, median: float) -> dict:
        return {"group": group, "stats": {"median": median, "iqr": 0.0}, "extra_info": {"path": path,
                                                                                        "device": "cuda"}}

    doc = {"perceptual_bench": {"device": "cuda"}, "skipped": [],
           "benchmarks": [bench("style_forward_1024", "reference", 9e-3), bench("style_forward_1024", "fast", 2e-3),
                          bench("train_step_style", "reference", 18e-3), bench("train_step_style", "fast", 9e-3)]}
    gatys = {"device": "cuda", "size": 1024, "iterations": 500, "fast": {"seconds": 20.0}}
    rows = {r["target"]: r for r in gpu_check.targets(doc, gatys)}
    assert rows["style forward 1024x1024"]["verdict"] == "met"
    assert rows["style training step (4x256x256, VGG-16 loss)"]["verdict"] == "missed"
    assert rows["style forward 2048x2048"]["verdict"] == "not measured"
    assert rows["Gatys 500 L-BFGS iterations at 1024"]["verdict"] == "missed"
    md = gpu_check.summary_md(doc, list(rows.values()), {"device_name": "H200", "date": "today"})
    assert "| style forward 1024x1024 | 3.00 ms | 2.00 ms (fast) |" in md
