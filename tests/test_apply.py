"""`bench.style stylize` and `bench.sr upscale`: trained networks applied to a user's images.

Tiled inference must equal the untiled pass (instance norm included: its whole-image statistics are computed over
all tiles first); outputs are never overwritten without --overwrite; bad input exits 2 with nothing written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.sr import cli as sr
from bench.style import cli as style
from bench.tools.apply import stylize_image, upscale_image
from bench.tools.model_loader import load_suite_checkpoint
from perceptual.nets import TransformNet


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(h // 8 + 1, w // 8 + 1, 3))
    big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
    return np.clip(big + rng.normal(0, 8, size=big.shape), 0, 255).astype(np.uint8)


def _style_model(folder: Path, variant: str) -> Path:
    """A transform network saved the way `bench.style` exports it (RUN/models/<style>.pt), with non-trivial norm
    affine parameters so that the norm statistics matter."""
    torch.manual_seed(0)
    net = TransformNet(variant)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path = folder / "models" / f"test_{variant}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "variant": variant, "style": f"test_{variant}",
                "loss_weights": {"content": 1.0, "style": 5.0, "tv": 2.0, "tv_form": "squared"}}, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (h, w) in enumerate([(70, 98), (64, 52)]):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(_photo(h, w, i)).save(paths[-1])
    return paths


@pytest.mark.parametrize("variant", ["common", "paper"])
def test_stylize_tiled_equals_untiled(tmp_path, images, variant, one_thread):
    model = load_suite_checkpoint(_style_model(tmp_path, variant))
    from data.images import load_image

    x = load_image(images[0])  # 70x98: padded to 72x100 inside, cropped back
    whole = stylize_image(model.net, x, None)
    tiled = stylize_image(model.net, x, 24)
    assert whole.shape == x.shape
    assert (whole - tiled).abs().max().item() <= 1e-4


def test_stylize_cli_writes_prints_and_refuses_to_overwrite(tmp_path, images, capsys):
    ckpt = _style_model(tmp_path, "common")
    out = tmp_path / "styled"
    assert style.main(["stylize", "--checkpoint", str(ckpt), "--out", str(out), *map(str, images), "--device", "cpu",
                       "--tile", "0"]) == 0
    printed = capsys.readouterr().out
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["photo0_test_common.png", "photo1_test_common.png"]
    assert all(f"wrote {p}" in printed for p in written)
    assert Image.open(written[0]).size == (98, 70)
    before = [p.read_bytes() for p in written]
    assert style.main(["stylize", "--checkpoint", str(ckpt), "--out", str(out), *map(str, images)]) == 2
    assert "--overwrite" in capsys.readouterr().err and [p.read_bytes() for p in written] == before
    # tiled through the CLI: the same image to within one 8-bit level (float differences ~1e-6 can flip a rounding)
    assert style.main(["stylize", "--checkpoint", str(ckpt), "--out", str(out), str(images[0]), "--overwrite",
                       "--tile", "24", "--device", "cpu"]) == 0
    tiled = np.asarray(Image.open(written[0])).astype(int)
    assert style.main(["stylize", "--checkpoint", str(ckpt), "--out", str(out), str(images[0]), "--overwrite",
                       "--tile", "0", "--device", "cpu"]) == 0
    assert np.abs(np.asarray(Image.open(written[0])).astype(int) - tiled).max() <= 1
    # --max-side downscales first
    small = tmp_path / "small"
    assert style.main(["stylize", "--checkpoint", str(ckpt), "--out", str(small), str(images[0]),
                       "--max-side", "49"]) == 0
    assert Image.open(small / "photo0_test_common.png").size == (49, 35)


@pytest.fixture(scope="module")
def sr_checkpoint(tmp_path_factory) -> Path:
    """A real (two-iteration) training checkpoint of the SR harness."""
    root = tmp_path_factory.mktemp("srrun")
    corpus, evals = root / "corpus", root / "eval"
    for folder, sizes in ((corpus, [(80, 96), (72, 72), (96, 64)]), (evals, [(44, 52), (48, 40)])):
        folder.mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(_photo(h, w, 10 + i)).save(folder / f"img{i}.png")
    out = root / "run"
    assert sr.main(["--profile", "smoke", "--methods", "pixel", "--scales", "4", "--datasets", str(evals),
                    "--corpus", str(corpus), "--iterations", "2", "--patch-size", "32", "--batch-size", "2",
                    "--no-lpips", "--no-report", "--no-progress", "--out", str(out)]) == 0
    return out / "checkpoints" / "johnson_pixel_x4.pt"


def test_upscale_tiled_equals_untiled_and_histmatch(tmp_path, images, sr_checkpoint, capsys, one_thread):
    model = load_suite_checkpoint(sr_checkpoint)
    assert model.kind == "sr" and model.scale == 4
    lr = np.asarray(Image.open(images[1]))
    whole = upscale_image(model, lr, None)
    assert whole.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
    assert np.abs(upscale_image(model, lr, 16).astype(int) - whole.astype(int)).max() <= 1
    with torch.no_grad():
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
        from perceptual.fast import tiled_forward

        assert (tiled_forward(model.net, x, 16) - model.net(x)).abs().max().item() <= 1e-4
    out = tmp_path / "up"
    assert sr.main(["upscale", "--checkpoint", str(sr_checkpoint), "--out", str(out), *map(str, images),
                    "--histmatch", "--no-progress"]) == 0
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["photo0_johnson_pixel_x4_histmatch.png",
                                         "photo1_johnson_pixel_x4_histmatch.png"]
    assert Image.open(written[0]).size == (98 * 4, 70 * 4)
    assert all(f"wrote {p}" in capsys.readouterr().out for p in written[:1])
    assert sr.main(["upscale", "--checkpoint", str(sr_checkpoint), "--out", str(out), *map(str, images),
                    "--histmatch"]) == 2
    assert "already exist" in capsys.readouterr().err


def test_bad_input_is_refused_whole_and_nothing_written(tmp_path, images, sr_checkpoint, capsys):
    broken, empty = tmp_path / "broken.png", tmp_path / "empty.jpg"
    broken.write_bytes(b"not an image")
    empty.write_bytes(b"")
    out = tmp_path / "out"
    assert sr.main(["upscale", "--checkpoint", str(sr_checkpoint), "--out", str(out), str(images[0]), str(broken),
                    str(empty)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "broken.png" in err and "empty.jpg" in err and not out.exists()
    # a style network given to upscale (and the reverse) names the right command
    ckpt = _style_model(tmp_path, "common")
    assert sr.main(["upscale", "--checkpoint", str(ckpt), "--out", str(out), str(images[0])]) == 2
    assert "bench.style stylize" in capsys.readouterr().err
    assert style.main(["stylize", "--checkpoint", str(sr_checkpoint), "--out", str(out), str(images[0])]) == 2
    assert "bench.sr upscale" in capsys.readouterr().err
    assert style.main(["stylize", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out), str(images[0])]) == 2
    assert "RUN/models/<style>.pt" in capsys.readouterr().err and not out.exists()
