"""Trained networks anyone can use: the export at the end of training (RUN/weights/<name>.safetensors + .json),
`python -m bench.tools.export RUN` from checkpoints, hubconf.py through torch.hub.load, and the committed-network names
the CLIs accept (upscale --checkpoint, stylize --checkpoint, evaluate --model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from image_folders import random_image_folder
from PIL import Image
from safetensors.torch import load_file

from bench.sr import cli as sr
from bench.style import cli as style
from bench.tools import export, hub
from bench.tools.model_loader import build_model, load_suite_checkpoint
from data.files import sha256_file

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory) -> Path:
    """A tiny SR run (pixel and feat at x4, 2 iterations each, random VGG weights): its exports are what is tested."""
    tmp = tmp_path_factory.mktemp("sr")
    corpus, evals = random_image_folder(tmp / "corpus", 3, (48, 48), 1), random_image_folder(tmp / "eval", 2, (40, 44), 2)
    out = tmp / "run"
    assert sr.main(["--profile", "quick", "--scales", "4", "--methods", "pixel", "feat", "--datasets", str(evals),
                    "--corpus", str(corpus), "--iterations", "2", "--patch-size", "32", "--batch-size", "2",
                    "--vgg-weights", "random", "--no-lpips", "--curve-every", "0", "--no-report", "--no-progress",
                    "--out", str(out)]) == 0
    return out


def test_training_writes_the_model_state_and_its_description(sr_run):
    run = json.loads((sr_run / "run.json").read_text())
    for name in ("johnson_pixel_x4", "johnson_feat_x4"):
        path = sr_run / "weights" / f"{name}.safetensors"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert run["training"][name]["export"] == f"weights/{name}.safetensors"
        assert meta["sha256"] == sha256_file(path)
        assert (meta["kind"], meta["architecture"], meta["scale"], meta["variant"]) == ("sr", "SRNet", 4, "common")
        assert (meta["profile"], meta["iterations"], meta["seed"], meta["run"]) == ("quick", 2, 0, str(sr_run))
        assert "not the paper's training" in meta["note"]
        state = load_file(path)
        ckpt = torch.load(sr_run / "checkpoints" / f"{name}.pt", weights_only=True)
        assert set(state) == set(ckpt["model"])  # the model state only: no optimiser, no sampler
        assert all(torch.equal(state[k], ckpt["model"][k]) for k in state)


def test_export_command_rebuilds_the_same_files_from_checkpoints(sr_run, capsys):
    first = {p.name: p.read_bytes() for p in (sr_run / "weights").glob("*.safetensors")}
    for p in (sr_run / "weights").iterdir():
        p.unlink()
    assert export.main([str(sr_run)]) == 0
    assert {p.name: p.read_bytes() for p in (sr_run / "weights").glob("*.safetensors")} == first
    assert "wrote" in capsys.readouterr().out
    assert export.main([str(sr_run), "--names", "srcnn_x4"]) == 2
    assert "no checkpoint for srcnn_x4" in capsys.readouterr().err
    assert export.main([str(sr_run / "weights")]) == 2  # not a run folder: says so


def test_safetensors_reader_of_hubconf_equals_the_library(sr_run):
    conf = hub.hubconf()
    path = sr_run / "weights" / "johnson_feat_x4.safetensors"
    mine, theirs = conf.read_safetensors(path), load_file(path)
    assert set(mine) == set(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)


@pytest.fixture
def table(sr_run, tmp_path, monkeypatch) -> Path:
    """$PERCEPTUAL_HUB_TABLE pointing sr_x4_feat and sr_x4_pixel at the tiny run."""
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"sr_x4_feat": [str(sr_run), "johnson_feat_x4", "quick", 2],
                                "sr_x4_pixel": [str(sr_run), "johnson_pixel_x4", "quick", 2]}))
    monkeypatch.setenv("PERCEPTUAL_HUB_TABLE", str(path))
    hub.hubconf.cache_clear()
    yield path
    hub.hubconf.cache_clear()


def test_torch_hub_load_gives_the_trained_network(sr_run, table):
    net = torch.hub.load(str(REPO), "sr_x4_feat", source="local")
    ref = load_suite_checkpoint(sr_run / "checkpoints" / "johnson_feat_x4.pt").net
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, 3, 128, 128) and torch.equal(y, ref(x))  # round trip: the same outputs
    assert not net.training
    doc = hub.hubconf().srcnn_x4.__doc__  # what torch.hub.help shows (the table above replaces sr_x4_*)
    assert "cpu-x4 profile" in doc and "not the paper's training" in doc and "sr-cpu-x4/seeds/seed-1" in doc
    assert "2,000 training iterations" in doc


def test_missing_or_tampered_weights_say_which_file_and_how_to_make_it(sr_run, table, tmp_path):
    table.write_text(json.dumps({"sr_x4_feat": [str(tmp_path / "nowhere"), "johnson_feat_x4", "quick", 2]}))
    hub.hubconf.cache_clear()
    with pytest.raises(FileNotFoundError, match=r"nowhere/weights/johnson_feat_x4.safetensors.*python -m bench.tools.export"):
        hub.load("sr_x4_feat")
    table.write_text(json.dumps({"sr_x4_feat": [str(sr_run), "johnson_feat_x4", "quick", 300]}))
    hub.hubconf.cache_clear()
    with pytest.raises(ValueError, match="fix the table's row"):
        hub.load("sr_x4_feat")


def test_the_clis_accept_committed_network_names(sr_run, table, tmp_path):
    lr = tmp_path / "in" / "photo.png"
    lr.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(lr)
    assert sr.main(["upscale", "--checkpoint", "sr_x4_feat", "--out", str(tmp_path / "up"), str(lr),
                    "--no-progress"]) == 0
    out = np.asarray(Image.open(tmp_path / "up" / "photo_johnson_feat_x4.png"))
    assert out.shape == (80, 96, 3)
    model = load_suite_checkpoint(Path("sr_x4_pixel"))
    assert (model.kind, model.name, model.scale) == ("sr", "johnson_pixel", 4)
    net = build_model("sr_x4_feat")  # what `evaluate --model sr_x4_feat` builds
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), hub.load("sr_x4_feat")(x))
    with pytest.raises(ValueError, match="--weights"):
        build_model("sr_x4_feat", weights=tmp_path / "w.pt")


def test_style_training_exports_and_stylize_accepts_the_export(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert style.main(["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32",
                       "--iterations", "2", "--device", "cpu", "--stages", "train", "--out", str(out)]) == 0
    (name,) = [p.stem for p in (out / "models").glob("*.pt")]
    path = out / "weights" / f"{name}.safetensors"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert (meta["kind"], meta["architecture"], meta["profile"]) == ("style", "TransformNet", "smoke")
    net = load_suite_checkpoint(path).net
    ref = load_suite_checkpoint(out / "models" / f"{name}.pt").net
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"style_la_muse": [str(out), name, "smoke", 2]}))
    monkeypatch.setenv("PERCEPTUAL_HUB_TABLE", str(table))
    hub.hubconf.cache_clear()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(photo)
    try:
        assert style.main(["stylize", "--checkpoint", "style_la_muse", "--out", str(tmp_path / "st"), str(photo),
                           "--no-progress"]) == 0
    finally:
        hub.hubconf.cache_clear()
    assert np.asarray(Image.open(tmp_path / "st" / f"photo_{name}.png")).shape == (20, 24, 3)


def test_every_committed_network_loads_from_the_repository_and_runs(monkeypatch):
    """The committed table itself (no $PERCEPTUAL_HUB_TABLE): each entry loads by torch.hub from this checkout, with no
    download and no training, and maps a 1x3x32x32 input to its scale (style networks keep the size)."""
    monkeypatch.delenv("PERCEPTUAL_HUB_TABLE", raising=False)
    hub.hubconf.cache_clear()
    try:
        table = hub.hubconf().WEIGHTS
        assert set(table) == {"sr_x4_feat", "sr_x4_pixel", "srcnn_x4", "sr_x8_feat", "sr_x8_pixel", "style_la_muse"}
        for entry, (run, _name, profile, iterations) in table.items():
            net = torch.hub.load(str(REPO), entry, source="local")
            scale = 8 if "_x8_" in entry else 4 if "x4" in entry else 1
            with torch.no_grad():
                y = net(torch.rand(1, 3, 32, 32))
            assert y.shape == (1, 3, 32 * scale, 32 * scale) and torch.isfinite(y).all(), entry
            doc = getattr(hub.hubconf(), entry).__doc__
            assert run in doc and f"{profile} profile" in doc and f"{iterations:,} training iterations" in doc
    finally:
        hub.hubconf.cache_clear()
