"""Fixtures shared by the test files."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: on the small shared CI machine two OpenMP threads spin-wait on each other (measured:
    a test file took 110 s with two threads, 16 s with one), and each torchrun rank runs single-threaded too."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_sr_sets(tmp_path):
    """(training folder, evaluation folder) of a few random PNGs: an SR harness run with them and
    `--vgg-weights random --iterations 2 --patch-size 32` takes a second."""
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for name, sizes in (("train", [(48, 56), (40, 40)]), ("tiny", [(36, 40)])):
        (tmp_path / name).mkdir()
        for i, (h, w) in enumerate(sizes):
            arr = (torch.rand(h, w, 3, generator=rng) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(tmp_path / name / f"img{i}.png")
    return tmp_path / "train", tmp_path / "tiny"
