"""Hostile image bytes built by hand: small messages whose headers claim huge images.

Each one decodes (in OpenCV, with no pixel budget) to a 64 MP or larger image, which is what the
issue-23 adversarial pass sent to the node and the tools.
"""

import struct
import zlib

import cv2
import numpy as np


def webp_8000() -> bytes:
    """A 38-byte lossless WebP of a uniform 8000 x 8000 image (192 MB once decoded).

    A 16 x 16 uniform image is encoded and its VP8L header's 14-bit width-1 and height-1 are
    patched: one Huffman symbol per pixel costs no bits, so OpenCV decodes all 64 MP.
    """
    ok, buf = cv2.imencode('.webp', np.full((16, 16, 3), 90, np.uint8),
                           [cv2.IMWRITE_WEBP_QUALITY, 101])         # > 100: lossless (VP8L)
    data = bytearray(buf.tobytes())
    assert ok and data[12:16] == b'VP8L' and data[20] == 0x2F
    bits = struct.unpack('<I', data[21:25])[0] & ~((1 << 28) - 1)    # keep alpha and version
    data[21:25] = struct.pack('<I', bits | 7999 | 7999 << 14)
    return bytes(data)


def jpeg_with_comments(height: int = 8000, width: int = 8000, comments: int = 17,
                       comment_bytes: int = 65533) -> bytes:
    """A JPEG whose frame header says ``height`` x ``width``, after ``comments`` COM segments.

    17 of 64 KB put the frame header 1.1 MB in, past the 1 MiB an earlier size check read.
    The entropy data is a 16 x 16 image's: libjpeg decodes the full size (grey past it).
    """
    ok, buf = cv2.imencode('.jpg', np.full((16, 16, 3), 90, np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b'\xff\xc0')
    assert ok and sof > 0
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    comment = b'\xff\xfe' + struct.pack('>H', comment_bytes + 2) + b'c' * comment_bytes
    return bytes(data[:2]) + comment * comments + bytes(data[2:])


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC of type and body."""
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_1bit(height: int = 30000, width: int = 30000, rows: int = 4) -> bytes:
    """A 1-bit grey PNG whose IHDR says ``height`` x ``width``, with only ``rows`` rows of data.

    30000 x 30000 decodes to 2.7 GB of BGR (the whole stream of zero rows is 109 KB); the
    short IDAT keeps a decoder without a budget from filling more than a few rows.
    """
    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)    # 1 bit, grey, no interlace
    raw = (b'\x00' + bytes((width + 7) // 8)) * rows                 # filter byte + packed row
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr)
            + png_chunk(b'IDAT', zlib.compress(raw, 9)) + png_chunk(b'IEND', b''))


def png_huge_chunk(length: int = 0x7FFFFFFF) -> bytes:
    """A 40 x 30 PNG whose IDAT chunk declares ``length`` bytes (OpenCV 4.14 allocated them).

    Found by test/fuzz: 2 GB of RSS for about 150 bytes, within any pixel budget.
    """
    ok, buf = cv2.imencode('.png', np.zeros((30, 40, 3), np.uint8))
    data = bytearray(buf.tobytes())
    idat = data.find(b'IDAT')
    assert ok and idat > 0
    data[idat - 4:idat] = struct.pack('>I', length)
    return bytes(data)
