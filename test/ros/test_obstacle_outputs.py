"""Obstacle outputs' pure parts: depth images as decoded, the rules from the parameters."""

import numpy as np
import pytest

pytest.importorskip('rclpy')
from sensor_msgs.msg import Image  # noqa: E402

from densehybrid_ros.core.classes import CITYSCAPES_CLASSES  # noqa: E402
from densehybrid_ros.ros.obstacle_outputs import (  # noqa: E402
    depth_from_message, obstacle_settings)
from densehybrid_ros.ros.params import DEFAULTS  # noqa: E402


def depth_image(array: np.ndarray, encoding: str) -> Image:
    """A depth Image message holding ``array`` (16UC1 or 32FC1, little-endian)."""
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding,
                step=array.shape[1] * array.itemsize)
    msg.data = array.tobytes()
    return msg


def test_a_depth_image_is_returned_as_stored():
    mm = np.array([[0, 1500], [2000, 65535]], np.uint16)
    got = depth_from_message(depth_image(mm, '16UC1'))
    assert got.dtype == np.uint16 and np.array_equal(got, mm)
    m = np.array([[np.nan, 1.5], [np.inf, -1.0]], np.float32)
    got = depth_from_message(depth_image(m, '32FC1'))
    assert got.dtype == np.float32 and np.array_equal(got, m, equal_nan=True)


@pytest.mark.parametrize('array, encoding', [
    (np.zeros((3, 4), np.uint16), '16UC1'),
    (np.array([[np.nan, np.inf], [-np.inf, 0.0], [-2.0, np.nan]], np.float32), '32FC1'),
])
def test_a_depth_image_without_one_valid_pixel_is_none(array, encoding):
    assert depth_from_message(depth_image(array, encoding)) is None


def test_class_parameters_become_the_instance_rules():
    warnings = []
    values = dict(DEFAULTS, drivable_classes='road, sidewalk', scenery_classes='vegetation')
    settings = obstacle_settings(values, list(CITYSCAPES_CLASSES), None, warnings.append)
    rules = settings.pipeline().instance_config
    assert rules.drivable_classes == (0, 1) and rules.scenery_classes == (8,)
    assert warnings == []
    # A model without those classes: the rules are off, with one warning per list.
    names = ['background', 'lane', 'curb']
    settings = obstacle_settings(dict(DEFAULTS), names, None, warnings.append)
    rules = settings.pipeline().instance_config
    assert rules.drivable_classes is None and rules.scenery_classes is None
    assert len(warnings) == 2
    assert warnings[0].startswith("drivable_classes ['road'] are not classes of the model")
    assert warnings[1].startswith("scenery_classes ['vegetation'] are not classes")
    assert warnings[1].endswith('no anomaly is scenery')
    # Empty: off without a warning; partly known: the known ones, with a warning.
    values = dict(DEFAULTS, scenery_classes='', drivable_classes='road, gravel')
    warnings.clear()
    rules = obstacle_settings(values, list(CITYSCAPES_CLASSES), None,
                              warnings.append).pipeline().instance_config
    assert rules.scenery_classes is None and rules.drivable_classes == (0,)
    assert len(warnings) == 1 and warnings[0].endswith('using the others')


def test_size_parameters_become_the_instance_rules():
    values = dict(DEFAULTS, obstacle_min_area=0.001, obstacle_small_area=0.0002,
                  obstacle_small_peak_offset=1000.0)
    rules = obstacle_settings(values, list(CITYSCAPES_CLASSES), None,
                              print).pipeline().instance_config
    assert (rules.min_area_fraction, rules.small_area_fraction, rules.small_peak_offset) == \
        (0.001, 0.0002, 1000.0)
    defaults = obstacle_settings(dict(DEFAULTS), list(CITYSCAPES_CLASSES), None,
                                 print).pipeline().instance_config
    assert (defaults.small_area_fraction, defaults.small_peak_offset) == (6e-5, 13.0)
