"""An image's size from its header, before any pixel is decoded (pure core, bytes only).

The decoder accepts JPEG and PNG, what image_transport's compressed plugin sends; both carry
their size in the header. PNG: the IHDR chunk, which must come first (bytes 16-24); every chunk
must also fit in the data, as OpenCV allocates what a chunk declares. JPEG: the start-of-frame
segment, after any number of tables, comments and APPn segments of any size. The whole marker
chain is walked the way libjpeg walks it (segment lengths, fill bytes, stray bytes before a
marker skipped), so the size found is the one the decoder allocates; a header that ends, or
reaches the scan, before a frame header has no size. Any other format (WebP, TIFF, BMP, ...) is
not read here: its size is unknown until decoded, so the decoder refuses it.

Walking costs one pass over the segment headers: about 40 markers for a camera JPEG, and the
comment segments of a hostile one are jumped over, not read (``bytes.find`` for stray bytes).
"""

import struct
from typing import Optional, Tuple

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SIGNATURE = b'\xff\xd8\xff'        # SOI, then the first marker's 0xFF (OpenCV's check too)
# JPEG start-of-frame markers C0-CF carry the size, except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS, _EOI = 0xDA, 0xD9
# Markers without a length field: TEM, RSTn, SOI (a second SOI is an error to libjpeg).
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def image_format(data: bytes) -> Optional[str]:
    """'jpeg' or 'png' from the first bytes (what OpenCV checks too), None for anything else."""
    if data[:8] == PNG_SIGNATURE:
        return 'png'
    if data[:3] == JPEG_SIGNATURE:
        return 'jpeg'
    return None


def header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) from a JPEG or PNG header; None when the header does not give it.

    None also for a zero width or height (a JPEG whose height comes after the scan, DNL).
    """
    fmt = image_format(data)
    if fmt == 'png':
        size = _png_size(data)
    elif fmt == 'jpeg':
        size = _jpeg_size(data)
    else:
        return None
    return size if size is not None and size[0] > 0 and size[1] > 0 else None


def _png_size(data: bytes) -> Optional[Tuple[int, int]]:
    # signature (8), then the IHDR chunk: length 13 (4), b'IHDR' (4), width, height (4 + 4), ...
    if len(data) < 24 or data[8:16] != b'\x00\x00\x00\x0dIHDR':
        return None
    width, height = struct.unpack('>II', data[16:24])
    return (height, width) if _png_chunks_fit(data) else None


def _png_chunks_fit(data: bytes) -> bool:
    """Tell whether every chunk up to IEND (or the end) lies within ``data``.

    OpenCV 4.14 allocates a chunk's declared length before reading it: a 150-byte 40 x 30 PNG
    whose IDAT declared 2 GB took 2 GB (found by test/fuzz), so such data has no size here.
    """
    pos, end = 8, len(data)
    while pos < end:
        if pos + 12 > end:
            return False                      # a chunk header cut short
        length = struct.unpack('>I', data[pos:pos + 4])[0]
        if pos + 12 + length > end:
            return False
        if data[pos + 4:pos + 8] == b'IEND':
            return True
        pos += 12 + length
    return True


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    pos = 2                                   # after SOI
    end = len(data)
    while True:
        marker, pos = _next_marker(data, pos)
        if marker is None or marker in (_SOS, _EOI):
            return None                       # no frame header before the scan or the end
        if marker in _STANDALONE:
            continue
        if pos + 2 > end:
            return None
        length = struct.unpack('>H', data[pos:pos + 2])[0]
        if marker in _SOF:
            # length (2), precision (1), height (2), width (2), ...; libjpeg takes the first
            if length < 8 or pos + 7 > end:
                return None
            height, width = struct.unpack('>HH', data[pos + 3:pos + 7])
            return height, width
        # A length under 2 skips nothing after the length field (libjpeg's skip_variable).
        pos += max(length, 2)


def _next_marker(data: bytes, pos: int) -> Tuple[Optional[int], int]:
    """Find the next marker code at or after ``pos``; return it and the position after it.

    libjpeg's rules: bytes before a 0xFF are skipped, as are 0xFF fill bytes, and 0xFF 0x00
    is not a marker.
    """
    while True:
        pos = data.find(b'\xff', pos)
        if pos < 0:
            return None, len(data)
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            return None, pos
        code = data[pos]
        pos += 1
        if code != 0:
            return code, pos
