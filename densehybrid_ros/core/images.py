"""Image message bytes <-> numpy: the one decoder and encoder every path uses (pure core).

The node (``ros/conversions.py``, rclpy messages) and the bag tools (``bags.py``, rosbags
messages) are thin adapters that pass ``(encoding, height, width, step, data)`` here, so the
node and offline evaluation accept exactly the same data.

* Camera images: :data:`CAMERA_ENCODINGS` (rgb8, bgr8, rgba8, bgra8, mono8) or JPEG/PNG become
  H x W x 3 uint8 RGB. Not accepted: 16-bit, Bayer, YUV and ``8UC3`` (its channel order is
  unknown), which the model cannot take without a guess.
* Maps (labels, recorded node outputs): :data:`MAP_ENCODINGS` (mono8, 8UC1, rgb8, 32FC1) come
  back with their own dtype and channels.

Every way bytes can be unusable raises :class:`ImageError` with a ``cause`` from
:data:`CAUSES`, the short key used in diagnostics counters and logs.

One pixel budget for every decoder (``max_pixels``, default :data:`MAX_PIXELS`, the node's
``max_input_pixels``; 0 = no limit): the size is read from the raw header, or from the JPEG/PNG
header (``image_size``), and a frame over budget is refused as ``too_large`` before anything is
allocated for its pixels. Compressed data that is not JPEG or PNG is refused as
``unsupported_format`` before OpenCV sees it: OpenCV would also decode WebP, TIFF, BMP and more,
whose size is not checked first (a 2.9 KB WebP decodes to 192 MB), so a frame over budget would
cost the whole image.
"""

from typing import Dict, Tuple, Union

import cv2
import numpy as np

from .image_size import header_size, image_format

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]
# encoding -> (dtype, channels): what :func:`encode` writes. Decoding accepts the subsets below
# (16-bit is writable only so that tests and tools can produce it and see it refused).
ENCODINGS: Dict[str, Tuple[type, int]] = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4), 'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1),
    'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}
CAMERA_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
MAP_ENCODINGS = ('mono8', '8UC1', 'rgb8', '32FC1')
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')      # millimetres (uint16) or metres (float32)
_TO_RGB = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
           'bgra8': cv2.COLOR_BGRA2RGB, 'mono8': cv2.COLOR_GRAY2RGB}
COMPRESSED_FORMATS = {'jpeg': '.jpg', 'png': '.png'}
MAX_PIXELS = 16_777_216        # 4096 x 4096: the node's max_input_pixels default


class ImageError(ValueError):
    """Bytes that cannot be turned into an image; ``cause`` is one of :data:`CAUSES`."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


CAUSES = {
    'unsupported_encoding': 'the raw encoding is not one of those accepted for this use',
    'zero_size': 'width, height or compressed data size is zero',
    'bad_step': 'step is smaller than one row of pixels',
    'data_too_short': 'data holds fewer than height x step bytes',
    'undecodable': 'JPEG/PNG data OpenCV cannot decode, or whose header gives no size',
    'unsupported_format': 'compressed data that is not JPEG or PNG (its size is unknown '
                          'before decoding)',
    'too_large': 'more pixels (width x height, from the header) than the pixel budget',
}


# ------------------------------------------------------------------------------ decoding
def check_pixels(height: int, width: int, max_pixels: int, what: str = 'image') -> None:
    """Raise ``too_large`` when ``height x width`` exceeds ``max_pixels`` (0 = no limit)."""
    if max_pixels and height * width > max_pixels:
        raise ImageError('too_large', f'{what} of {width}x{height} = {height * width} pixels is '
                                      f'over the pixel budget of {max_pixels}')


def check_raw(encoding: str, height: int, width: int, step: int, size: int,
              accepted: Tuple[str, ...] = CAMERA_ENCODINGS, max_pixels: int = 0) -> None:
    """O(1) checks of a raw image header against its ``size`` data bytes; raise if unusable.

    ``max_pixels`` is the pixel budget (0 = none: the decoders pass theirs).
    """
    if encoding not in accepted:
        raise ImageError('unsupported_encoding', f'unsupported encoding {encoding!r} '
                                                 f'(accepted: {", ".join(accepted)})')
    if width == 0 or height == 0:
        raise ImageError('zero_size', f'zero-size image {width}x{height}')
    check_pixels(height, width, max_pixels, f'{encoding} image')
    dtype, channels = ENCODINGS[encoding]
    row = width * channels * np.dtype(dtype).itemsize
    if step < row:
        raise ImageError('bad_step', f'step {step} < width {width} x {channels} channels x '
                                     f'{np.dtype(dtype).itemsize} bytes for {encoding}')
    if size < height * step:
        raise ImageError('data_too_short', f'data has {size} bytes, fewer than height '
                                           f'{height} x step {step} = {height * step}')


def check_compressed(data: Buffer, fmt: str = '', max_pixels: int = 0) -> Tuple[int, int]:
    """(height, width) of JPEG or PNG data from its header, before decoding; raise if unusable.

    Refused: no data (``zero_size``), any other format (``unsupported_format``; ``fmt``, the
    message's format string, is only named in errors: the bytes decide), a header that gives no
    size (``undecodable``), more than ``max_pixels`` (``too_large``; 0 = no limit).
    """
    head = data if isinstance(data, bytes) else np.frombuffer(data, np.uint8).tobytes()
    name = fmt or 'compressed'
    if not head:
        raise ImageError('zero_size', f'compressed image ({fmt or "no format"}) has no data')
    kind = image_format(head)
    if kind is None:
        raise ImageError('unsupported_format', f'{name} data ({len(head)} bytes, starting '
                                               f'{head[:8]!r}) is not JPEG or PNG, the formats '
                                               f'whose size is checked before decoding')
    size = header_size(head)
    if size is None:
        raise ImageError('undecodable', f'cannot decode {name} data ({len(head)} bytes): the '
                                        f'{kind.upper()} header gives no image size, or a '
                                        f'part declares more bytes than the data has')
    check_pixels(size[0], size[1], max_pixels, f'{kind.upper()} image')
    return size


def _pixels(encoding: str, height: int, width: int, step: int, data: Buffer,
            bigendian: bool, accepted: Tuple[str, ...], max_pixels: int) -> np.ndarray:
    """H x W (x C) view of the pixels, row padding skipped without a copy (not contiguous)."""
    buf = np.frombuffer(data, np.uint8)
    check_raw(encoding, height, width, step, buf.size, accepted, max_pixels)
    dtype, channels = ENCODINGS[encoding]
    order = '>' if bigendian else '<'
    itemsize = np.dtype(dtype).itemsize
    rows = buf[:height * step].reshape(height, step)[:, :width * channels * itemsize]
    if itemsize > 1:            # multi-byte pixels: reinterpret aligned, native-order copy
        rows = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
        rows = rows.astype(np.dtype(dtype).newbyteorder('='), copy=False)
    return rows.reshape((height, width, channels) if channels > 1 else (height, width))


def decode_rgb(encoding: str, height: int, width: int, step: int, data: Buffer,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Raw camera image (:data:`CAMERA_ENCODINGS`, any row padding) -> H x W x 3 uint8 RGB."""
    pixels = _pixels(encoding, height, width, step, data, False, CAMERA_ENCODINGS, max_pixels)
    if encoding == 'rgb8':
        return np.ascontiguousarray(pixels)      # a view of ``data`` unless rows are padded
    return cv2.cvtColor(pixels, _TO_RGB[encoding])


def decode_map(encoding: str, height: int, width: int, step: int, data: Buffer,
               bigendian: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Raw label or output map (:data:`MAP_ENCODINGS`) -> H x W (x 3) array of its own dtype."""
    return np.array(_pixels(encoding, height, width, step, data, bigendian, MAP_ENCODINGS,
                            max_pixels))


def decode_depth(encoding: str, height: int, width: int, step: int, data: Buffer,
                 bigendian: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Raw depth image (:data:`DEPTH_ENCODINGS`) -> H x W uint16 (mm) or float32 (m) array."""
    return np.array(_pixels(encoding, height, width, step, data, bigendian, DEPTH_ENCODINGS,
                            max_pixels))


def _imdecode(data: Buffer, fmt: str, flags: int, max_pixels: int) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    check_compressed(buf, fmt, max_pixels)      # before OpenCV allocates anything
    try:
        array = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        array, reason = None, ' '.join(str(exc).split())
    else:
        reason = 'not a readable JPEG or PNG'
    if array is None or array.size == 0:
        raise ImageError('undecodable', f'cannot decode {fmt or "compressed"} data '
                                        f'({buf.size} bytes): {reason}')
    return array


def decode_compressed(data: Buffer, fmt: str = '', max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """JPEG or PNG camera image -> H x W x 3 uint8 RGB (grey, alpha and 16-bit converted)."""
    return cv2.cvtColor(_imdecode(data, fmt, cv2.IMREAD_COLOR, max_pixels), cv2.COLOR_BGR2RGB)


def decode_compressed_map(data: Buffer, fmt: str = '',
                          max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG (or JPEG) map -> H x W as stored when single-channel, else H x W x 3 RGB."""
    array = _imdecode(data, fmt, cv2.IMREAD_UNCHANGED, max_pixels)
    if array.ndim == 2:
        return array
    return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------ encoding
def encode(array: np.ndarray, encoding: str) -> Tuple[int, int, int, np.ndarray]:
    """H x W (x C) array -> ``(height, width, step, flat uint8 data)``, little-endian, no padding.

    The array must already have the encoding's dtype and channels (no silent conversion).
    """
    if encoding not in ENCODINGS:
        raise ImageError('unsupported_encoding', f'cannot encode {encoding!r} (encodings: '
                                                 f'{", ".join(ENCODINGS)})')
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    shape_ok = array.ndim == 2 if channels == 1 else (array.ndim == 3
                                                      and array.shape[2] == channels)
    if array.dtype != dtype or not shape_ok:
        raise ValueError(f'{encoding} needs a {np.dtype(dtype).name} array shaped H x W'
                         f'{"" if channels == 1 else f" x {channels}"}, '
                         f'got {array.dtype} {array.shape}')
    array = np.ascontiguousarray(array.astype(np.dtype(dtype).newbyteorder('<'), copy=False))
    height, width = array.shape[:2]
    return height, width, width * channels * array.itemsize, array.reshape(-1).view(np.uint8)


def encode_compressed(array: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> bytes:
    """H x W x 3 uint8 RGB or H x W uint8 -> JPEG or PNG bytes."""
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f'compressed format must be one of {", ".join(COMPRESSED_FORMATS)}, '
                         f'got {fmt!r}')
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3
                                                           and array.shape[2] == 3)):
        raise ValueError(f'{fmt} needs H x W x 3 RGB or H x W uint8, got {array.dtype} '
                         f'{array.shape}')
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode(COMPRESSED_FORMATS[fmt], bgr, params)
    if not ok:
        raise ValueError(f'OpenCV cannot encode a {array.shape} array as {fmt}')
    return buf.tobytes()
