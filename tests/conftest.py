"""Shared pytest fixtures."""

import os

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is as fast and does not stall on a loaded shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def umask():
    """Set the process umask for one test (restored afterwards)."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)
