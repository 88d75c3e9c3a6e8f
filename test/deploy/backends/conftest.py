"""Backend fixtures: models with the authors' golden weight fill and with random weights."""

from pathlib import Path
import sys

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'models'))   # golden.py


@pytest.fixture(autouse=True, scope='module')
def export_cache(tmp_path_factory):
    """Lazy exports go to a cache per test module (shared by its tests), never the user's."""
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('DENSEHYBRID_CACHE', str(root))
        yield root / 'artifacts'


@pytest.fixture(scope='session')
def golden_ldn121(official_dir):
    """LDN-121 with the deterministic fill whose reference outputs are in shared/official."""
    from golden import deterministic_fill, read_manifest

    from densehybrid_ros.models import build_model
    model = build_model('ldn121', 19)
    model.load_state_dict(deterministic_fill(
        read_manifest(official_dir / 'ldn121_densehybrid_19.keys')), strict=True)
    return model.eval()


@pytest.fixture(scope='session')
def random_ladder():
    """A randomly initialised half-width ladder model."""
    from densehybrid_ros.models import build_model
    torch.manual_seed(11)
    return build_model('ladder_resnet18_half', 19).eval()
