"""The trained networks of this suite's committed runs, for torch.hub (no download, no training):

    import torch
    net = torch.hub.load("path/to/this/repo", "sr_x4_feat", source="local")  # eval mode, on the CPU
    y = net(x)  # x: float RGB (N, 3, h, w) in [0, 1] -> (N, 3, 4h, 4w); clamp to [0, 1] to display

Every network here was trained at CPU scale by one of the suite's reduced profiles (a few hundred to 5,000
iterations of small patches on 2 CPU cores), NOT by the paper's training (SR: 200k iterations of 288 px patches;
style: 40k iterations at 256 px, on a GPU): each entry's docstring says which profile, how many iterations and which
run folder.
Use them to try the commands and the code; the paper's numbers need the `paper` profile.

`WEIGHTS` is the one table from entry point to file (run folders relative to this folder; `$PERCEPTUAL_HUB_TABLE`,
when set, names a JSON file {entry: [run folder, name, profile, iterations]} whose rows replace the table's, e.g. to
try a network of your own run). Each file is RUN/weights/<name>.safetensors (model state only) with
RUN/weights/<name>.json beside it (architecture, variant, scale, profile, iterations, seed, run folder, sha256),
written at the end of training or by `python -m bench.tools.export RUN`. Loading checks the sha256 and reads the file with
this module's own safetensors reader, so torch is the only dependency (`srcnn_x4` also needs the suite's data
package, for the bicubic Cb/Cr).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

dependencies = ["torch"]

HERE = Path(__file__).resolve().parent
SR_X4_RUN = "results/runs/sr-cpu-x4/seeds/seed-1"  # seed 0 of that run predates saving weights
SR_X8_RUN = "results/runs/sr-cpu-x8"
STYLE_RUN = "results/runs/style-trend-128"
# entry point -> (run folder, network name in RUN/weights/, profile, training iterations): repoint a row to publish
# another run's network (the .json beside the weights must agree on profile and iterations, or loading says so).
WEIGHTS: dict[str, tuple[str, str, str, int]] = {
    "sr_x4_feat": (SR_X4_RUN, "johnson_feat_x4", "cpu-x4", 5000),
    "sr_x4_pixel": (SR_X4_RUN, "johnson_pixel_x4", "cpu-x4", 5000),
    "srcnn_x4": (SR_X4_RUN, "srcnn_x4", "cpu-x4", 2000),
    "sr_x8_feat": (SR_X8_RUN, "johnson_feat_x8", "cpu-x8", 5000),
    "sr_x8_pixel": (SR_X8_RUN, "johnson_pixel_x8", "cpu-x8", 5000),
    "style_la_muse": (STYLE_RUN, "la_muse", "trend-128", 4000),
}
if os.environ.get("PERCEPTUAL_HUB_TABLE"):
    _rows = json.loads(Path(os.environ["PERCEPTUAL_HUB_TABLE"]).read_text())
    _unknown = sorted(set(_rows) - set(WEIGHTS))
    if _unknown:
        raise KeyError(f"$PERCEPTUAL_HUB_TABLE: unknown entry point(s) {', '.join(_unknown)}; the table has "
                       f"{', '.join(WEIGHTS)}")
    WEIGHTS.update({k: (str(v[0]), str(v[1]), str(v[2]), int(v[3])) for k, v in _rows.items()})
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def weights_path(entry: str) -> Path:
    """The .safetensors file of `entry` (WEIGHTS; a relative run folder is under this folder)."""
    if entry not in WEIGHTS:
        raise KeyError(f"unknown network {entry!r}: choose one of {', '.join(WEIGHTS)}")
    run, name, _, _ = WEIGHTS[entry]
    return HERE / run / "weights" / f"{name}.safetensors"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a state dict, with torch alone (8-byte header length, JSON header, raw little-endian
    tensor data)."""
    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = _DTYPES[spec["dtype"]]
        chunk = bytearray(body[start:end])
        flat = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        out[key] = flat.reshape(spec["shape"]).clone()
    return out


class SRCNNUpscaler(nn.Module):
    """SRCNN as an RGB -> RGB upscaler: bicubic upscale, SRCNN on Y, bicubic Cb/Cr (baselines.srcnn.srcnn_upscale)."""

    def __init__(self, srcnn: nn.Module, scale: int):
        super().__init__()
        self.srcnn, self.scale = srcnn, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from baselines.srcnn import srcnn_upscale

        return srcnn_upscale(self.srcnn, x, self.scale)


def build_network(meta: dict[str, Any]) -> nn.Module:
    """The untrained network an export's .json describes (kind sr, srcnn or style)."""
    kind = meta.get("kind")
    if kind == "sr":
        from perceptual.nets import SRNet

        return SRNet(int(meta["scale"]), meta.get("variant", "common"))
    if kind == "style":
        from perceptual.nets import TransformNet

        return TransformNet(meta.get("variant", "common"))
    if kind == "srcnn":
        from baselines.srcnn import SRCNN

        return SRCNN()
    raise ValueError(f"unknown network kind {kind!r} in the export's .json (sr, srcnn or style)")


def load_export(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The network of an export (RUN/weights/<name>.safetensors + .json) in eval mode, and its .json; the file's
    sha256 is checked against the .json."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        missing = path if not path.is_file() else meta_path
        raise FileNotFoundError(f"{missing}: no such file. Export the run's network with `python -m bench.tools.export "
                                f"{path.parent.parent}` (from its checkpoints), or train the run (both harnesses "
                                f"write RUN/weights/ at the end of training)")
    meta = json.loads(meta_path.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if meta.get("sha256") != digest:
        raise ValueError(f"{path}: sha256 {digest} differs from the {meta.get('sha256')} in {meta_path}; "
                         f"re-export it with `python -m bench.tools.export {path.parent.parent}`")
    net = build_network(meta)
    net.load_state_dict(read_safetensors(path))
    return net.to(device).eval(), meta


def load(entry: str, device: str | torch.device = "cpu") -> nn.Module:
    """The network of `entry` (WEIGHTS), ready to run: RGB [0, 1] in, RGB out (SRCNN wrapped as an RGB upscaler)."""
    path = weights_path(entry)
    run, _, profile, iterations = WEIGHTS[entry]
    try:
        net, meta = load_export(path, device)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"torch.hub entry {entry!r}: {e}. The table (WEIGHTS in {__file__}) points it at "
                                f"{run}") from None
    if (meta.get("profile"), meta.get("iterations")) != (profile, iterations):
        raise ValueError(f"{path.with_suffix('.json')} says profile {meta.get('profile')!r}, {meta.get('iterations')} "
                         f"iterations; WEIGHTS in {__file__} says {profile!r}, {iterations}: fix the table's row")
    if meta["kind"] == "srcnn":
        net = SRCNNUpscaler(net, int(meta["scale"])).eval()
    return net


def _entry(name: str) -> Any:
    run, net, profile, iterations = WEIGHTS[name]

    def entry(pretrained: bool = True, device: str | torch.device = "cpu") -> nn.Module:
        if not pretrained:
            raise ValueError(f"{name}: only the trained network is offered (pretrained=True)")
        return load(name, device)

    entry.__name__ = name
    entry.__doc__ = (f"{name}: the {net} network of {run} ({profile} profile, {iterations:,} training iterations). "
                     f"CPU-scale training by this suite, not the paper's training. Returns it in eval mode: float "
                     f"RGB (N, 3, H, W) in [0, 1] in, RGB out.")
    return entry


sr_x4_feat = _entry("sr_x4_feat")
sr_x4_pixel = _entry("sr_x4_pixel")
srcnn_x4 = _entry("srcnn_x4")
sr_x8_feat = _entry("sr_x8_feat")
sr_x8_pixel = _entry("sr_x8_pixel")
style_la_muse = _entry("style_la_muse")
