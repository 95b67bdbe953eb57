"""Profile names shared by every harness: `smoke` (seconds, CI), `quick` (minutes on CPU), `paper` (the protocol)."""
from __future__ import annotations

import torch

from perceptual.nets import Variant

PROFILES = ("smoke", "quick", "paper")


def default_profile() -> str:
    """`paper` where CUDA is available, otherwise `quick` (DESIGN.md section 4)."""
    return "paper" if torch.cuda.is_available() else "quick"


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} (--profile)")
    return name


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# The paper's setup (ECCV 2016 text) and what the reduced profiles keep instead, so their results stay comparable
# with the runs already committed (which used the common variant and content at relu2_2).
PAPER_VARIANT: Variant = "paper"
REDUCED_VARIANT: Variant = "common"
STYLE_CONTENT_LAYERS = ("relu2_2", "relu3_3")  # relu2_2: arXiv v1 text; relu3_3: ECCV text (Sec. 4.1)
PAPER_STYLE_CONTENT_LAYER = "relu3_3"
REDUCED_STYLE_CONTENT_LAYER = "relu2_2"


def default_variant(profile: str) -> Variant:
    """The network variant a profile trains unless --variant says otherwise: `paper` for the paper profile."""
    return PAPER_VARIANT if profile == "paper" else REDUCED_VARIANT


def default_content_layer(profile: str) -> str:
    """The style content layer a profile uses unless --content-layer says otherwise: relu3_3 for the paper profile."""
    return PAPER_STYLE_CONTENT_LAYER if profile == "paper" else REDUCED_STYLE_CONTENT_LAYER


def setup_note(profile: str, variant: str, content_layer: str | None = None) -> str:
    """One line for the run card: how this run's network and loss layer compare with the paper's setup.

    content_layer: the style content layer (None for SR, whose l_feat is at relu2_2 in every profile, as the paper).
    """
    paper = f"{PAPER_VARIANT} variant" + (f", {PAPER_STYLE_CONTENT_LAYER}" if content_layer else "")
    ours = f"{variant} variant" + (f", content {content_layer}" if content_layer else "")
    if profile != "paper":
        return f"reduced profile: {ours} (paper: {paper})"
    if variant == PAPER_VARIANT and content_layer in (None, PAPER_STYLE_CONTENT_LAYER):
        return f"paper profile: {ours}, the paper's setup"
    return f"paper profile with overrides: {ours} (paper: {paper})"


# SR (Sec. 4.2): the paper's setup, shared by bench.sr and its dry-run plan (bench.plan).
# CLI method -> the contract's method names it produces (histogram-matched variants beside the raw ones).
METHODS: dict[str, tuple[str, ...]] = {
    "bicubic": ("bicubic",),
    "srcnn": ("srcnn",),
    "pixel": ("johnson_pixel", "johnson_pixel_histmatch"),
    "feat": ("johnson_feat", "johnson_feat_histmatch"),
}
SRCNN_SCALES = (4,)  # the paper compares against SRCNN at x4 only
PAPER_CORPUS = "10,000 MS-COCO train2014 images (Johnson et al. 2016, Sec. 4.2)"
FEAT_LAYER = "relu2_2"
HISTMATCH_NOTE = ("the paper's post-processing: skimage.exposure.match_histograms of the 8-bit network output to the "
                  "8-bit LR input it was computed from (not the HR), each RGB channel on its own; a 1-channel LR "
                  "is matched as three equal channels")
