"""densehybrid-segment warns once when the model flags much of an image (issue 24, point 1).

The embedded model saw only generated road scenes. On a photograph that ships with matplotlib
it flags about half the pixels; on a generated scene about 1 %. The run must say why on one
line, once, and not on the generated scene.
"""

from pathlib import Path

import pytest

from densehybrid_ros.core.domain import SYNTHETIC
from densehybrid_ros.tools.model.segment import domain_warning, main

matplotlib = pytest.importorskip('matplotlib')
PHOTO = Path(matplotlib.get_data_path()) / 'sample_data' / 'grace_hopper.jpg'
FAST = ['--device', 'cpu', '--backend', 'torch', '--inference-width', '256', '--size', '256',
        '512']


def warnings(err: str) -> list:
    """The warning lines of a run's stderr."""
    return [line for line in err.splitlines() if line.startswith('warning: ')]


def test_a_real_photo_through_the_default_model_prints_the_domain_warning(tmp_path, capsys):
    assert main([str(PHOTO), '--synthetic', '1', *FAST, '--output', str(tmp_path / 'o')]) == 0
    out, err = capsys.readouterr()
    assert 'wrote' in out and 'Traceback' not in err
    (line,) = warnings(err)
    assert line.startswith('warning: ') and 'of the pixels of grace_hopper are flagged' in line
    assert 'trained only on synthetic scenes' in line and 'With a real camera' in line
    assert line.endswith('(1 of 2 images above 20 %)')


def test_a_generated_scene_gives_no_warning(tmp_path, capsys):
    assert main(['--synthetic', '1', *FAST, '--output', str(tmp_path / 'o')]) == 0
    assert warnings(capsys.readouterr().err) == []


def test_the_run_warning_names_the_worst_image():
    stats = [{'image': 'a', 'anomalous_fraction': 0.3}, {'image': 'b', 'anomalous_fraction': 0.6},
             {'image': 'c', 'anomalous_fraction': 0.01}]
    text = domain_warning(stats, SYNTHETIC)
    assert text.startswith('60 % of the pixels of b ')
    assert text.endswith('(2 of 3 images above 20 %)')
    assert domain_warning(stats[2:], SYNTHETIC) is None
    assert domain_warning(stats, SYNTHETIC, limit=0.0) is None          # 0 = off
