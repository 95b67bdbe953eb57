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
