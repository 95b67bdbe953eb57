"""The fast path: the same networks and losses, same weights, run faster. It changes only *how* the reference
arithmetic is executed, so results equal the reference path's within the stated tolerances (`TOLERANCES`,
`MEAN_ABS_TOLERANCE`, `LOSS_RTOL_FIRST`, `LOSS_RTOL_LATER`); the benchmarks time both paths side by side.
What each `FastConfig` switch does, and how the defaults were chosen: docs/fast-path.md.
"""
from perceptual.fast.config import CL as CL
from perceptual.fast.config import (
    LOSS_RTOL_FIRST,
    LOSS_RTOL_LATER,
    MEAN_ABS_TOLERANCE,
    TOLERANCES,
    FastConfig,
    best_config,
    tolerance,
    with_compile,
)
from perceptual.fast.config import TASKS as TASKS
from perceptual.fast.config import Task as Task
from perceptual.fast.inference import FastStylizer
from perceptual.fast.objective import FastFeatures, fast_feature_loss, fast_objective, fast_style_loss_fn
from perceptual.fast.surgery import fold_batchnorm_, pad_thin_convs_
from perceptual.fast.tiling import RECEPTIVE_REL_THRESHOLD as RECEPTIVE_REL_THRESHOLD
from perceptual.fast.tiling import default_alignment, receptive_radius, tiled_forward
from perceptual.fast.training import (
    FastTrainer,
    fast_train_step,
    load_optimizer_state,
    reference_train_step,
)
from perceptual.fast.training import LossFn as LossFn

# imported `X as X` above: names outside __all__ that perceptual.fast has always offered (bench.training.exec_path uses Task)
__all__ = [
    "LOSS_RTOL_FIRST",
    "LOSS_RTOL_LATER",
    "MEAN_ABS_TOLERANCE",
    "TOLERANCES",
    "FastConfig",
    "FastFeatures",
    "FastStylizer",
    "FastTrainer",
    "best_config",
    "default_alignment",
    "fast_feature_loss",
    "fast_objective",
    "fast_style_loss_fn",
    "fast_train_step",
    "fold_batchnorm_",
    "load_optimizer_state",
    "pad_thin_convs_",
    "receptive_radius",
    "reference_train_step",
    "tiled_forward",
    "tolerance",
    "with_compile",
]
