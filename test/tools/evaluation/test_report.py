"""Report pieces: strict JSON, a score histogram whose clipped end bars say so, sequence lines."""

import json
import math

import numpy as np

from densehybrid_ros.metrics.anomaly import AnomalyMetrics, ScoreHistogram
from densehybrid_ros.metrics.temporal import TrackingMetrics
from densehybrid_ros.tools.evaluation.report import (clipped_notes, plot_histogram,
                                                     sequence_line, write_json)


def test_json_has_no_nan(tmp_path) -> None:
    write_json(tmp_path / 'm.json', {'a': math.nan, 'b': np.float32(1.5), 'c': (1, np.inf)})
    assert json.loads((tmp_path / 'm.json').read_text()) == {'a': None, 'b': 1.5,
                                                             'c': [1, None]}


def test_clipped_end_bars_are_labelled_with_what_they_hold(tmp_path) -> None:
    """A few far outliers land in the end bars: their share of the pixels is written there."""
    rng = np.random.default_rng(0)
    score = rng.normal(size=100_000)
    score[:50], score[50:80] = -1e6, 1e6                 # 0.05 % far below, 0.03 % far above
    is_anomaly = rng.random(score.size) < 0.1
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    edges, _, _ = metrics.histogram(120)
    below, above = (int(n) for n in metrics.outside(edges[0], edges[-1]).sum(0))
    assert below >= 50 and above >= 30 and below + above < 0.01 * score.size
    assert abs(below - int((score < edges[0]).sum())) <= 3          # to bin precision
    assert abs(above - int((score > edges[-1]).sum())) <= 3
    notes = clipped_notes(edges, below, above, score.size)
    assert notes[0].startswith(f'bar includes {100 * below / score.size:.2g} % of pixels < ')
    assert notes[1].startswith(f'bar includes {100 * above / score.size:.2g} % of pixels > ')
    assert clipped_notes(edges, 0, 0, score.size) == ['', '']
    assert plot_histogram(tmp_path, metrics, threshold=0.5).is_file()
    unlabelled = ScoreHistogram()
    unlabelled.update(score)
    assert plot_histogram(tmp_path, None, unlabelled).name == 'score_histogram.png'


def test_the_sequence_line_grades_early_confirmation_by_occlusion_and_size() -> None:
    tracking = TrackingMetrics().compute()          # nothing scored: no level to grade
    assert 'confirmed early n/a %, frames to confirm' in sequence_line({'tracking': tracking})
    tracking['confirmed_early_by_occlusion'] = {
        'visible': {'objects_decided': 170, 'confirmed_early': 0.982},
        'partly_occluded': {'objects_decided': 17, 'confirmed_early': 0.47},
        'largely_occluded': {'objects_decided': 0, 'confirmed_early': math.nan}}
    assert ('confirmed early n/a % (visible 98 % of 170, partly occluded 47 % of 17), frames'
            in sequence_line({'tracking': tracking}))
    tracking['confirmed_early_by_size'] = {
        'large': {'objects_decided': 160, 'confirmed_early': 0.97},
        'small': {'objects_decided': 39, 'confirmed_early': 0.46}}
    assert ('confirmed early n/a % (visible 98 % of 170, partly occluded 47 % of 17; large 97 % '
            'of 160, small 46 % of 39), frames' in sequence_line({'tracking': tracking}))
    del tracking['confirmed_early_by_occlusion']
    assert ('confirmed early n/a % (large 97 % of 160, small 46 % of 39), frames'
            in sequence_line({'tracking': tracking}))


def test_the_sequence_line_tells_the_late_objects_by_cause() -> None:
    tracking = TrackingMetrics().compute()
    assert tracking['late_causes'] == {'no_instance': 0, 'merged': 0, 'own_instance': 0}
    assert ', late' not in sequence_line({'tracking': tracking})
    tracking['late_causes'] = {'no_instance': 2, 'merged': 1, 'own_instance': 0}
    assert ('confirmed early n/a %, late 3 (no instance 2, merged 1), frames to confirm'
            in sequence_line({'tracking': tracking}))
