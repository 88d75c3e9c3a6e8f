"""evaluate_sequence: the obstacle pipeline over a synthetic drive, scored against its truth.

(Named after the harness: test/data/test_sequence.py already holds the generator's tests, and two
test modules of one basename cannot be collected together.)
"""

import numpy as np
import pytest

from densehybrid_ros.core.instances import InstanceConfig
from densehybrid_ros.core.obstacles import ObstaclePipeline
from densehybrid_ros.core.tracking import TrackerConfig
from densehybrid_ros.data.synthetic import Sequence
from densehybrid_ros.metrics.sequence import evaluate_sequence, level_geometry, SequenceMetrics

SIZE = (120, 200)


def pipeline() -> ObstaclePipeline:
    return ObstaclePipeline(InstanceConfig(), TrackerConfig(confirm_hits=3, confirm_window=5,
                                                            max_misses=2))


@pytest.fixture(scope='module')
def drive():
    """24 frames of two obstacles 10-25 units ahead, approached and passed."""
    seq = Sequence(3, SIZE, frames=24, family='eval', speed=1.0, anomalies=(2, 2),
                   ranges=(10.0, 25.0))
    return list(seq)


def oracle(frames, depth=True):
    """Frames with a perfect score map: +100 on the obstacles, -100 elsewhere (threshold 0)."""
    for f in frames:
        score = np.where(f.anomaly == 1, 100.0, -100.0).astype(np.float32)
        yield (score, f.label, f.instances, f.objects, f.camera.matrix,
               f.depth if depth is True else depth)


def test_a_perfect_score_map_confirms_every_object_early_and_places_it(drive) -> None:
    figures = evaluate_sequence(oracle(drive), 0.0, pipeline)
    tracking = figures['tracking']
    shown = {o.id for f in drive for o in f.objects if o.pixels >= 10}
    assert tracking['objects'] == len(shown) == 2
    assert tracking['objects_confirmed'] == 2 and tracking['confirmed_early'] == 1.0
    assert tracking['frames_to_confirm']['max'] == 2          # 3 of 5: the third frame
    assert tracking['phantom_tracks'] == 0 and tracking['flicker'] == 0.0
    assert tracking['id_switches_per_object'] == 0.0
    ground, depth = figures['placement_ground'], figures['placement_depth']
    assert ground['count'] == depth['count'] > 10
    # Ground plane: the contact row is off by up to a pixel (r dv / f: a few % at this size).
    assert ground['range_error']['median'] < 0.05
    # Depth: billboards stand at their range, so the median depth is exact (float32).
    assert depth['range_error']['max'] < 1e-6
    assert depth['lateral_error']['median'] < 0.05


def test_failed_depth_placements_are_left_out_and_sequences_accumulate(drive) -> None:
    metrics = SequenceMetrics()
    nowhere = np.full(SIZE, np.nan, np.float32)               # no valid depth anywhere
    evaluate_sequence(oracle(drive, nowhere), 0.0, pipeline, metrics=metrics)
    first = metrics.compute()
    assert first['placement_ground']['count'] > 10 and first['placement_depth']['count'] == 0
    figures = evaluate_sequence(oracle(drive[:10], None), 0.0, pipeline, metrics=metrics)
    assert figures['tracking']['sequences'] == 2
    assert figures['tracking']['frames'] == len(drive) + 10
    assert figures['placement_depth']['count'] == 0
    assert figures['placement_ground']['count'] > first['placement_ground']['count']


def test_a_blob_on_the_road_without_an_object_is_a_phantom() -> None:
    k = np.array([[100.0, 0, 40], [0, 100.0, 10], [0, 0, 1]])
    semantic = np.zeros((60, 80), np.uint8)                   # all road
    gt = np.zeros((60, 80), np.uint16)

    def frames():
        for i in range(8):
            score = np.full((60, 80), -100.0, np.float32)
            score[40:46, 30:36] = 100.0
            yield score, semantic, gt, [], k, None
    figures = evaluate_sequence(frames(), 0.0, pipeline)
    assert figures['tracking']['phantom_tracks'] == 1
    assert figures['tracking']['phantom_track_frames'] == 6   # confirmed in its third frame
    assert figures['tracking']['phantom_tracks_per_100_frames'] == pytest.approx(12.5)
    assert figures['placement_ground']['count'] == 0          # nothing to compare with


def test_level_geometry_is_the_generators_camera() -> None:
    k = np.array([[120.0, 0, 50.5], [0, 110.0, 20.25], [0, 0, 1]])
    geometry = level_geometry(k, (60, 100))
    camera = geometry.camera
    assert (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy) == \
        (100, 60, 120.0, 110.0, 50.5, 20.25)
    # Pixel (column 50, row 50) sees the ground fy / (50 - cy) units ahead, half a column's
    # worth left of the axis, 1 unit below the camera.
    ahead = 110.0 / (50 - 20.25)
    np.testing.assert_allclose(geometry.table.ground[50, 50], [ahead, 0.5 / 120 * ahead, 0.0],
                               rtol=1e-5, atol=1e-6)
    assert geometry.mount.translation == (0.0, 0.0, 1.0)
