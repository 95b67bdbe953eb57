"""Where a catalog file is found, checked and (if asked) downloaded: the mirror, then the cache, then pooch.

Resolution order for one file (its catalog `relative_path`, e.g. `sr/Set5/baby.bmp`):
  (a) the local mirror: `$PERCEPTUAL_DATA/<relative_path>`; when PERCEPTUAL_DATA is unset, `<checkout>/../shared/data`
      if that folder exists; PERCEPTUAL_DATA="" turns the mirror off. The mirror is only ever read.
  (b) the cache: `$PERCEPTUAL_CACHE/data/<relative_path>` (default ~/.cache/perceptual-repro/data).
  (c) a download with pooch (catalog URL + sha256) into the cache: done by `python -m data fetch NAME`, by
      `fetch_dataset`, or on demand when `download=True` (or PERCEPTUAL_DOWNLOAD=1) is given to `dataset_files`.
      Otherwise a missing file is an error that names the fetch command, so a benchmark run never starts a surprise
      download.
Every resolved file is checked against its sha256. Results are remembered for the process, keyed by path, size,
mtime, ctime and inode, so the 1,129 files are hashed once per process, not on every call. A corrupt mirror file is
skipped when the cache holds a good copy (with a warning), because the mirror is read-only to this suite.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pooch

from data.catalog import (
    CORPUS_ALIASES,
    DATASETS,
    CatalogEntry,
    UnknownDatasetError,
    canonical_name,
    dataset_entries,
    dataset_names,
    image_entry,
    is_dataset_name,
)
from data.files import HashMismatchError, sha256_file

__all__ = [
    "ENV_CACHE",
    "ENV_DATA",
    "ENV_DOWNLOAD",
    "IMAGE_EXTENSIONS",
    "CacheNotWritableError",
    "DataConfigError",
    "DatasetNotAvailableError",
    "DatasetStatus",
    "FetchError",
    "FetchReport",
    "FileState",
    "HashMismatchError",
    "UnknownDatasetError",
    "cache_root",
    "clear_verification_cache",
    "dataset_files",
    "dataset_names",
    "dataset_status",
    "datasets_in_spec",
    "ensure_cache_writable",
    "fetch_command",
    "fetch_dataset",
    "fetch_file",
    "folder_is_held_out",
    "list_images",
    "locate",
    "mirror_root",
    "resolve_file",
    "resolve_images",
    "style_image",
    "verify_dataset",
]

log = logging.getLogger(__name__)

ENV_DATA = "PERCEPTUAL_DATA"
ENV_CACHE = "PERCEPTUAL_CACHE"
ENV_DOWNLOAD = "PERCEPTUAL_DOWNLOAD"
CHECKOUT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = CHECKOUT.parent / "shared" / "data"
DEFAULT_CACHE = Path("~/.cache/perceptual-repro/data")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm",
                              ".gif"})

Downloader = Callable[..., Any]
# The pooch downloader used when none is passed: None lets pooch pick one from the URL (HTTPDownloader for https).
# Tests replace it with a function that copies local files, so the real pooch.retrieve path (temporary file, sha256
# check, move into the cache) runs without a network.
DEFAULT_DOWNLOADER: Downloader | None = None


class DataConfigError(ValueError):
    """An environment variable points somewhere unusable (e.g. PERCEPTUAL_DATA names a folder that does not exist)."""


class DatasetNotAvailableError(FileNotFoundError):
    """Some or all files of a dataset are neither in the mirror nor in the cache; the message names the fetch command."""

    def __init__(self, dataset: str, missing: list[str], n_files: int):
        self.dataset, self.missing, self.n_files = dataset, missing, n_files
        self.command = fetch_command([dataset])
        where = f"looked in the mirror ({_mirror_description()}) and the cache ({cache_root()})"
        if len(missing) == n_files:
            msg = f"dataset {dataset!r} ({n_files} files) is not available locally: {where}."
        else:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            msg = f"dataset {dataset!r} is missing {len(missing)} of its {n_files} files: {shown}; {where}."
        msg += (f" Fetch it with `{self.command}` (or set {ENV_DATA} to a folder holding the data, laid out as in "
                f"MANIFEST.tsv; or {ENV_DOWNLOAD}=1 to fetch on demand).")
        super().__init__(msg)


class CacheNotWritableError(PermissionError):
    """The cache folder cannot be created or written; the message names PERCEPTUAL_CACHE."""


class FetchError(RuntimeError):
    """A download failed (no network, HTTP error, or bytes that do not match the catalog); nothing was saved."""


def mirror_root() -> Path | None:
    """The mirror folder: $PERCEPTUAL_DATA, else <checkout>/../shared/data when it exists, else None ("" = off)."""
    value = os.environ.get(ENV_DATA)
    if value is not None:
        if value == "":
            return None
        root = Path(value).expanduser()
        if not root.is_dir():
            raise DataConfigError(f"{ENV_DATA}={value} is not a folder: point it at the data mirror (the folder "
                                  f"holding MANIFEST.tsv and sr/, style/, train/), or unset it "
                                  f"({ENV_DATA}= with an empty value turns the mirror off)")
        return root
    return DEFAULT_MIRROR if DEFAULT_MIRROR.is_dir() else None


def _mirror_description() -> str:
    value = os.environ.get(ENV_DATA)
    if value == "":
        return f"turned off: {ENV_DATA} is empty"
    if value is not None:
        return f"{ENV_DATA}={value}"
    if DEFAULT_MIRROR.is_dir():
        return str(DEFAULT_MIRROR)
    return f"none: {ENV_DATA} is unset and {DEFAULT_MIRROR} does not exist"


def cache_root() -> Path:
    """The data cache: $PERCEPTUAL_CACHE/data, else ~/.cache/perceptual-repro/data (created only when fetching).

    PERCEPTUAL_CACHE is the suite's one cache root; the weights live beside the data in its `weights/` folder.
    """
    value = os.environ.get(ENV_CACHE)
    return Path(value).expanduser() / "data" if value else DEFAULT_CACHE.expanduser()


def fetch_command(names: Iterable[str]) -> str:
    """The shell command that fetches these datasets (quoted in error messages)."""
    return "python -m data fetch " + " ".join(names)


# -- verification memo -----------------------------------------------------------------------------------------------

_HASHES: dict[tuple[str, int, int, int, int], str] = {}


def clear_verification_cache() -> None:
    """Forget every remembered hash (tests; `verify` re-hashes with force=True instead)."""
    _HASHES.clear()


def _file_sha256(path: Path, force: bool = False) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if force or key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


# -- locating one file -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileState:
    """Where one catalog file was found and whether its bytes are right."""

    entry: CatalogEntry
    where: str  # mirror | cache | missing
    path: Path | None
    ok: bool  # present and verified (or, with verify=False, present with the right size)
    actual_sha256: str | None = None  # set when hashed
    verified: bool = False  # True when the sha256 was checked (not just the size)
    note: str = ""


def _check(entry: CatalogEntry, path: Path, where: str, verify: bool, force: bool) -> FileState:
    if not verify:
        ok = path.stat().st_size == entry.bytes
        return FileState(entry, where, path, ok, note="" if ok else "wrong size")
    actual = _file_sha256(path, force)
    return FileState(entry, where, path, actual == entry.sha256, actual, True)


def locate(entry: CatalogEntry, verify: bool = True, force: bool = False) -> FileState:
    """Find one catalog file in the mirror, then the cache; never downloads, never raises for missing/corrupt files."""
    mirror = mirror_root()
    bad: FileState | None = None
    if mirror is not None and (mirror / entry.relative_path).is_file():
        state = _check(entry, mirror / entry.relative_path, "mirror", verify, force)
        if state.ok:
            return state
        bad = state
    cached = cache_root() / entry.relative_path
    if cached.is_file():
        state = _check(entry, cached, "cache", verify, force)
        if state.ok:
            if bad is not None:
                log.warning("mirror copy %s is corrupt (sha256 %s, expected %s); using the verified cache copy %s",
                            bad.path, bad.actual_sha256, entry.sha256, cached)
            return state
        bad = bad or state
    return bad or FileState(entry, "missing", None, False)


def _mismatch(state: FileState) -> HashMismatchError:
    name = state.entry.dataset
    if state.where == "mirror":
        fix = (f"The mirror is read-only to this suite: run `{fetch_command([name])}` to put a verified copy in the "
               f"cache (it is then used instead of the corrupt mirror file), or restore the mirror file from "
               f"{state.entry.url}.")
    else:
        fix = f"Run `{fetch_command([name])}` to download it again (the corrupt cached copy is replaced)."
    actual = state.actual_sha256 or sha256_file(state.path)  # type: ignore[arg-type]
    return HashMismatchError(state.path, state.entry.sha256, actual, fix)  # type: ignore[arg-type]


def _want_download(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


def resolve_file(entry: CatalogEntry, download: bool | None = None) -> Path:
    """The verified local path of one catalog file; downloads it into the cache only when `download` allows."""
    state = locate(entry)
    if state.ok:
        return state.path  # type: ignore[return-value]
    if _want_download(download):
        return fetch_file(entry)
    if state.where == "missing":
        raise DatasetNotAvailableError(entry.dataset, [entry.relative_path], len(dataset_entries(entry.dataset)))
    raise _mismatch(state)


def dataset_files(name: str, download: bool | None = None) -> list[Path]:
    """The verified files of a catalog dataset in file-name order; raises naming what is missing or corrupt and the fix.

    `download`: None follows $PERCEPTUAL_DOWNLOAD (default off); True fetches missing/corrupt files into the cache.
    """
    name = canonical_name(name)
    entries = dataset_entries(name)
    states = [locate(e) for e in entries]
    if _want_download(download) and not all(s.ok for s in states):
        fetch_dataset(name)
        states = [locate(e) for e in entries]
    corrupt = [s for s in states if s.where != "missing" and not s.ok]
    if corrupt:
        if len(corrupt) > 1:
            log.error("dataset %s: %d corrupt files: %s", name, len(corrupt),
                      ", ".join(str(s.path) for s in corrupt))
        raise _mismatch(corrupt[0])
    missing = [s.entry.relative_path for s in states if s.where == "missing"]
    if missing:
        raise DatasetNotAvailableError(name, missing, len(entries))
    return [s.path for s in states]  # type: ignore[misc]


# -- status and verification -----------------------------------------------------------------------------------------

@dataclass
class DatasetStatus:
    """A dataset's local state, for `python -m data list/verify` and for run.json."""

    name: str
    n_files: int
    bytes: int
    n_mirror: int = 0
    n_cache: int = 0
    missing: list[str] = field(default_factory=list)  # relative paths
    corrupt: list[FileState] = field(default_factory=list)
    verified: bool = False  # every present file's sha256 was checked

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    @property
    def where(self) -> str:
        """mirror | cache | mirror+cache | missing | partial | corrupt."""
        if self.corrupt:
            return "corrupt"
        if len(self.missing) == self.n_files:
            return "missing"
        if self.missing:
            return "partial"
        if self.n_mirror and self.n_cache:
            return "mirror+cache"
        return "mirror" if self.n_mirror else "cache"

    def problems(self) -> list[str]:
        """One line per missing or corrupt file, naming the file, both hashes and the fix."""
        lines = [str(_mismatch(s)) for s in self.corrupt]
        lines += [f"missing: {rel} (fetch with `{fetch_command([self.name])}`)" for rel in self.missing]
        return lines


def dataset_status(name: str, verify: bool = True, force: bool = False) -> DatasetStatus:
    """Where each file of a dataset is and whether it verifies; never raises for missing or corrupt files."""
    name = canonical_name(name)
    entries = dataset_entries(name)
    status = DatasetStatus(name, len(entries), sum(e.bytes for e in entries), verified=verify)
    for e in entries:
        s = locate(e, verify=verify, force=force)
        if s.where == "missing":
            status.missing.append(e.relative_path)
        elif not s.ok:
            status.corrupt.append(s)
        elif s.where == "mirror":
            status.n_mirror += 1
        else:
            status.n_cache += 1
    return status


def verify_dataset(name: str) -> DatasetStatus:
    """Re-hash every file of a dataset now (ignoring the in-process memo) and return its status."""
    return dataset_status(name, verify=True, force=True)


# -- fetching --------------------------------------------------------------------------------------------------------

def ensure_cache_writable(root: Path | None = None) -> Path:
    """Create the cache folder and prove a file can be written there, or raise CacheNotWritableError naming the fix."""
    root = root or cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CacheNotWritableError(
            f"the data cache {root} is not writable ({e.strerror or e}); set {ENV_CACHE} to a writable folder, "
            f"e.g. `export {ENV_CACHE}=/tmp/perceptual-repro-data`") from e
    return root


@dataclass
class FetchReport:
    """What `fetch_dataset` did per file: already in the mirror, already cached, or downloaded."""

    name: str
    in_mirror: int = 0
    in_cache: int = 0
    downloaded: list[str] = field(default_factory=list)


def fetch_file(entry: CatalogEntry, downloader: Downloader | None = None, progressbar: bool = False) -> Path:
    """Download one catalog file into the cache with pooch.retrieve (checked against its sha256 before it lands)."""
    root = ensure_cache_writable()
    target = root / entry.relative_path
    import requests  # pooch's own dependency; imported lazily like pooch does

    try:
        path = pooch.retrieve(entry.url, known_hash=f"sha256:{entry.sha256}", fname=target.name,
                              path=target.parent, downloader=downloader or DEFAULT_DOWNLOADER,
                              progressbar=progressbar)
    except ValueError as e:  # pooch: downloaded bytes do not match known_hash (the temporary file is deleted)
        raise FetchError(f"downloaded {entry.relative_path} from {entry.url}, but its bytes do not match the "
                         f"catalog ({e}); nothing was saved. Retry `{fetch_command([entry.dataset])}`; if it keeps "
                         f"failing the upstream file changed and data/catalog.tsv needs review.") from e
    except PermissionError as e:
        raise CacheNotWritableError(f"cannot write {target} ({e}); set {ENV_CACHE} to a writable folder") from e
    except (requests.RequestException, OSError) as e:
        raise FetchError(
            f"could not download {entry.relative_path} from {entry.url}: {type(e).__name__}: {e}. There is no local "
            f"copy: mirror {_mirror_description()}; cache {root}. Fix: connect to the internet and rerun "
            f"`{fetch_command([entry.dataset])}`, or set {ENV_DATA} to a folder holding the data (laid out as in "
            f"MANIFEST.tsv).") from e
    return Path(path)


def fetch_dataset(name: str, downloader: Downloader | None = None, progressbar: bool = False) -> FetchReport:
    """Make every file of a dataset available: keep verified mirror/cache copies, download the rest into the cache."""
    name = canonical_name(name)
    report = FetchReport(name)
    for e in dataset_entries(name):
        state = locate(e)
        if state.ok:
            if state.where == "mirror":
                report.in_mirror += 1
            else:
                report.in_cache += 1
            continue
        if state.where == "cache":
            log.warning("cached %s is corrupt (sha256 %s); downloading it again", state.path, state.actual_sha256)
        fetch_file(e, downloader=downloader, progressbar=progressbar)
        report.downloaded.append(e.relative_path)
    return report


# -- image specs: a catalog dataset, a folder, or one image ----------------------------------------------------------

def list_images(folder: Path | str) -> list[Path]:
    """The image files directly inside `folder` (by extension, hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        nested = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        hint = (f"; its subfolders hold {nested} images: pass the subfolder itself" if nested else "")
        raise FileNotFoundError(f"{folder} holds no image files (extensions {', '.join(sorted(IMAGE_EXTENSIONS))})"
                                f"{hint}")
    return files


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~")) or \
        Path(spec).suffix.lower() in IMAGE_EXTENSIONS


def resolve_images(spec: str | os.PathLike, download: bool | None = None) -> tuple[str, list[Path]]:
    """Turn a user's image spec into (display name, files).

    Accepted, in this order: a catalog dataset name (`Set5`, `coco_train2017`, any case); several joined with `+`
    (`coco_train2017+bsds500_train`); a corpus alias (`train` = the default training corpus, `srcnn_train` = the default corpus plus t91);
    a style/content image short name (`la_muse`, `chicago`); a folder of images (its name is the display name; any
    folder works, e.g. MS-COCO train2014); a single image file (its stem is the display name).
    Catalog files are verified; folder and single-image files are listed as they are (decode errors surface later).
    """
    text = os.fspath(spec)
    if not text.strip():
        raise ValueError("empty image spec: give a dataset name, a folder of images or an image file")
    if not _looks_like_path(text):
        if text in CORPUS_ALIASES:
            names = list(CORPUS_ALIASES[text])
            return "+".join(names), [p for n in names for p in dataset_files(n, download)]
        parts = text.split("+")
        if all(is_dataset_name(p) for p in parts):
            names = [canonical_name(p) for p in parts]
            return "+".join(names), [p for n in names for p in dataset_files(n, download)]
        entry = image_entry(text)
        if entry is not None:
            return entry.stem, [resolve_file(entry, download)]
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve().name, list_images(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"{path} is not an image file (extension {path.suffix!r}; expected one of "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        return path.stem, [path]
    if path.suffix and path.parent == Path(".") and (entry := image_entry(path.stem)) is not None:
        return entry.stem, [resolve_file(entry, download)]  # `la_muse.jpg` given as a name, not a local file
    if _looks_like_path(text):
        raise FileNotFoundError(f"{text} does not exist: give an existing folder of images or image file, or a "
                                f"catalog dataset name ({', '.join(dataset_names())})")
    raise UnknownDatasetError(text, dataset_names() + sorted(CORPUS_ALIASES),
                              hint="Also accepted: a style/content image short name, a folder of images, "
                                   "or an image file path")


def style_image(name: str | os.PathLike, download: bool | None = None) -> Path:
    """The verified file of a style (or content) image by short name (`la_muse`, `the_muse`, ...) or an image path."""
    label, files = resolve_images(name, download)
    if len(files) != 1:
        raise ValueError(f"{name!r} names {len(files)} images ({label}); expected one style image")
    return files[0]


def folder_is_held_out(folder: Path) -> str | None:
    """If `folder` is the mirror or cache copy of a non-trainable dataset, return that dataset's name."""
    try:
        target = folder.resolve()
    except OSError:
        return None
    roots: list[Path] = [cache_root()]
    try:
        m = mirror_root()
        if m is not None:
            roots.insert(0, m)
    except DataConfigError:
        pass
    for info in DATASETS.values():
        if info.trainable:
            continue
        for root in roots:
            if (root / info.folder).resolve() == target:
                return info.name
    return None


def datasets_in_spec(spec: str | os.PathLike) -> list[str]:
    """The catalog dataset names a spec refers to (empty for folders and image files)."""
    text = os.fspath(spec)
    if _looks_like_path(text):
        return []
    if text in CORPUS_ALIASES:
        return list(CORPUS_ALIASES[text])
    parts = text.split("+")
    if all(is_dataset_name(p) for p in parts):
        return [canonical_name(p) for p in parts]
    entry = image_entry(text)
    return [entry.dataset] if entry is not None else []
