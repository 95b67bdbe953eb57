"""The GPU check (bench/gpu_protocol.py): its summary names every target, numbers survive a killed step, its
prerequisite checks skip with a reason instead of failing, and --device cuda fails loudly without CUDA. The CUDA
branches run with torch.cuda faked (tests/fake_cuda.py); the CPU rehearsal itself runs in .ci/run."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from bench import gpu_protocol as gp
from tests.fake_cuda import FakeCuda

STATUSES = ("measured", "not measured (", "n/a on CPU")


def _records(scale: float) -> list[dict]:
    out = [{"kind": "gatys", "path": "fast", "seconds": 12.0 * scale, "mode": "eager", "config": "bf16+cl"}]
    for size in (1024, 2048):
        out += [{"kind": "forward", "name": f"style forward {size}", "size": size, "path": p, "mode": "eager",
                 "median_s": (2e-3 if size == 1024 else 20e-3) * scale * (2 if p == "reference" else 1)}
                for p in ("fast", "reference")]
    for task in ("style", "sr_x4"):
        out += [{"kind": "train", "name": f"{task} step", "task": task, "path": p, "mode": "eager",
                 "median_s": 5e-3 * scale * (3 if p == "reference" else 1)} for p in ("fast", "reference")]
    out.append({"kind": "style_run", "iterations": 2000, "seconds": 20.0, "seconds_per_iteration": 0.01 * scale,
                "seconds_for_40k": 400.0 * scale})
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
    assert "(missed)" in _status_of(md, gp.TARGETS[-1]["target"])  # 400 s for 40k iterations > 6 min
    assert _status_of(md, "fast path not slower than the reference (eager pairs of this run)") == "measured: met"


def test_summary_says_why_a_target_was_not_measured():
    steps = {"gatys500_1024": {"status": "timeout", "seconds": 75.0},
             "forward_1024_eager": {"status": "exit 1", "seconds": 3.0},
             "forward_1024_compiled": {"status": "skipped", "reason": "no C compiler for Triton", "seconds": 0.0}}
    md = gp.summary_md([], steps, {"device": "cuda"}, gp.GPU)
    assert _status_of(md, "Gatys 500 L-BFGS iterations at 1024 px < 15 s") == \
        "not measured (gatys500_1024: timeout)"
    s = _status_of(md, "style forward 1024 px <= 3 ms")
    assert "forward_1024_eager: exit 1" in s and "no C compiler for Triton" in s
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
    code = (f"import sys, time; sys.path.insert(0, {str(gp.REPO)!r}); from bench.gpu_protocol import append_jsonl; "
            f"from pathlib import Path; append_jsonl(Path({str(jsonl)!r}), {{'kind': 'forward', 'median_s': 0.5}}); "
            "time.sleep(60)")
    step = gp.Step("hang", [sys.executable, "-c", code], 60)
    with open(tmp_path / "log", "w") as log:
        res = gp.run_step(step, 4.0, log)
    assert res["status"] == "timeout" and res["seconds"] < 30
    with open(jsonl, "a") as f:
        f.write('{"kind": "forward", "median')  # what a kill in the middle of a write would leave
    assert gp.read_jsonl(jsonl) == [{"kind": "forward", "median_s": 0.5}]


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


def test_prerequisites_skip_with_reasons_on_emulated_cuda(monkeypatch, tmp_path):
    """On (fake) CUDA: no nvidia-smi, no git, no C compiler, a missing package: each step that needs one is skipped
    with its reason, the others run, and the summary and JSONL are written."""
    cuda = FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp.shutil, "which", lambda name: None)  # no git, nvidia-smi, cc
    monkeypatch.setattr(gp, "c_compiler", lambda: None)
    monkeypatch.setattr(gp, "missing_module", lambda mods: "resize_right" if "bench.sr" in mods else None)
    ran = []
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: ran.append(step.name) or
                        {"status": "ok", "seconds": 1.0})
    out = tmp_path / "out"
    rc = gp.main(["--device", "cuda", "--out", str(out), "--data", str(_data(tmp_path)),
                  "--only", "forward_1024_eager,forward_1024_compiled,sr_run,style_run"])
    assert rc == 0 and ran == ["forward_1024_eager", "style_run"]
    md = (out / gp.SUMMARY).read_text()
    assert cuda.name in md and "unknown (no git)" in md and "no C compiler" in md
    assert "| sr_run | skipped (package 'resize_right' missing: carry its wheel in .whl/) |" in md
    assert "| forward_1024_compiled | skipped (no C compiler for Triton) |" in md
    machine = json.loads((out / gp.JSONL).read_text().splitlines()[0])
    assert machine["kind"] == "machine" and machine["nvidia_smi"] == "not available"
    for t in gp.TARGETS:
        assert any(_status_of(md, t["target"]).startswith(s) for s in STATUSES)


def test_budget_spent_skips_the_rest(monkeypatch, tmp_path):
    FakeCuda().install(monkeypatch)
    monkeypatch.setattr(gp, "run_step", lambda step, limit, log: pytest.fail("no budget: nothing may run"))
    out = tmp_path / "out"
    assert gp.main(["--device", "cuda", "--out", str(out), "--budget-s", "1", "--data", str(_data(tmp_path))]) == 0
    md = (out / gp.SUMMARY).read_text()
    assert "| gatys500_1024 | skipped (budget spent) |" in md


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
    assert len(list((dest / "coco_val").iterdir())) == 5 and (dest / "la_muse.jpg").is_file()
    assert len(list((dest / "Set5").iterdir())) == 40
    root, why = gp.data_folder(dest)
    assert root == dest and not why and gp._data_paths(dest)["Set5"] == str(dest / "Set5")
    assert gp.data_folder(tmp_path)[0] is None and "lacks" in gp.data_folder(tmp_path)[1]


def test_benchmark_based_gpu_check_summary_on_cuda():
    """bench/gpu_check.py (kept for the benchmark sweep): its targets table from a CUDA benchmark JSON."""
    from bench import gpu_check

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
