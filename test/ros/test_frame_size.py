"""frame_size: pixel counts from headers (raw, PNG, JPEG) and the node's max_input_pixels drop."""

import numpy as np
import pytest

from fuzz.hostile import jpeg_with_comments, webp_8000

pytest.importorskip('rclpy')
pytest.importorskip('cv_bridge')
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from densehybrid_ros.ros.conversions import rgb_to_compressed  # noqa: E402
from densehybrid_ros.core.images import ImageError  # noqa: E402
from densehybrid_ros.ros.frame_size import check_frame_pixels, frame_shape  # noqa: E402
from densehybrid_ros.ros.node import Camera, DenseHybridNode, TOO_LARGE  # noqa: E402


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_headers_give_the_size_without_decoding(fmt):
    rgb = np.zeros((37, 53, 3), np.uint8)
    msg = rgb_to_compressed(rgb, fmt)
    assert frame_shape(msg) == (37, 53)


def test_raw_and_unknown_headers():
    assert frame_shape(Image(height=8000, width=8000)) == (8000, 8000)
    assert frame_shape(CompressedImage(format='jpeg', data=b'\xff\xd8' + bytes(50))) is None
    assert frame_shape(CompressedImage(format='gif', data=b'GIF89a')) is None
    assert frame_shape(CompressedImage(format='webp', data=webp_8000())) is None  # decoder says


def test_a_frame_over_the_budget_gets_the_decoders_too_large_error():
    check_frame_pixels(Image(height=30, width=40), 1200)                  # at the budget
    check_frame_pixels(Image(height=8000, width=8000), 0)                 # 0: no budget
    check_frame_pixels(CompressedImage(format='gif', data=b'GIF89a'), 1)  # no size: decoder's
    with pytest.raises(ImageError, match='frame of 40x31 = 1240 pixels is over the pixel '
                                         'budget of 1200') as exc:
        check_frame_pixels(Image(height=31, width=40), 1200)
    assert exc.value.cause == TOO_LARGE


def test_the_whole_jpeg_header_is_read_not_the_first_mebibyte():
    """Issue 23 failure 1: the frame header after 17 comments of 64 KB was never found."""
    msg = CompressedImage(format='jpeg', data=jpeg_with_comments())
    assert len(msg.data) > 1 << 20 and frame_shape(msg) == (8000, 8000)


def test_node_drops_frames_above_the_limit_before_decoding(ros_context):
    node = DenseHybridNode('densehybrid_frame_size_test', context=ros_context)
    try:
        assert node.set_parameters([Parameter('max_input_pixels', value=100_000)])[0].successful
        cam = Camera('/cam/image', '/cam/densehybrid')
        big = Image(height=8000, width=8000, encoding='mono8', step=8000)
        big.data = bytes(8000 * 8000)          # a valid frame: only its size is wrong
        node._on_frame(cam, big)
        assert cam.pending is None and cam.stats.report().bad == {TOO_LARGE: 1}
        small = Image(height=240, width=320, encoding='mono8', step=320, data=bytes(320 * 240))
        node._on_frame(cam, small)
        assert cam.pending is small
        assert node.set_parameters([Parameter('max_input_pixels', value=0)])[0].successful
        cam.pending = None
        node._on_frame(cam, big)                # 0 = no limit
        assert cam.pending is big
        assert node.set_parameters([Parameter('max_input_pixels', value=100_000)])[0].successful
        cam.pending = None
        node._on_frame(cam, CompressedImage(format='jpeg', data=jpeg_with_comments()))
        assert cam.pending is None and cam.stats.report().bad == {TOO_LARGE: 2}
    finally:
        node.destroy_node()
