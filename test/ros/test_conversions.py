"""rclpy Image <-> numpy adapter: same decoding as the bag tools, cv_bridge as the reference."""

import cv2
import numpy as np
import pytest

pytest.importorskip('cv_bridge')
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.data import bag_writer, bags  # noqa: E402
from densehybrid_ros.core import images  # noqa: E402
from densehybrid_ros.ros import conversions as conv  # noqa: E402

from cv_bridge import CvBridge  # noqa: E402

RGB = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd sizes
BRIDGE = CvBridge()        # the reference implementation, never used by the package


def raw(array: np.ndarray, encoding: str, pad: int = 0) -> Image:
    """Build an Image by hand (not through the code under test), rows padded by ``pad``."""
    h, w = array.shape[:2]
    row = array.reshape(h, -1)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)
    padded[:, :row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize('encoding,make', [
    ('rgb8', lambda x: x),
    ('bgr8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGR)),
    ('rgba8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2RGBA)),
    ('bgra8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGRA)),
])
@pytest.mark.parametrize('pad', [0, 3, 64])
def test_colour_encodings_to_rgb(encoding, make, pad):
    out = conv.msg_to_rgb(raw(make(RGB), encoding, pad))
    assert out.dtype == np.uint8 and out.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('pad', [0, 5])
def test_mono8_is_replicated_to_rgb(pad):
    gray = RGB[..., 0].copy()
    out = conv.msg_to_rgb(raw(gray, 'mono8', pad))
    assert out.shape == gray.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_encoding_names_are_case_sensitive_as_in_ros():
    with pytest.raises(images.ImageError, match='RGB8'):
        conv.msg_to_rgb(raw(RGB, 'RGB8'))


@pytest.mark.parametrize('msg,cause', [
    (raw(RGB[..., :2].copy(), '8UC2'), 'unsupported_encoding'),
    (raw(RGB, 'rgb16'), 'unsupported_encoding'),
    (Image(height=0, width=4, encoding='rgb8', step=12), 'zero_size'),
    (Image(height=4, width=0, encoding='rgb8', step=0), 'zero_size'),
    (Image(height=2, width=4, encoding='rgb8', step=8, data=bytes(16)), 'bad_step'),
    (Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(47)), 'data_too_short'),
])
def test_bad_raw_messages_raise_named_causes(msg, cause):
    with pytest.raises(images.ImageError) as info:
        conv.msg_to_rgb(msg)
    assert info.value.cause == cause
    assert str(info.value)      # the message says what is wrong


def test_compressed_png_is_lossless_and_jpeg_close():
    np.testing.assert_array_equal(conv.msg_to_rgb(conv.rgb_to_compressed(RGB, 'png')), RGB)
    smooth = cv2.GaussianBlur(RGB, (9, 9), 3)
    out = conv.msg_to_rgb(conv.rgb_to_compressed(smooth, 'jpeg', quality=95))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < 4


def test_compressed_gray_png_becomes_rgb():
    msg = CompressedImage(format='png')
    msg.data = cv2.imencode('.png', RGB[..., 1])[1].tobytes()
    out = conv.msg_to_rgb(msg)
    assert out.shape == RGB.shape[:2] + (3,)
    np.testing.assert_array_equal(out[..., 2], RGB[..., 1])


@pytest.mark.parametrize('data,cause', [
    (b'', 'zero_size'),
    (b'\xff\xd8\xff\xe0 not really a jpeg' * 4, 'undecodable'),
    (conv.rgb_to_compressed(RGB, 'jpeg').data[:40].tobytes(), 'undecodable'),
])
def test_bad_compressed_messages_raise_named_causes(data, cause):
    msg = CompressedImage(format='jpeg')
    msg.data = data
    with pytest.raises(images.ImageError) as info:
        conv.msg_to_rgb(msg)
    assert info.value.cause == cause


@pytest.mark.parametrize('encoding,array', [
    ('rgb8', RGB), ('mono8', RGB[..., 0].copy()),
    ('32FC1', RGB[..., 0].astype(np.float32) / 7.0),
])
def test_outputs_read_back_through_cv_bridge(encoding, array):
    header = Header(frame_id='cam')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = conv.numpy_to_image(array, encoding, header)
    assert (msg.encoding, msg.height, msg.width) == (encoding, 37, 53)
    assert msg.step * msg.height == len(msg.data)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == \
        ('cam', 12, 345)
    back = BRIDGE.imgmsg_to_cv2(msg, desired_encoding='passthrough')
    np.testing.assert_array_equal(back, array)


def test_output_with_wrong_dtype_is_refused():
    with pytest.raises(ValueError, match='mono8'):
        conv.numpy_to_image(RGB[..., 0].astype(np.float32), 'mono8')


def test_cheap_checks_catch_empty_compressed_and_bad_raw_headers():
    conv.check_message(conv.rgb_to_compressed(RGB, 'jpeg'))
    conv.check_message(raw(RGB, 'rgb8', pad=2))
    with pytest.raises(images.ImageError, match='no data'):
        conv.check_message(CompressedImage(format='jpeg'))
    with pytest.raises(images.ImageError, match='yuv422'):
        conv.check_message(raw(RGB, 'yuv422'))


@pytest.mark.parametrize('encoding,array', [('rgb8', RGB), ('mono8', RGB[..., 0].copy()),
                                            ('32FC1', RGB[..., 1].astype(np.float32))])
def test_outputs_are_byte_identical_to_cv_bridge(encoding, array):
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')     # 1.13 on numpy < 2.3: tostring, deprecated
            reference = BRIDGE.cv2_to_imgmsg(array, encoding)
    except AttributeError:
        pytest.skip('this cv_bridge cannot encode on this numpy')
    ours = conv.numpy_to_image(array, encoding)
    for field in ('height', 'width', 'encoding', 'is_bigendian', 'step', 'data'):
        assert getattr(ours, field) == getattr(reference, field), field


@pytest.mark.parametrize('encoding, make', [
    ('rgb8', lambda x: x), ('bgr8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGR)),
    ('rgba8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2RGBA)),
    ('bgra8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGRA)),
    ('mono8', lambda x: np.ascontiguousarray(x[..., 0])),
])
def test_decoding_matches_cv_bridge(encoding, make):
    msg = raw(make(RGB), encoding)
    np.testing.assert_array_equal(conv.msg_to_rgb(msg),
                                  BRIDGE.imgmsg_to_cv2(msg, desired_encoding='rgb8'))


@pytest.mark.parametrize('encoding, array', [
    ('rgb8', RGB), ('bgr8', RGB), ('rgba8', np.dstack([RGB, RGB[..., :1]])),
    ('bgra8', np.dstack([RGB, RGB[..., :1]])), ('mono8', RGB[..., 0]),
    ('8UC3', RGB), ('mono16', RGB[..., :2]), ('32FC1', RGB[..., :4]), ('yuv422', RGB[..., :2]),
])
@pytest.mark.parametrize('pad', [0, 6])
def test_node_and_bag_tools_accept_exactly_the_same_cameras(encoding, array, pad):
    """The same bytes as an rclpy message (node) and a rosbags message (eval, replay)."""
    ros = raw(np.ascontiguousarray(array), encoding, pad)
    bag = bag_writer.array_to_image(np.zeros((1, 1), np.uint8), 'mono8', 1)
    bag.encoding, bag.height, bag.width, bag.step = encoding, ros.height, ros.width, ros.step
    bag.data = np.frombuffer(bytes(ros.data), np.uint8)
    try:
        ours = conv.msg_to_rgb(ros)
    except images.ImageError as exc:
        with pytest.raises(bags.BagError, match=exc.cause):
            bags.image_to_array(bag, camera=True)
        assert encoding in ('8UC3', 'mono16', '32FC1', 'yuv422')
    else:
        np.testing.assert_array_equal(bags.image_to_array(bag, camera=True), ours)


def test_the_callers_pixel_budget_is_the_one_applied():
    """The node passes its max_input_pixels: above 16 MP accepted, below the frame refused."""
    big = CompressedImage(format='png')       # 4097 x 4096 grey: over the 16 MP default
    big.data = cv2.imencode('.png', np.zeros((4096, 4097), np.uint8))[1].tobytes()
    with pytest.raises(images.ImageError, match='over the pixel budget of 16777216'):
        conv.msg_to_rgb(big)
    assert conv.msg_to_rgb(big, max_pixels=4096 * 4097).shape == (4096, 4097, 3)
    small = raw(RGB, 'rgb8')
    np.testing.assert_array_equal(conv.msg_to_rgb(small, max_pixels=37 * 53), RGB)
    for msg in (small, conv.rgb_to_compressed(RGB, 'png')):
        with pytest.raises(images.ImageError) as info:
            conv.msg_to_rgb(msg, max_pixels=37 * 53 - 1)
        assert info.value.cause == 'too_large'
