"""Shared test settings: one torch thread (the CI machine has 2 cores shared by processes)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    torch.set_num_threads(1)
    yield
