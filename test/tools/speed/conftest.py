"""A small real model shared by the speed tools' tests."""

import pytest
import torch


@pytest.fixture
def small_net() -> torch.nn.Module:
    """Conv 3 -> 8 -> ReLU -> 1x1 conv to 4 channels, seeded, in eval mode."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 4, 1)).eval()
