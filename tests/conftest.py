import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The suite trains and runs tiny networks: one intra-op thread is as fast, and far faster
    when another job shares the two cores (two threads measured 10-17x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
