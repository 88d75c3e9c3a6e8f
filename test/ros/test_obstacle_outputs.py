"""Depth images as the node receives them: decoded as stored, None when nothing is valid."""

import numpy as np
import pytest

pytest.importorskip('rclpy')
from sensor_msgs.msg import Image  # noqa: E402

from densehybrid_ros.ros.obstacle_outputs import depth_from_message  # noqa: E402


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
