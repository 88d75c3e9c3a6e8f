"""The embedded default model: small, self-describing, calibrated, and it segments its world."""

import math

import pytest
from sklearn.metrics import average_precision_score

from densehybrid_ros.checkpoint import read_checkpoint
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.inference import Segmenter
from densehybrid_ros.paths import default_checkpoint

MAX_BYTES = 15 * 2 ** 20
EVAL_SEEDS = range(2_000_000, 2_000_003)       # held-out scenes of the model card's evaluation


@pytest.fixture(scope='module')
def meta():
    return read_checkpoint(default_checkpoint())


def test_it_is_small_and_self_describing(meta):
    assert default_checkpoint().stat().st_size <= MAX_BYTES
    assert meta['arch'] == 'ladder_resnet18_half' and meta['num_classes'] == 19
    cal = meta['calibration']
    assert math.isfinite(cal['threshold']) and cal['score_p01'] < cal['score_p99']
    assert meta['train']['command'].startswith('densehybrid-train synthetic')


def test_recorded_validation_figures_are_the_model_cards(meta):
    m = meta['train']['metrics']
    assert m['images'] == 200
    assert m['miou'] >= 0.80 and m['ap'] >= 0.85 and m['fpr95'] <= 0.05
    assert m['hybrid']['ap'] > m['generative']['ap']


@pytest.mark.parametrize('seed', EVAL_SEEDS)
def test_it_segments_held_out_scenes_and_finds_unseen_anomalies(seed):
    scene = make_scene(seed, (512, 1024), anomaly_family='eval')
    result = Segmenter(None, device='cpu')([scene['image']])[0]
    label, anomaly = scene['label'], scene['anomaly']
    inlier = (anomaly == 0) & (label < 19)
    assert (result.semantic[inlier] == label[inlier]).mean() > 0.9
    valid = anomaly != 255
    assert average_precision_score(anomaly[valid], result.score[valid]) > 0.5
