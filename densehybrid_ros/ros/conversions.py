"""sensor_msgs Image / CompressedImage <-> numpy, through cv_bridge, with named failures.

Inputs become H x W x 3 uint8 RGB. Every way a message can be unusable raises its own
``ImageConversionError`` subclass whose ``cause`` is a short key used in counters and logs.

cv_bridge versions differ: the PyPI 1.13 wheel ignores ``step`` (row padding) and its
``cv2_to_imgmsg`` calls ``ndarray.tostring``, which numpy 2 removed. So padded rows are cropped
here with a strided view, and where ``cv2_to_imgmsg`` does not work the output message is built
the same way it builds it (one ``tobytes()`` copy): the bytes are identical on every distro.
"""

from typing import Any, Optional, Union
import warnings

import cv2
from cv_bridge import CvBridge, CvBridgeError
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
_TO_RGB = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
           'bgra8': cv2.COLOR_BGRA2RGB, 'mono8': cv2.COLOR_GRAY2RGB}
_OUTPUT_TYPES = {'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'mono8': (np.uint8, 1),
                 '32FC1': (np.float32, 1)}
_BRIDGE: Optional[CvBridge] = None
_BRIDGE_ENCODES: Optional[bool] = None


class ImageConversionError(ValueError):
    """A message that cannot be turned into an image; ``cause`` names why."""

    cause = 'conversion_failed'


class UnsupportedEncodingError(ImageConversionError):
    """The raw image encoding is not one of ``CHANNELS``."""

    cause = 'unsupported_encoding'


class EmptyImageError(ImageConversionError):
    """Width, height or compressed data size is zero."""

    cause = 'zero_size'


class BadStepError(ImageConversionError):
    """``step`` is smaller than ``width * channels``."""

    cause = 'bad_step'


class TruncatedDataError(ImageConversionError):
    """``data`` holds fewer than ``height * step`` bytes."""

    cause = 'data_too_short'


class UndecodableImageError(ImageConversionError):
    """Compressed data that OpenCV cannot decode (corrupt JPEG/PNG, unknown format)."""

    cause = 'undecodable'


def bridge() -> CvBridge:
    """Process-wide CvBridge (it holds only lookup tables)."""
    global _BRIDGE
    if _BRIDGE is None:
        _BRIDGE = CvBridge()
    return _BRIDGE


def check_image(msg: Image) -> None:
    """Raise the specific ImageConversionError if the raw message's header cannot be right."""
    encoding = msg.encoding
    if encoding not in CHANNELS:
        raise UnsupportedEncodingError(
            f'unsupported encoding {msg.encoding!r} (accepted: {", ".join(CHANNELS)})')
    if msg.width == 0 or msg.height == 0:
        raise EmptyImageError(f'zero-size image {msg.width}x{msg.height}')
    row = msg.width * CHANNELS[encoding]
    if msg.step < row:
        raise BadStepError(f'step {msg.step} < width {msg.width} x {CHANNELS[encoding]} '
                           f'channels for {encoding}')
    if len(msg.data) < msg.height * msg.step:
        raise TruncatedDataError(f'data has {len(msg.data)} bytes, fewer than height '
                                 f'{msg.height} x step {msg.step} = {msg.height * msg.step}')


def check_message(msg: Union[Image, CompressedImage]) -> None:
    """O(1) checks of either kind of message (decoding errors show only when decoding)."""
    if isinstance(msg, CompressedImage):
        if len(msg.data) == 0:
            raise EmptyImageError(f'compressed image ({msg.format or "no format"}) has no data')
    else:
        check_image(msg)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Raw Image (rgb8, bgr8, rgba8, bgra8, mono8; any row padding) -> H x W x 3 uint8 RGB."""
    check_image(msg)
    encoding = msg.encoding
    channels = CHANNELS[encoding]
    if msg.step == msg.width * channels:
        try:
            array = bridge().imgmsg_to_cv2(msg, desired_encoding='passthrough')
        except (CvBridgeError, TypeError, ValueError) as exc:
            raise ImageConversionError(f'cv_bridge failed on {encoding}: {exc}') from None
    else:  # rows padded to `step` bytes: view without copying, then drop the padding
        rows = np.frombuffer(msg.data, np.uint8, msg.height * msg.step).reshape(
            msg.height, msg.step)
        array = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if encoding == 'rgb8':
        return np.ascontiguousarray(array)
    return cv2.cvtColor(array, _TO_RGB[encoding])


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """JPEG or PNG CompressedImage -> H x W x 3 uint8 RGB."""
    if len(msg.data) == 0:
        raise EmptyImageError(f'compressed image ({msg.format or "no format"}) has no data')
    try:
        array = bridge().compressed_imgmsg_to_cv2(msg, desired_encoding='passthrough')
    except (CvBridgeError, cv2.error, TypeError, ValueError) as exc:
        raise UndecodableImageError(f'cannot decode {msg.format or "compressed"} data '
                                    f'({len(msg.data)} bytes): {exc}') from None
    if array is None or array.size == 0:
        raise UndecodableImageError(f'cannot decode {msg.format or "compressed"} data '
                                    f'({len(msg.data)} bytes): not a readable JPEG or PNG')
    if array.dtype != np.uint8:
        array = cv2.convertScaleAbs(array, alpha=255.0 / 65535.0)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(array, code)


def msg_to_rgb(msg: Union[Image, CompressedImage]) -> np.ndarray:
    """Either kind of image message -> H x W x 3 uint8 RGB."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg)
    return image_to_rgb(msg)


def numpy_to_image(array: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """H x W (x C) array -> Image with ``encoding`` (rgb8, bgr8, mono8, 32FC1), one copy."""
    dtype, channels = _OUTPUT_TYPES[encoding]
    shape = array.shape[:2] if channels == 1 else array.shape[:2] + (channels,)
    if array.dtype != dtype or array.shape != shape:
        raise ValueError(f'{encoding} needs a {dtype.__name__} array shaped H x W'
                         f'{"" if channels == 1 else f" x {channels}"}, '
                         f'got {array.dtype} {array.shape}')
    array = np.ascontiguousarray(array)
    msg = bridge().cv2_to_imgmsg(array, encoding) if _bridge_encodes() else \
        _direct_image(array, encoding)
    if header is not None:
        msg.header = header
    return msg


def _direct_image(array: np.ndarray, encoding: str) -> Image:
    """Build the message as cv_bridge's cv2_to_imgmsg does, for versions where it breaks."""
    msg = Image(height=int(array.shape[0]), width=int(array.shape[1]), encoding=encoding,
                is_bigendian=0)
    msg.data = array.tobytes()
    msg.step = len(msg.data) // msg.height
    return msg


def _bridge_encodes() -> bool:
    """Whether cv2_to_imgmsg works cleanly here (1.13 uses tostring, gone in numpy 2.3)."""
    global _BRIDGE_ENCODES
    if _BRIDGE_ENCODES is None:
        with warnings.catch_warnings():
            warnings.simplefilter('error')      # a deprecated call counts as broken
            try:
                bridge().cv2_to_imgmsg(np.zeros((1, 1), np.uint8), 'mono8')
                _BRIDGE_ENCODES = True
            except (AttributeError, CvBridgeError, TypeError, Warning):
                _BRIDGE_ENCODES = False
    return _BRIDGE_ENCODES


def rgb_to_compressed(rgb: np.ndarray, fmt: str = 'jpeg', header: Optional[Header] = None,
                      quality: int = 90) -> CompressedImage:
    """H x W x 3 uint8 RGB -> CompressedImage in ``fmt`` ('jpeg' or 'png')."""
    params: Any = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if fmt == 'jpeg' else '.' + fmt,
                           cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f'OpenCV cannot encode {fmt}')
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg
