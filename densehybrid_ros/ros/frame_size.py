"""A frame's size from its header, before anything is decoded or allocated.

Raw images carry width and height; JPEG and PNG carry them in their header, read by the one
header reader the decoder uses too (``core.images.check_compressed``: the whole JPEG marker
chain, any number and size of comment and APPn segments before the frame header), so a
compressed 8000 x 8000 frame is refused without decoding 192 MB. Compressed data whose size
the header does not give (WebP, TIFF, any format but JPEG and PNG, a broken header) has no
count here; the decoder refuses it with its cause before OpenCV sees it. Works on any object
with the message fields (no ROS types imported). ``check_frame_pixels`` refuses a frame over
the budget with the decoder's own ``too_large`` error (``core.images.check_pixels``).
"""

from typing import Any, Optional, Tuple

from ..core.images import check_compressed, check_pixels, ImageError


def frame_shape(msg: Any) -> Optional[Tuple[int, int]]:
    """Height and width of a raw or compressed image message; None when the header gives none."""
    if hasattr(msg, 'height') and hasattr(msg, 'width'):
        return int(msg.height), int(msg.width)
    try:
        return check_compressed(msg.data, getattr(msg, 'format', ''))
    except ImageError:
        return None               # refused by the decoder, with its cause, before decoding


def check_frame_pixels(msg: Any, max_pixels: int) -> None:
    """Raise ``too_large`` when the header says the frame is over ``max_pixels`` (0 = none)."""
    shape = frame_shape(msg) if max_pixels else None
    if shape is not None:
        check_pixels(shape[0], shape[1], max_pixels, 'frame')
