"""A frame's pixel count from its header, before anything is decoded or allocated.

Raw images carry width and height; JPEG and PNG carry them in their header, read by the one
header reader the decoder uses too (``core.images.check_compressed``: the whole JPEG marker
chain, any number and size of comment and APPn segments before the frame header), so a
compressed 8000 x 8000 frame is refused without decoding 192 MB. Compressed data whose size
the header does not give (WebP, TIFF, any format but JPEG and PNG, a broken header) has no
count here; the decoder refuses it with its cause before OpenCV sees it. Works on any object
with the message fields (no ROS types imported).
"""

from typing import Any, Optional

from ..core.images import check_compressed, ImageError


def frame_pixels(msg: Any) -> Optional[int]:
    """Width x height of a raw or compressed image message; None when the header gives none."""
    if hasattr(msg, 'height') and hasattr(msg, 'width'):
        return int(msg.height) * int(msg.width)
    try:
        height, width = check_compressed(msg.data, getattr(msg, 'format', ''))
    except ImageError:
        return None               # refused by the decoder, with its cause, before decoding
    return height * width
