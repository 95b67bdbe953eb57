"""The catalog: every image file the suite uses, with its sha256 and where to fetch it, plus which dataset plays which role.

File-level facts live in `data/catalog.tsv`, generated (never hand-edited) by `python -m data build-catalog`;
dataset-level facts and the role defaults live here, in code, so that they are reviewed like code. Guarantee: no
evaluation file is in a default training corpus, and coco_val2017 (Fig. 5) is never trainable. Each role default
and why: docs/data.md.
"""
from __future__ import annotations

import csv
import difflib
import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from data.files import atomic_write_text, sha256_file

CATALOG_PATH = Path(__file__).resolve().parent / "catalog.tsv"
CATALOG_COLUMNS = ("dataset", "relative_path", "sha256", "bytes", "width", "height", "url", "canonical_url")
MANIFEST_COLUMNS = ("relative_path", "sha256", "bytes", "width", "height", "source_repo", "source_commit",
                    "source_path")
BUILD_COMMAND = "python -m data build-catalog ../shared/data/MANIFEST.tsv"


class UnknownDatasetError(KeyError):
    """A dataset name that is not in the catalog; the message lists the known names (KeyError so `in`-style code works)."""

    def __init__(self, name: str, known: list[str], hint: str = ""):
        self.name = name
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        msg = f"unknown dataset {name!r}"
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        msg += f"; known datasets: {', '.join(known)}"
        if hint:
            msg += f". {hint}"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: where it sits under the mirror/cache root, where it really comes from, and whether it may train."""

    name: str
    folder: str  # relative to the mirror root, e.g. "sr/Set5"
    role: str  # sr_eval | style | content | train | holdout
    description: str
    canonical: str  # the canonical upstream source, for people (the per-file `url` is what fetch uses)
    licence: str
    trainable: bool


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("Set5", "sr/Set5", "sr_eval", "5 HR images (BMP, uncropped), SR evaluation",
                    "SRCNN distribution (Dong et al.), http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html (*_GT.bmp); "
                    "Bevilacqua et al., BMVC 2012",
                    "none stated; research benchmarking only", False),
        DatasetInfo("Set14", "sr/Set14", "sr_eval",
                    "14 HR images (BMP, uncropped), SR evaluation; bridge is 1-channel, man is RGB with gray content",
                    "SRCNN distribution of Zeyde et al.'s Set14, http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html",
                    "none stated; research benchmarking only", False),
        DatasetInfo("BSD100", "sr/BSD100", "sr_eval",
                    "the 100 BSDS300 test JPEGs (original files); decode with libjpeg defaults (PIL) to match "
                    "published numbers",
                    "BSDS300 http://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz "
                    "(images/test/<id>.jpg) = BSDS500 val split",
                    "Berkeley research-use terms (Corel images)", False),
        DatasetInfo("styles", "style/styles", "style",
                    "22 style images (the paper's Starry Night, The Muse, Composition VII, Great Wave, and others)",
                    "jcjohnson/fast-neural-style images/styles, jcjohnson/neural-style examples/inputs, "
                    "pytorch/examples fast_neural_style/images/style-images",
                    "artworks keep their own status (some still copyrighted); research use only", False),
        DatasetInfo("content", "style/content", "content", "6 content photos (chicago, amber, ...)",
                    "jcjohnson/fast-neural-style images/content, jcjohnson/neural-style examples/inputs, "
                    "pytorch/examples fast_neural_style/images/content-images",
                    "research use only", False),
        DatasetInfo("coco_train2017", "train/coco/train2017", "train", "208 MS-COCO train2017 images",
                    "http://images.cocodataset.org/train2017/<file_name> (presumed identical, unchecked offline)",
                    "per-image Flickr Creative Commons licences plus COCO terms of use; research use", True),
        DatasetInfo("coco_val2017", "train/coco/val2017", "holdout",
                    "283 MS-COCO val2017 images: the held-out Fig. 5 evaluation set, NEVER train on it",
                    "http://images.cocodataset.org/val2017/<file_name> (presumed identical, unchecked offline)",
                    "per-image Flickr Creative Commons licences plus COCO terms of use; research use", False),
        DatasetInfo("bsds500_train", "train/bsds500_train", "train",
                    "200 BSDS500 train images (= BSDS300 train, 'BSD200')",
                    "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz "
                    "(BSR/BSDS500/data/images/train)",
                    "Berkeley research-use terms", True),
        DatasetInfo("bsds500_test", "train/bsds500_test", "train",
                    "200 BSDS500 test images (added in BSDS500; disjoint from BSD100)",
                    "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz "
                    "(BSR/BSDS500/data/images/test)",
                    "Berkeley research-use terms", True),
        DatasetInfo("t91", "train/t91", "train",
                    "Yang et al.'s 91-image SR training set (t36 and t65 are byte-identical)",
                    "SRCNN distribution, http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html (Train/)",
                    "none stated; research use only", True),
    )
}

# Roles (see the module docstring for why).
SR_EVAL_SETS: tuple[str, ...] = ("Set5", "Set14", "BSD100")
DEFAULT_TRAIN_CORPUS: tuple[str, ...] = ("coco_train2017", "bsds500_train")
SRCNN_TRAIN_CORPUS: tuple[str, ...] = (*DEFAULT_TRAIN_CORPUS, "t91")
FIG5_EVAL_SET = "coco_val2017"
FIG5_N_IMAGES = 50
FIG5_STYLE = "la_muse"
PAPER_STYLES: tuple[str, ...] = ("starry_night_crop", "la_muse", "composition_vii", "wave_crop")
# Alternative spellings of style images (every file stem in `styles` is already a short name).
STYLE_ALIASES: dict[str, str] = {
    "the_muse": "la_muse",
    "muse": "la_muse",
    "great_wave": "wave_crop",
    "the_great_wave": "wave_crop",
    "rain_princess": "rain-princess",
    "scream": "the_scream",
}
# Spec aliases understood by data.fetch.resolve_images: a name that stands for several catalog datasets.
CORPUS_ALIASES: dict[str, tuple[str, ...]] = {
    "train": DEFAULT_TRAIN_CORPUS,
    "srcnn_train": SRCNN_TRAIN_CORPUS,
}


@dataclass(frozen=True)
class CatalogEntry:
    """One file of the catalog: its place under the mirror/cache root, its expected bytes, and its fetch URL."""

    dataset: str
    relative_path: str
    sha256: str
    bytes: int
    width: int
    height: int
    url: str  # exact bytes: raw.githubusercontent.com/<repo>/<commit>/<path> of the snapshot the mirror came from
    canonical_url: str  # the canonical upstream file where one exists per file (COCO), else ""

    @property
    def name(self) -> str:
        return PurePosixPath(self.relative_path).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.relative_path).stem


def raw_github_url(repo: str, commit: str, path: str) -> str:
    """The URL that serves `path` of `repo` at `commit` byte for byte (SOURCES.md: how the mirror was staged)."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path)}"


def _canonical_file_url(info: DatasetInfo, file_name: str) -> str:
    if info.name in ("coco_train2017", "coco_val2017"):
        split = info.name.split("_", 1)[1]
        return f"http://images.cocodataset.org/{split}/{file_name}"
    return ""


def _folder_to_dataset() -> dict[str, DatasetInfo]:
    return {d.folder: d for d in DATASETS.values()}


def build_catalog_entries(manifest: Path | str) -> list[CatalogEntry]:
    """Turn the mirror's MANIFEST.tsv into catalog entries; a file in an unknown folder is an error (update DATASETS)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist: pass the mirror's MANIFEST.tsv "
                                f"(e.g. {BUILD_COMMAND})")
    by_folder = _folder_to_dataset()
    entries: list[CatalogEntry] = []
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest} lacks columns {missing}; expected {list(MANIFEST_COLUMNS)}")
        for row in reader:
            rel = row["relative_path"]
            folder = str(PurePosixPath(rel).parent)
            info = by_folder.get(folder)
            if info is None:
                raise ValueError(f"{manifest}: {rel} is in folder {folder!r}, which no dataset in data/catalog.py "
                                 f"DATASETS claims; add a DatasetInfo for it, then rerun `{BUILD_COMMAND}`")
            entries.append(CatalogEntry(
                dataset=info.name, relative_path=rel, sha256=row["sha256"].lower(), bytes=int(row["bytes"]),
                width=int(row["width"]), height=int(row["height"]),
                url=raw_github_url(row["source_repo"], row["source_commit"], row["source_path"]),
                canonical_url=_canonical_file_url(info, PurePosixPath(rel).name)))
    order = {name: i for i, name in enumerate(DATASETS)}
    entries.sort(key=lambda e: (order[e.dataset], e.relative_path))
    _validate(entries, str(manifest))
    return entries


def render_catalog(entries: list[CatalogEntry], manifest_sha256: str) -> str:
    """The catalog.tsv text: two comment lines (how it was made, from which manifest), a header, one row per file."""
    out = io.StringIO()
    out.write(f"# generated by `{BUILD_COMMAND}`; do not edit by hand\n")
    out.write(f"# source MANIFEST.tsv sha256={manifest_sha256}\n")
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(CATALOG_COLUMNS)
    for e in entries:
        writer.writerow([getattr(e, c) for c in CATALOG_COLUMNS])
    return out.getvalue()


def write_catalog(manifest: Path | str, out: Path | str = CATALOG_PATH) -> Path:
    """Regenerate catalog.tsv from a manifest (atomically) and return its path."""
    text = render_catalog(build_catalog_entries(manifest), sha256_file(manifest))
    path = atomic_write_text(out, text)
    load_catalog.cache_clear()
    return path


def _validate(entries: list[CatalogEntry], where: str) -> None:
    seen: set[str] = set()
    for e in entries:
        if e.dataset not in DATASETS:
            raise ValueError(f"{where}: unknown dataset {e.dataset!r} for {e.relative_path}")
        if len(e.sha256) != 64 or any(c not in "0123456789abcdef" for c in e.sha256):
            raise ValueError(f"{where}: bad sha256 {e.sha256!r} for {e.relative_path}")
        if e.relative_path in seen:
            raise ValueError(f"{where}: {e.relative_path} listed twice")
        if not e.relative_path.startswith(DATASETS[e.dataset].folder + "/"):
            raise ValueError(f"{where}: {e.relative_path} is outside {e.dataset}'s folder {DATASETS[e.dataset].folder}")
        seen.add(e.relative_path)


@functools.lru_cache(maxsize=4)
def load_catalog(path: Path | str = CATALOG_PATH) -> dict[str, tuple[CatalogEntry, ...]]:
    """Read catalog.tsv once per process: dataset name -> its entries in name order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the data catalog {path} is missing; regenerate it with `{BUILD_COMMAND}`")
    with open(path, newline="", encoding="utf-8") as f:
        lines = [line for line in f if not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    if tuple(reader.fieldnames or ()) != CATALOG_COLUMNS:
        raise ValueError(f"{path} has columns {reader.fieldnames}, expected {list(CATALOG_COLUMNS)}; "
                         f"regenerate it with `{BUILD_COMMAND}`")
    entries = [CatalogEntry(dataset=r["dataset"], relative_path=r["relative_path"], sha256=r["sha256"],
                            bytes=int(r["bytes"]), width=int(r["width"]), height=int(r["height"]), url=r["url"],
                            canonical_url=r["canonical_url"]) for r in reader]
    _validate(entries, str(path))
    grouped: dict[str, list[CatalogEntry]] = {name: [] for name in DATASETS}
    for e in entries:
        grouped[e.dataset].append(e)
    return {name: tuple(sorted(es, key=lambda e: e.relative_path)) for name, es in grouped.items()}


def dataset_names() -> list[str]:
    """All catalog dataset names, in catalog order (SR eval sets, style, content, training, held-out)."""
    return list(DATASETS)


def canonical_name(name: str) -> str:
    """Map a user's spelling (any case, or the mirror folder such as `sr/Set5`) to the catalog name, or raise."""
    if name in DATASETS:
        return name
    lowered = {n.lower(): n for n in DATASETS}
    folders = {d.folder.lower(): d.name for d in DATASETS.values()}
    key = name.strip().strip("/").lower()
    if key in lowered:
        return lowered[key]
    if key in folders:
        return folders[key]
    raise UnknownDatasetError(name, dataset_names())


def is_dataset_name(name: str) -> bool:
    """True when `name` names a catalog dataset (in any of the spellings canonical_name accepts)."""
    try:
        canonical_name(name)
    except UnknownDatasetError:
        return False
    return True


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo of a catalog dataset (name in any accepted spelling)."""
    return DATASETS[canonical_name(name)]


def dataset_entries(name: str) -> tuple[CatalogEntry, ...]:
    """The catalog entries of one dataset, in file-name order."""
    return load_catalog()[canonical_name(name)]


def dataset_digest(name: str) -> str:
    """One sha256 standing for a whole dataset's contents (over its `sha256  relative_path` lines), for run.json."""
    h = hashlib.sha256()
    for e in dataset_entries(name):
        h.update(f"{e.sha256}  {e.relative_path}\n".encode())
    return h.hexdigest()


def _image_names(dataset: str) -> dict[str, CatalogEntry]:
    return {e.stem: e for e in dataset_entries(dataset)}


def style_names() -> list[str]:
    """Short names of the style images (their file stems): la_muse, starry_night_crop, wave_crop, candy, ..."""
    return sorted(_image_names("styles"))


def content_names() -> list[str]:
    """Short names of the content images (their file stems): chicago, amber, ..."""
    return sorted(_image_names("content"))


def image_entry(short_name: str) -> CatalogEntry | None:
    """The catalog entry of a style or content image given its short name or a STYLE_ALIASES spelling, else None."""
    key = STYLE_ALIASES.get(short_name, short_name)
    for dataset in ("styles", "content"):
        entry = _image_names(dataset).get(key)
        if entry is not None:
            return entry
    return None
