"""Data layer: catalog vs. the mirror, resolution order (mirror, cache, pooch), errors that name the file and the fix,
the CLI, and ImageFolderCorpus. Fetch tests use a fake pooch *downloader* (no network); pooch.retrieve itself runs."""
from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from data import catalog, fetch
from data.catalog import (
    DATASETS,
    DEFAULT_TRAIN_CORPUS,
    FIG5_EVAL_SET,
    FIG5_STYLE,
    PAPER_STYLES,
    SR_EVAL_SETS,
    UnknownDatasetError,
    dataset_entries,
    load_catalog,
)
from data.cli import main as cli_main
from data.corpus import ImageFolderCorpus
from data.fetch import (
    CacheNotWritableError,
    DataConfigError,
    DatasetNotAvailableError,
    FetchError,
    dataset_files,
    dataset_status,
    fetch_dataset,
    resolve_images,
    verify_dataset,
)
from data.files import HashMismatchError, sha256_file

REAL_MIRROR = fetch.DEFAULT_MIRROR
needs_mirror = pytest.mark.skipif(not (REAL_MIRROR / "MANIFEST.tsv").is_file(),
                                  reason=f"the shared data mirror {REAL_MIRROR} is not on this machine")
EXPECTED_COUNTS = {"Set5": 5, "Set14": 14, "BSD100": 100, "styles": 22, "content": 6, "coco_train2017": 208,
                   "coco_val2017": 283, "bsds500_train": 200, "bsds500_test": 200, "t91": 91}


@pytest.fixture(autouse=True)
def _fresh_memo():
    fetch.clear_verification_cache()
    yield
    fetch.clear_verification_cache()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty tmp mirror and cache; PERCEPTUAL_DOWNLOAD off."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache" / "data"
    mirror.mkdir()
    monkeypatch.setenv("PERCEPTUAL_DATA", str(mirror))
    monkeypatch.setenv("PERCEPTUAL_CACHE", str(cache.parent))
    monkeypatch.delenv("PERCEPTUAL_DOWNLOAD", raising=False)
    return mirror, cache


def copy_dataset(name: str, root: Path) -> list[Path]:
    out = []
    for e in dataset_entries(name):
        dst = root / e.relative_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL_MIRROR / e.relative_path, dst)
        out.append(dst)
    return out


def flip_byte(path: Path, offset: int = 100) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


class FakeDownloader:
    """Stands in for pooch's HTTPDownloader: serves catalog URLs from the real mirror (or bad bytes / an error)."""

    def __init__(self, mode: str = "ok"):
        self.mode, self.urls = mode, []
        self.by_url = {e.url: e for es in load_catalog().values() for e in es}

    def __call__(self, url: str, output_file, pooch_obj, check_only: bool = False):
        self.urls.append(url)
        if self.mode == "offline":
            raise requests.exceptions.ConnectionError(f"Failed to resolve host for {url}")
        data = (REAL_MIRROR / self.by_url[url].relative_path).read_bytes()
        if self.mode == "partial":
            data = data[: len(data) // 2]
        Path(output_file).write_bytes(data)


# -- catalog ---------------------------------------------------------------------------------------------------------

def test_catalog_counts_and_roles():
    cat = load_catalog()
    assert {n: len(cat[n]) for n in cat} == EXPECTED_COUNTS
    assert sum(EXPECTED_COUNTS.values()) == 1129
    for name in SR_EVAL_SETS + (FIG5_EVAL_SET, "styles", "content"):
        assert not DATASETS[name].trainable, name
    assert FIG5_EVAL_SET not in DEFAULT_TRAIN_CORPUS and all(DATASETS[n].trainable for n in DEFAULT_TRAIN_CORPUS)
    styles = catalog.style_names()
    assert set(PAPER_STYLES) <= set(styles) and FIG5_STYLE in styles
    assert {"la_muse", "starry_night", "wave_crop", "composition_vii", "candy", "mosaic", "udnie"} <= set(styles)
    assert catalog.image_entry("the_muse").stem == "la_muse"


def test_training_corpus_shares_nothing_with_evaluation_sets():
    # every trainable dataset, not only the default corpus: bsds500_test and t91 may be passed with --corpus
    train = {e.sha256 for n in DATASETS if DATASETS[n].trainable for e in dataset_entries(n)}
    assert set(DEFAULT_TRAIN_CORPUS) == {"coco_train2017", "bsds500_train"}  # train splits only
    held = {e.sha256 for n in SR_EVAL_SETS + (FIG5_EVAL_SET,) for e in dataset_entries(n)}
    assert not train & held
    bsd100_ids = {e.stem for e in dataset_entries("BSD100")}
    assert not bsd100_ids & {e.stem for n in ("bsds500_train", "bsds500_test") for e in dataset_entries(n)}


def test_catalog_urls():
    for es in load_catalog().values():
        for e in es:
            parts = e.url.split("/")
            assert e.url.startswith("https://raw.githubusercontent.com/") and len(parts[5]) == 40, e.url
    coco = dataset_entries("coco_val2017")[0]
    assert coco.canonical_url == f"http://images.cocodataset.org/val2017/{coco.name}"
    udnie = catalog.image_entry("udnie_pytorch-examples")
    assert udnie.url.endswith("fast_neural_style/images/style-images/udnie.jpg")  # renamed file: source_path


@needs_mirror
def test_committed_catalog_is_generated_from_the_mirror_manifest(tmp_path):
    manifest = REAL_MIRROR / "MANIFEST.tsv"
    assert catalog.build_catalog_entries(manifest) == [e for es in load_catalog().values() for e in es]
    assert f"sha256={sha256_file(manifest)}" in catalog.CATALOG_PATH.read_text().splitlines()[1]
    out = tmp_path / "catalog.tsv"
    assert cli_main(["build-catalog", str(manifest), "-o", str(out)]) == 0
    assert out.read_text() == catalog.CATALOG_PATH.read_text()


@needs_mirror
def test_catalog_hashes_match_the_mirror_for_a_sample():
    rng = random.Random(0)
    for es in load_catalog().values():
        for e in [es[0], es[-1], rng.choice(es)]:
            path = REAL_MIRROR / e.relative_path
            assert path.stat().st_size == e.bytes and sha256_file(path) == e.sha256, e.relative_path


def test_build_catalog_refuses_unknown_folder(tmp_path):
    manifest = tmp_path / "MANIFEST.tsv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(catalog.MANIFEST_COLUMNS)
        w.writerow(["new/thing/a.png", "0" * 64, 1, 1, 1, "o/r", "c" * 40, "a.png"])
    with pytest.raises(ValueError, match="no dataset in data/catalog.py"):
        catalog.build_catalog_entries(manifest)


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(UnknownDatasetError, match="did you mean 'Set14'"):
        catalog.canonical_name("Set41")
    assert catalog.canonical_name("set5") == "Set5" and catalog.canonical_name("sr/BSD100") == "BSD100"


# -- resolution ------------------------------------------------------------------------------------------------------

@needs_mirror
def test_resolution_from_a_tmp_mirror(env):
    mirror, cache = env
    copy_dataset("Set5", mirror)
    files = dataset_files("set5")
    assert files == sorted(files) and [f.parent for f in files] == [mirror / "sr/Set5"] * 5
    assert not cache.exists()  # resolution never creates the cache, never writes
    s = dataset_status("Set5")
    assert (s.where, s.n_mirror, s.ok, s.verified) == ("mirror", 5, True, True)


@needs_mirror
def test_default_mirror_is_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("PERCEPTUAL_DATA", raising=False)
    assert fetch.mirror_root() == REAL_MIRROR
    monkeypatch.setenv("PERCEPTUAL_DATA", "")
    assert fetch.mirror_root() is None


def test_mirror_env_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("PERCEPTUAL_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataConfigError, match="PERCEPTUAL_DATA=.*nope is not a folder"):
        dataset_files("Set5")


def test_verified_hashes_are_remembered(env, monkeypatch):
    if not REAL_MIRROR.is_dir():
        pytest.skip("no mirror")
    copy_dataset("Set5", env[0])
    calls = []
    real = fetch.sha256_file
    monkeypatch.setattr(fetch, "sha256_file", lambda p: calls.append(p) or real(p))
    dataset_files("Set5")
    dataset_files("Set5")
    assert len(calls) == 5
    verify_dataset("Set5")  # forced re-hash
    assert len(calls) == 10


@needs_mirror
def test_corrupt_mirror_file_names_file_both_hashes_and_fix(env):
    mirror, _ = env
    files = copy_dataset("Set5", mirror)
    expected = sha256_file(files[1])
    flip_byte(files[1])
    actual = sha256_file(files[1])
    with pytest.raises(HashMismatchError) as err:
        dataset_files("Set5")
    msg = str(err.value)
    assert str(files[1]) in msg and expected in msg and actual in msg and "python -m data fetch Set5" in msg
    assert err.value.expected == expected and err.value.actual == actual
    s = verify_dataset("Set5")
    assert s.where == "corrupt" and any(expected in line and actual in line for line in s.problems())


@needs_mirror
def test_corrupt_mirror_file_is_bypassed_by_a_good_cache_copy(env):
    mirror, cache = env
    files = copy_dataset("Set5", mirror)
    flip_byte(files[0])
    copy_dataset("Set5", cache)
    got = dataset_files("Set5")
    assert got[0] == cache / dataset_entries("Set5")[0].relative_path and got[1].is_relative_to(mirror)


@needs_mirror
def test_corrupt_cache_file_says_fetch_again(env):
    _, cache = env
    files = copy_dataset("Set5", cache)
    flip_byte(files[2])
    with pytest.raises(HashMismatchError, match="download it again"):
        dataset_files("Set5")
    report = fetch_dataset("Set5", downloader=FakeDownloader())  # fetch repairs the cache
    assert report.downloaded == [dataset_entries("Set5")[2].relative_path] and report.in_cache == 4
    assert len(dataset_files("Set5")) == 5


def test_missing_dataset_names_the_fetch_command(env):
    with pytest.raises(DatasetNotAvailableError) as err:
        dataset_files("BSD100")
    msg = str(err.value)
    assert "`python -m data fetch BSD100`" in msg and "not available locally" in msg
    assert isinstance(err.value, FileNotFoundError)


@needs_mirror
def test_one_missing_file_is_named(env):
    mirror, _ = env
    files = copy_dataset("Set14", mirror)
    files[3].unlink()
    with pytest.raises(DatasetNotAvailableError, match=r"missing 1 of its 14 files: sr/Set14/coastguard\.bmp;") as err:
        dataset_files("Set14")
    assert files[3].name == "coastguard.bmp" and err.value.missing == ["sr/Set14/coastguard.bmp"]
    assert dataset_status("Set14").where == "partial"


# -- fetching (real pooch.retrieve, fake downloader) -----------------------------------------------------------------

@needs_mirror
def test_fetch_downloads_into_cache_then_reuses_it(env):
    _, cache = env
    fake = FakeDownloader()
    report = fetch_dataset("Set5", downloader=fake)
    assert len(report.downloaded) == 5 and fake.urls == [e.url for e in dataset_entries("Set5")]
    assert all(p.is_relative_to(cache) for p in dataset_files("Set5"))
    again = fetch_dataset("Set5", downloader=fake)
    assert (again.in_cache, again.downloaded, len(fake.urls)) == (5, [], 5)


@needs_mirror
def test_fetch_prefers_the_mirror(env):
    copy_dataset("Set5", env[0])
    fake = FakeDownloader()
    assert fetch_dataset("Set5", downloader=fake).in_mirror == 5 and fake.urls == []


@needs_mirror
def test_partial_download_is_rejected_and_nothing_lands(env):
    _, cache = env
    with pytest.raises(FetchError, match="do not match the catalog"):
        fetch_dataset("Set5", downloader=FakeDownloader("partial"))
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_no_mirror_and_no_network_is_explained(env, monkeypatch):
    monkeypatch.setenv("PERCEPTUAL_DATA", "")
    with pytest.raises(FetchError) as err:
        fetch_dataset("Set5", downloader=FakeDownloader("offline"))
    msg = str(err.value)
    assert "could not download sr/Set5/baby.bmp" in msg and "ConnectionError" in msg
    assert "PERCEPTUAL_DATA is empty" in msg and "connect to the internet" in msg


@needs_mirror
def test_download_on_demand(env, monkeypatch):
    fake = FakeDownloader()
    monkeypatch.setattr(fetch, "DEFAULT_DOWNLOADER", fake)
    monkeypatch.setenv("PERCEPTUAL_DOWNLOAD", "1")
    assert len(dataset_files("Set5")) == 5 and len(fake.urls) == 5


@pytest.mark.parametrize("case", ["parent-is-a-file", "eacces", "chmod"])
def test_read_only_cache_names_the_env_var(env, tmp_path, monkeypatch, case):
    target = tmp_path / "ro"
    if case == "parent-is-a-file":  # the cache path cannot even be created
        (tmp_path / "a-file").write_text("x")
        target = tmp_path / "a-file" / "cache"
    elif case == "eacces":  # what a read-only folder does to a non-root user, simulated (root ignores chmod)
        def deny(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(fetch.tempfile, "mkstemp", deny)
    else:
        target.mkdir()
        target.chmod(0o500)
        if os.access(target, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder read-only (the 'eacces' case covers it)")
    monkeypatch.setenv("PERCEPTUAL_CACHE", str(target))
    monkeypatch.setenv("PERCEPTUAL_DATA", "")
    with pytest.raises(CacheNotWritableError, match=r"not writable .*set PERCEPTUAL_CACHE to a writable folder"):
        fetch_dataset("Set5", downloader=FakeDownloader())
    assert cli_main(["fetch", "Set5"]) == 1


# -- image specs -----------------------------------------------------------------------------------------------------

def _write_images(folder: Path, n: int, size=(40, 30)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(np.full((size[1], size[0], 3), i * 10, np.uint8)).save(p)
        out.append(p)
    return out


def test_any_folder_is_a_dataset(tmp_path):
    files = _write_images(tmp_path / "train2014", 3)
    (tmp_path / "train2014" / "notes.txt").write_text("x")
    (tmp_path / "train2014" / ".hidden.png").write_bytes(b"")
    name, got = resolve_images(str(tmp_path / "train2014"))
    assert name == "train2014" and got == files
    assert resolve_images(files[1]) == ("img01", [files[1]])


def test_bad_specs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    _write_images(tmp_path / "empty" / "sub", 2)
    with pytest.raises(FileNotFoundError, match="subfolders hold 2 images"):
        resolve_images(str(tmp_path / "empty"))
    with pytest.raises(UnknownDatasetError, match="did you mean 'BSD100'"):
        resolve_images("BSD10")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="not an image file"):
        resolve_images(str(tmp_path / "a.txt"))


@needs_mirror
def test_catalog_specs(monkeypatch):
    monkeypatch.delenv("PERCEPTUAL_DATA", raising=False)
    name, files = resolve_images("set5+Set14")
    assert name == "Set5+Set14" and len(files) == 19
    name, files = resolve_images("train")
    assert name == "coco_train2017+bsds500_train" == "+".join(DEFAULT_TRAIN_CORPUS) and len(files) == 408
    name, files = resolve_images("srcnn_train")
    assert name == "coco_train2017+bsds500_train+t91" and len(files) == 499
    assert resolve_images("the_muse") == ("la_muse", [REAL_MIRROR / "style/styles/la_muse.jpg"])
    assert resolve_images("la_muse.jpg") == resolve_images("la_muse")
    assert fetch.style_image("chicago") == REAL_MIRROR / "style/content/chicago.jpg"


# -- CLI -------------------------------------------------------------------------------------------------------------

@needs_mirror
def test_cli_list_fetch_verify(env, monkeypatch, capsys):
    mirror, _ = env
    files = copy_dataset("Set5", mirror)
    copy_dataset("Set14", mirror)[0].unlink()
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in
            DATASETS}
    assert rows["Set5"][4:6] == ["mirror", "yes"] and rows["Set14"][4] == "partial" and rows["BSD100"][4] == "missing"
    assert cli_main(["verify", "Set5"]) == 0
    flip_byte(files[0])
    assert cli_main(["verify", "Set5"]) == 1
    out = capsys.readouterr().out
    assert str(files[0]) in out and dataset_entries("Set5")[0].sha256 in out
    monkeypatch.setattr(fetch, "DEFAULT_DOWNLOADER", FakeDownloader())
    assert cli_main(["fetch", "Set5", "Set14"]) == 0
    assert "Set14: 13 in mirror, 0 already cached, 1 downloaded" in capsys.readouterr().out
    assert cli_main(["verify", "Set5", "Set14"]) == 0
    assert cli_main(["verify", "Set55"]) == 2


@needs_mirror
def test_python_dash_m_data(env):
    copy_dataset("Set5", env[0])
    r = subprocess.run([sys.executable, "-m", "data", "verify", "Set5"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], env=os.environ.copy(), timeout=120, check=False)
    assert r.returncode == 0 and "Set5: OK (5 files, mirror)" in r.stdout, r.stderr


# -- corpus ----------------------------------------------------------------------------------------------------------

def _bad_folder(root: Path) -> Path:
    folder = root / "mycoco"
    good = _write_images(folder, 4, size=(64, 48))
    (folder / "zero.jpg").write_bytes(b"")
    data = good[0].read_bytes()
    (folder / "trunc.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.zeros((20, 100, 3), np.uint8)).save(folder / "small.png")
    return folder


def test_corpus_skips_and_counts(tmp_path, caplog):
    folder = _bad_folder(tmp_path)
    with caplog.at_level("WARNING", logger="data.corpus"):
        c = ImageFolderCorpus(folder, min_size=32)
    assert (c.name, c.n_images, c.n_unreadable, c.n_too_small, c.n_candidates) == ("mycoco", 4, 2, 1, 7)
    kinds = {s.path.name: (s.kind, s.reason) for s in c.skipped}
    assert kinds["zero.jpg"][0] == "unreadable" and "empty" in kinds["zero.jpg"][1]
    assert kinds["trunc.png"][0] == "unreadable" and "truncated or corrupt" in kinds["trunc.png"][1]
    assert kinds["small.png"] == ("too_small", "100x20 is smaller than the minimum 32x32")
    assert all(name in caplog.text for name in kinds)
    x = c[0]
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    s = c.summary()
    assert (s["name"], s["n_images"], s["path"], s["n_skipped_unreadable"]) == ("mycoco", 4, str(folder), 2)
    assert c.sizes == [(64, 48)] * 4


def test_corpus_header_check_replaces_late_failures(tmp_path):
    folder = _bad_folder(tmp_path)
    c = ImageFolderCorpus(folder, check="header")
    assert c.n_unreadable == 1 and "trunc.png" in [p.name for p in c.files]  # header of the truncated PNG is fine
    i = [p.name for p in c.files].index("trunc.png")
    assert c[i].shape[0] == 3 and [s.path.name for s in c.late_failures] == ["trunc.png"]


def test_corpus_edge_cases(tmp_path):
    with pytest.raises(ValueError, match="no usable images"):
        ImageFolderCorpus(_write_images(tmp_path / "tiny", 2, size=(8, 8)), min_size=16)
    with pytest.raises(ValueError, match="empty list"):
        ImageFolderCorpus([])
    with pytest.raises(ValueError, match="min_size must be positive"):
        ImageFolderCorpus(tmp_path / "tiny", min_size=0)
    c = ImageFolderCorpus([tmp_path / "tiny" / "img00.png"], transform=lambda t: t.mean())
    assert c.name == "tiny" and float(c[0]) == 0.0


def test_corpus_refuses_held_out_data_by_name(env):
    with pytest.raises(ValueError, match="refusing to train on coco_val2017"):
        ImageFolderCorpus("coco_val2017")  # refused before anything is resolved (this mirror is empty)
    with pytest.raises(ValueError, match="refusing to train on Set5"):
        ImageFolderCorpus("Set5+t91")


@needs_mirror
def test_corpus_refuses_held_out_folder_and_allows_evaluation(monkeypatch):
    monkeypatch.delenv("PERCEPTUAL_DATA", raising=False)
    with pytest.raises(ValueError, match="refusing to train on coco_val2017"):
        ImageFolderCorpus(REAL_MIRROR / "train/coco/val2017", check="header")
    c = ImageFolderCorpus("Set5", training=False)
    assert c.n_images == 5 and c.summary()["datasets"] == {"Set5": catalog.dataset_digest("Set5")}
