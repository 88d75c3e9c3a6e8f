"""Calibration without labelled anomalies: every pixel an inlier, a false-alarm budget alone."""

import csv
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from densehybrid_ros.data.bag_writer import BagWriter
from densehybrid_ros.data.bags import BagReader
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.models.checkpoint import load_checkpoint
from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.rostools.make_bag import write_sample_bag

SIZE = (32, 64)
FRAMES = 6
SEED = 5150


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory) -> Path:
    """A 6-frame sample bag of 32 x 64 synthetic scenes with semantic and anomaly labels."""
    path = tmp_path_factory.mktemp('bags') / 'sample'
    write_sample_bag(str(path), FRAMES, SIZE, rate=10.0, seed=SEED)
    return path


def run_eval(output: Path, *argv: str) -> Dict:
    """Run densehybrid-eval in-process into ``output``; returns its metrics.json."""
    code = eval_bag.main([*argv, '--output', str(output), '--quiet', '--device', 'cpu',
                          '--backend', 'torch', '--pictures', '0'])
    assert code == 0
    return json.loads((output / 'metrics.json').read_text())


def test_unlabelled_calibration_keeps_the_inlier_budget_measured_with_the_labels(
        sample_bag, tiny_checkpoint, tmp_path) -> None:
    """Issue 24: the labels hidden, at most F of the pixels flagged; inlier FPR within 0.2 pt."""
    copy = tmp_path / 'my_camera.pt'
    figures = run_eval(tmp_path / 'calib', str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--no-labels', '--threshold-from-fpr', '0.01',
                       '--calibrated-checkpoint', str(copy))
    assert 'anomaly' not in figures                                  # the labels were hidden
    _, meta = load_checkpoint(copy)
    calibration = meta['calibration']
    assert calibration == {**figures['calibration'], 'previous_threshold': -2.0}
    assert calibration['target_fpr'] == 0.01 and calibration['tpr'] is None
    assert calibration['measured_on'].endswith('no labels: every pixel an inlier')
    pixels = FRAMES * SIZE[0] * SIZE[1]
    assert calibration['inlier_pixels'] == pixels
    # The budget is kept, and used: the bins (~1/4000 of a binade) leave little unflagged.
    assert 0.009 < calibration['fpr'] <= 0.01
    assert calibration['score_p01'] == figures['score_stats']['p01']   # the heatmap range
    assert calibration['score_p99'] == figures['score_stats']['p99']
    # Measured afterwards with the labels, by the calibrated copy on the same bag.
    check = run_eval(tmp_path / 'check', str(sample_bag), '--checkpoint', str(copy))
    assert check['threshold'] == {'value': calibration['threshold'],
                                  'source': 'checkpoint calibration'}
    at = check['anomaly']['at_threshold']
    assert at['error_bound'] == 0.0 and 0.008 <= at['fpr'] <= 0.012, at
    with (tmp_path / 'check' / 'frames.csv').open() as f:       # the node's mask: score > t
        flagged = np.mean([float(row['unknown_fraction']) for row in csv.DictReader(f)])
    assert flagged == pytest.approx(calibration['fpr'], abs=1e-6)


def test_unlabelled_calibration_of_a_recording(sample_bag, tiny_checkpoint, tmp_path) -> None:
    """--recorded --no-labels: the node's anomaly_score topic, every pixel an inlier."""
    recording = tmp_path / 'recording'
    run_eval(tmp_path / 'live', str(sample_bag), '--checkpoint', str(tiny_checkpoint),
             '--output-bag', str(recording))
    copy = tmp_path / 'live.pt'
    figures = run_eval(tmp_path / 'calib', str(recording), '--recorded', '--no-labels',
                       '--threshold-from-fpr', '0.05', '--checkpoint', str(tiny_checkpoint),
                       '--calibrated-checkpoint', str(copy))
    assert figures['source'] == 'recorded bag' and 'anomaly' not in figures
    with BagReader(recording) as reader:
        topic = '/camera/densehybrid/anomaly_score'
        scores = np.concatenate([f.arrays['score'].ravel() for f in
                                 reader.frames({'score': topic}, key='score')])
    threshold = load_checkpoint(copy)[1]['calibration']['threshold']
    assert threshold == figures['calibration']['threshold']
    assert np.mean(scores > threshold) == figures['calibration']['fpr'] <= 0.05
    assert np.mean(scores >= scores[scores <= threshold].max()) > 0.05    # tight


def test_a_bag_without_labels_is_calibrated_as_all_inliers(tiny_checkpoint, tmp_path) -> None:
    """Labels absent (a plain camera bag): the same rule without --no-labels."""
    with BagWriter(tmp_path / 'drive') as bag:
        for i in range(3):
            scene = make_scene(SEED + i, SIZE, anomaly_family=None)
            bag.write_image('/front/image_raw', scene['image'], 'rgb8', (i + 1) * 10 ** 8, 'c')
    figures = run_eval(tmp_path / 'calib', str(tmp_path / 'drive'), '--checkpoint',
                       str(tiny_checkpoint), '--threshold-from-fpr', '0.02')
    calibration = figures['calibration']
    assert calibration['tpr'] is None and calibration['fpr'] <= 0.02
    assert calibration['inlier_pixels'] == 3 * SIZE[0] * SIZE[1]
    assert Path(figures['calibrated_checkpoint']) == tmp_path / 'calib' / 'tiny_calibrated.pt'


def test_a_recall_target_without_labels_is_refused_in_one_line(
        sample_bag, tiny_checkpoint, tmp_path, capsys) -> None:
    code = eval_bag.main([str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--no-labels',
                          '--threshold-from-tpr', '0.95', '--output', str(tmp_path / 'o'),
                          '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    assert '--threshold-from-tpr needs anomaly labels' in err and '--threshold-from-fpr' in err
    assert not (tmp_path / 'o').exists()
