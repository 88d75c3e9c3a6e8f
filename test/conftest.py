"""Shared fixtures: paths, the authors' interop facts, and tiny real checkpoints."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OFFICIAL = REPO.parent / 'shared' / 'official'


@pytest.fixture(scope='session')
def official_dir() -> Path:
    """../shared/official (the authors' key manifests and golden outputs)."""
    if not OFFICIAL.is_dir():
        if os.environ.get('CI'):
            pytest.fail(f'{OFFICIAL} is missing in CI')
        pytest.skip(f'{OFFICIAL} not present in this checkout')
    return OFFICIAL


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real, randomly initialised half-width ladder checkpoint with a calibration block."""
    import torch

    from densehybrid_ros.checkpoint import save_checkpoint
    from densehybrid_ros.models import build_model

    torch.manual_seed(0)
    model = build_model('ladder_resnet18_half', 19)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    save_checkpoint(path, model, {
        'calibration': {'threshold': -2.0, 'score_p01': -6.0, 'score_p99': 1.0,
                        'measured_on': 'test fixture'},
        'train': {'command': 'test fixture'},
    })
    return path
