"""Placement metrics: relative range and absolute lateral errors against the ground truth."""

import numpy as np
import pytest

from densehybrid_ros.core.projection import place_on_ground
from densehybrid_ros.data.synthetic import Sequence
from densehybrid_ros.metrics.placement import PlacementMetrics
from densehybrid_ros.metrics.sequence import level_geometry


def test_errors_median_and_p90() -> None:
    metrics = PlacementMetrics('ground')
    metrics.update((10.5, -1.9, 0.0), 10.0, 2.0)        # 5 % too far, 0.1 too far left
    metrics.update(np.array([19.0, 0.5]), 20.0, 0.0)     # 5 % too near, 0.5 left
    metrics.update((3.0, 1.0), 4.0, -1.0)               # 25 % too near, exact
    np.testing.assert_allclose(metrics.errors, [[0.05, 0.1], [0.05, 0.5], [0.25, 0.0]])
    figures = metrics.compute()
    assert figures['mode'] == 'ground' and figures['count'] == 3
    assert figures['range_error']['median'] == pytest.approx(0.05)
    assert figures['range_error']['p90'] == pytest.approx(np.percentile([0.05, 0.05, 0.25], 90))
    assert figures['range_error']['max'] == pytest.approx(0.25)
    assert figures['lateral_error']['median'] == pytest.approx(0.1)
    assert figures['lateral_error']['p90'] == pytest.approx(0.42)
    assert figures['lateral_error']['mean'] == pytest.approx(0.2)


def test_the_base_frame_convention_matches_the_generator() -> None:
    """A sequence object's true contact pixel, placed on the ground, scores (almost) zero."""
    seq = Sequence(5, (96, 160), frames=3, family='eval', anomalies=(3, 3),
                   ranges=(8.0, 20.0))
    frame = seq[0]
    geometry = level_geometry(frame.camera.matrix, (96, 160))
    metrics = PlacementMetrics()
    for obj in frame.objects:
        u, v = obj.contact
        # place_on_ground puts a contact pixel's bottom edge (row + 0.5) on the ground.
        placed = place_on_ground(geometry.table, (int(u) - 2, int(v) - 4, 5, 5), (u, v - 0.5))
        metrics.update(placed.position, obj.range, obj.lateral)
    assert len(metrics) == 3 and any(abs(o.lateral) > 0.5 for o in frame.objects)
    assert metrics.errors.max() < 1e-6


def test_merge_state_dict_and_checks() -> None:
    a, b = PlacementMetrics('depth'), PlacementMetrics('depth')
    a.update((10.0, 0.0), 10.0, 0.0)
    b.update((11.0, 0.2), 10.0, 0.0)
    b.update((12.0, 0.4), 10.0, 0.0)
    merged = PlacementMetrics('depth').merge(a).merge(b)
    np.testing.assert_allclose(merged.errors, [[0.0, 0.0], [0.1, 0.2], [0.2, 0.4]])
    restored = PlacementMetrics.from_state_dict(merged.state_dict())
    assert restored.mode == 'depth' and restored.compute() == merged.compute()
    with pytest.raises(ValueError, match="cannot merge 'depth'"):
        PlacementMetrics('ground').merge(a)
    with pytest.raises(ValueError, match='range must be positive'):
        a.update((1.0, 0.0), 0.0, 0.0)
    empty = PlacementMetrics().compute()
    assert empty['count'] == 0 and np.isnan(empty['range_error']['median'])


def test_figures_by_true_range_band() -> None:
    metrics = PlacementMetrics('ground')
    metrics.update((5.1, 0.0), 5.0, 0.0)            # 2 % at 5 units
    metrics.update((14.0, 0.0), 12.5, 0.0)          # 12 % at 12.5
    metrics.update((12.0, 0.3), 15.0, 0.0)          # 20 % at 15
    metrics.update((20.0, 0.0), 40.0, 0.0)          # 50 % at 40: far contacts are one pixel
    bands = metrics.compute()['by_range']
    assert list(bands) == ['0-10', '10-20', '>=20']
    assert [b['count'] for b in bands.values()] == [1, 2, 1]
    assert bands['0-10']['range_error']['median'] == pytest.approx(0.02)
    assert bands['10-20']['range_error']['median'] == pytest.approx(0.16)
    assert bands['10-20']['lateral_error']['max'] == pytest.approx(0.3)
    assert bands['>=20']['range_error']['p90'] == pytest.approx(0.5)


def test_a_state_saved_without_the_true_range_still_loads() -> None:
    old = {'kind': np.array('PlacementMetrics'), 'mode': np.array('ground'),
           'errors': np.array([[0.1, 0.2], [0.3, 0.4]])}
    metrics = PlacementMetrics.from_state_dict(old)
    figures = metrics.compute()
    assert figures['count'] == 2 and figures['range_error']['max'] == pytest.approx(0.3)
    assert all(b['count'] == 0 for b in figures['by_range'].values())
