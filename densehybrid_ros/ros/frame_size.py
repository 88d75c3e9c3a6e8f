"""A frame's pixel count from its header, before anything is decoded or allocated.

Raw images carry width and height; JPEG and PNG carry them in their first bytes (PNG: the IHDR
chunk at bytes 16-24; JPEG: the start-of-frame segment after the tables), so a compressed 8000 x
8000 frame is refused without decoding 192 MB. Pure Python on ``bytes``-like data (no ROS types).
"""

import struct
from typing import Any, Optional

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers C0-CF carry the size, except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SCAN_LIMIT = 1 << 20          # the size is in the first segments; stop looking after 1 MiB


def frame_pixels(msg: Any) -> Optional[int]:
    """Width x height of a raw or compressed image message; None when the header is unknown."""
    if hasattr(msg, 'height') and hasattr(msg, 'width'):
        return int(msg.height) * int(msg.width)
    size = compressed_size(bytes(msg.data[:_SCAN_LIMIT]))
    return None if size is None else size[0] * size[1]


def compressed_size(data: bytes) -> Optional[tuple]:
    """(height, width) from a PNG or JPEG header, or None."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b'IHDR':
        width, height = struct.unpack('>II', data[16:24])
        return height, width
    if not data.startswith(b'\xff\xd8'):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None                       # not at a marker: corrupt; let the decoder say
        marker = data[pos + 1]
        if marker == 0xFF:                    # fill byte
            pos += 1
            continue
        length = struct.unpack('>H', data[pos + 2:pos + 4])[0]
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
            return height, width
        pos += 2 + length
    return None
