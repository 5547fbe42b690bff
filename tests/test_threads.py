"""torch_threads: sets the count inside the block and restores the previous one, also on error."""

import pytest
import torch

from critdiff.threads import torch_threads


def test_sets_and_restores():
    old = torch.get_num_threads()
    other = 1 if old != 1 else 2
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == old
    with pytest.raises(RuntimeError):
        with torch_threads(other):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == old
    with torch_threads(None):
        assert torch.get_num_threads() == old


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_counts(bad, exc):
    with pytest.raises(exc, match="threads"):
        with torch_threads(bad):
            pass
