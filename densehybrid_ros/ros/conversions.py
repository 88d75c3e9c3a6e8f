"""sensor_msgs Image / CompressedImage <-> numpy: a thin rclpy adapter over ``images``.

Decoding and encoding live in the pure core (``densehybrid_ros.core.images``), shared with the bag
tools, so the node accepts exactly what offline evaluation accepts. Failures raise
``images.ImageError`` (its ``cause`` is the key used in diagnostics counters).
"""

from typing import Optional, Union

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..core.images import (check_raw, decode_compressed, decode_rgb, encode, encode_compressed,
                           ImageError, MAX_PIXELS)

ImageMsg = Union[Image, CompressedImage]


def check_message(msg: ImageMsg) -> None:
    """O(1) checks of either kind of message (compressed data errors show only when decoding)."""
    if isinstance(msg, CompressedImage):
        if len(msg.data) == 0:
            raise ImageError('zero_size',
                             f'compressed image ({msg.format or "no format"}) has no data')
    else:
        check_raw(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))


def msg_to_rgb(msg: ImageMsg, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Either kind of camera message -> H x W x 3 uint8 RGB (accepted: ``images`` decides).

    ``max_pixels`` is the caller's pixel budget (the node's ``max_input_pixels``; 0 = none):
    a larger frame raises ``too_large`` before anything is decoded.
    """
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.data, msg.format, max_pixels)
    return decode_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, max_pixels)


def numpy_to_image(array: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """H x W (x C) array of the encoding's dtype -> Image (one copy into the message)."""
    height, width, step, data = encode(array, encoding)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = data.tobytes()
    if header is not None:
        msg.header = header
    return msg


def output_to_compressed(image: np.ndarray, encoding: str,
                         header: Optional[Header] = None) -> CompressedImage:
    """image_transport-style compressed twin of an output: PNG for mono8 (exact ids), else JPEG."""
    fmt, target = ('png', 'mono8') if encoding == 'mono8' else ('jpeg', 'bgr8')
    msg = CompressedImage(format=f'{encoding}; {fmt} compressed {target}')
    msg.data = encode_compressed(image, fmt)
    if header is not None:
        msg.header = header
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = 'jpeg', header: Optional[Header] = None,
                      quality: int = 90) -> CompressedImage:
    """H x W x 3 uint8 RGB -> CompressedImage in ``fmt`` ('jpeg' or 'png')."""
    msg = CompressedImage(format=fmt)
    msg.data = encode_compressed(rgb, fmt, quality)
    if header is not None:
        msg.header = header
    return msg
