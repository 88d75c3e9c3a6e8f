"""image_size: the size from JPEG and PNG headers, walked the way the decoders walk them."""

import struct

import cv2
import numpy as np
import pytest

from densehybrid_ros.core.image_size import header_size, image_format
from fuzz.hostile import jpeg_with_comments, png_1bit, png_chunk, png_huge_chunk, webp_8000

RGB = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def encoded(ext: str, array: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, array, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize('ext, array, params', [
    ('.jpg', RGB, ()),
    ('.jpg', RGB[..., 0].copy(), ()),                                    # grey
    ('.jpg', RGB, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    ('.jpg', RGB, (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)),
    ('.png', RGB, ()),
    ('.png', cv2.cvtColor(RGB, cv2.COLOR_BGR2BGRA), ()),
    ('.png', RGB[..., 0].astype(np.uint16) * 257, ()),                    # 16-bit
    ('.png', (RGB[..., 0] > 128).astype(np.uint8) * 255, (cv2.IMWRITE_PNG_BILEVEL, 1)),
])
def test_the_header_size_is_the_decoded_size(ext, array, params):
    data = encoded(ext, array, params)
    assert image_format(data) == ext.strip('.').replace('jpg', 'jpeg')
    assert header_size(data) == array.shape[:2]
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == header_size(data)


def test_the_whole_jpeg_marker_chain_is_walked():
    """Issue 23 failure 1: 17 comments of 64 KB hid the frame header past the first 1 MiB."""
    data = jpeg_with_comments()
    assert data.find(b'\xff\xc0') > 1 << 20
    assert header_size(data) == (8000, 8000)
    # Any number of APPn segments of any size, too.
    app = b'\xff\xe5' + struct.pack('>H', 65535) + bytes(65533)
    assert header_size(data[:2] + app * 40 + data[2:]) == (8000, 8000)


def test_stray_bytes_and_fill_bytes_before_a_marker_are_skipped_as_libjpeg_does():
    data = encoded('.jpg', RGB)
    dqt = data.find(b'\xff\xdb')
    noisy = data[:dqt] + b'junk\xff\xff\xff' + data[dqt:]
    decoded = cv2.imdecode(np.frombuffer(noisy, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == header_size(noisy) == (37, 53)


def test_a_segment_length_under_2_skips_nothing_as_in_libjpeg():
    data = encoded('.jpg', RGB)
    bogus = data[:4] + b'\x00\x01' + data[6:]          # APP0's length: 1
    decoded = cv2.imdecode(np.frombuffer(bogus, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == header_size(bogus) == (37, 53)


@pytest.mark.parametrize('cut', ['truncated', 'scan_first', 'dnl', 'no_sof'])
def test_jpeg_headers_without_a_size(cut):
    data = encoded('.jpg', RGB)
    sof = data.find(b'\xff\xc0')
    if cut == 'truncated':
        data = data[:sof + 6]
    elif cut == 'scan_first':            # the scan before any frame header
        sos = data.find(b'\xff\xda')
        data = data[:sof] + data[sos:]
    elif cut == 'dnl':                   # height 0: defined after the scan (libjpeg refuses)
        data = data[:sof + 5] + b'\x00\x00' + data[sof + 7:]
    else:
        data = data[:sof] + b'\xff\xd9'
    assert image_format(data) == 'jpeg' and header_size(data) is None
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None


def test_a_png_chunk_longer_than_the_data_gives_no_size():
    """Found by test/fuzz: OpenCV allocated the 2 GB an IDAT chunk declared."""
    data = png_huge_chunk()
    assert len(data) < 200 and header_size(data) is None
    assert header_size(png_huge_chunk(len(data))) is None           # one byte too long is too
    ok = png_1bit(64, 64, 64)
    assert header_size(ok + b'trailing bytes after IEND') == (64, 64)


def test_png_needs_ihdr_first():
    assert header_size(png_1bit()) == (30000, 30000)
    data = png_1bit(64, 64, 64)
    moved = data[:8] + png_chunk(b'tEXt', b'a\x00b') + data[8:]
    assert image_format(moved) == 'png' and header_size(moved) is None
    assert header_size(data[:20]) is None


@pytest.mark.parametrize('ext', ['.webp', '.tiff', '.bmp', '.ppm', '.jp2', '.hdr'])
def test_other_formats_have_no_size_here(ext):
    data = encoded(ext, RGB if ext != '.hdr' else RGB.astype(np.float32))
    assert image_format(data) is None and header_size(data) is None
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def test_a_tiny_webp_can_claim_64_megapixels():
    data = webp_8000()
    assert len(data) < 64 and image_format(data) is None
