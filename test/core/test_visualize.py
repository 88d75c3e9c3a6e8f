"""Palettes, fixed-range heatmaps and overlays."""

import numpy as np
import pytest

from densehybrid_ros.core import visualize
from densehybrid_ros.core.classes import CITYSCAPES_PALETTE


def test_label_lut_colours_classes_and_unknown():
    lut = visualize.label_lut(CITYSCAPES_PALETTE)
    labels = np.array([[0, 13], [255, 18]], np.uint8)
    rgb = visualize.colorize(labels, lut)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 1]) == (0, 0, 142)
    assert tuple(rgb[1, 0]) == visualize.UNKNOWN_COLOR


def test_heatmap_range_is_fixed_not_per_frame():
    low_frame = np.full((4, 4), -3.0, np.float32)
    mixed = np.array([[-3.0, 10.0]], np.float32)
    a = visualize.heatmap(low_frame, (-6.0, 0.0))
    b = visualize.heatmap(mixed, (-6.0, 0.0))
    assert np.array_equal(a[0, 0], b[0, 0])          # same score, same colour in every frame
    assert np.array_equal(b[0, 1], visualize.HEAT_LUT[255])   # above the range saturates


@pytest.mark.parametrize('score, expected', [(-6.0, 0), (0.0, 255), (-3.0, 127), (-9.0, 0)])
def test_score_to_uint8(score, expected):
    value = visualize.score_to_uint8(np.array([[score]], np.float32), (-6.0, 0.0))[0, 0]
    assert abs(int(value) - expected) <= 1


def test_bad_range_and_alpha_are_rejected():
    with pytest.raises(ValueError, match='high > low'):
        visualize.heatmap(np.zeros((2, 2), np.float32), (1.0, 1.0))
    with pytest.raises(ValueError, match='alpha'):
        visualize.overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint8), 1.5)


def test_overlay_blends_only_inside_the_mask():
    image = np.full((2, 2, 3), 100, np.uint8)
    color = np.full((2, 2, 3), 200, np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = visualize.overlay(image, color, 0.5, mask)
    assert tuple(out[0, 0]) == (150, 150, 150) and tuple(out[1, 1]) == (100, 100, 100)
    assert np.all(visualize.overlay(image, color, 0.5) == 150)
