"""The one image decoder/encoder: accepted encodings, padding, byte order, named failures."""

from pathlib import Path
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from densehybrid_ros.core import images
from fuzz.hostile import jpeg_with_comments, png_1bit, webp_8000

REPO = Path(__file__).resolve().parents[2]
RGB = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd sizes
SCORE = np.linspace(-7, 3, 37 * 53, dtype=np.float32).reshape(37, 53)


def raw(array: np.ndarray, pad: int = 0, order: str = '<'):
    """(height, width, step, bytes) built by hand, rows padded by ``pad`` bytes."""
    h, w = array.shape[:2]
    if array.dtype.itemsize > 1:
        array = array.astype(array.dtype.newbyteorder(order))
    row = np.ascontiguousarray(array).view(np.uint8).reshape(h, -1)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)
    padded[:, :row.shape[1]] = row
    return h, w, padded.shape[1], padded.tobytes()


@pytest.mark.parametrize('encoding, make', [
    ('rgb8', lambda x: x),
    ('bgr8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGR)),
    ('rgba8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2RGBA)),
    ('bgra8', lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGRA)),
    ('mono8', lambda x: np.ascontiguousarray(x[..., 1])),
])
@pytest.mark.parametrize('pad', [0, 3, 64])
def test_camera_encodings_become_rgb(encoding, make, pad):
    out = images.decode_rgb(encoding, *raw(make(RGB), pad))
    assert out.shape == RGB.shape and out.dtype == np.uint8 and out.flags['C_CONTIGUOUS']
    expect = np.repeat(RGB[..., 1:2], 3, axis=2) if encoding == 'mono8' else RGB
    np.testing.assert_array_equal(out, expect)


@pytest.mark.parametrize('encoding, array', [
    ('mono8', RGB[..., 0].copy()), ('8UC1', RGB[..., 2].copy()), ('rgb8', RGB),
    ('32FC1', SCORE),
])
@pytest.mark.parametrize('pad, order', [(0, '<'), (8, '<'), (4, '>')])
def test_maps_keep_their_dtype_and_byte_order_is_honoured(encoding, array, pad, order):
    out = images.decode_map(encoding, *raw(array, pad, order), bigendian=order == '>')
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize('decode, encoding', [
    (images.decode_rgb, 'mono16'), (images.decode_rgb, '8UC3'), (images.decode_rgb, '32FC1'),
    (images.decode_rgb, 'yuv422'), (images.decode_rgb, 'RGB8'),    # names are case-sensitive
    (images.decode_map, 'bgr8'), (images.decode_map, 'mono16'),
])
def test_encodings_outside_the_agreed_sets_are_refused(decode, encoding):
    with pytest.raises(images.ImageError, match=repr(encoding)) as info:
        decode(encoding, *raw(RGB))
    assert info.value.cause == 'unsupported_encoding'


@pytest.mark.parametrize('shape, cause', [
    ((0, 4, 12, bytes(0)), 'zero_size'),
    ((4, 0, 0, bytes(0)), 'zero_size'),
    ((2, 4, 8, bytes(16)), 'bad_step'),
    ((4, 4, 12, bytes(47)), 'data_too_short'),
])
def test_bad_headers_raise_named_causes(shape, cause):
    with pytest.raises(images.ImageError) as info:
        images.decode_rgb('rgb8', *shape)
    assert info.value.cause == cause and cause in images.CAUSES and str(info.value)
    with pytest.raises(images.ImageError) as info:
        images.check_raw('rgb8', *shape[:3], len(shape[3]))
    assert info.value.cause == cause


def test_compressed_png_is_lossless_and_jpeg_close():
    png = images.encode_compressed(RGB, 'png')
    np.testing.assert_array_equal(images.decode_compressed(png, 'png'), RGB)
    smooth = cv2.GaussianBlur(RGB, (9, 9), 3)
    out = images.decode_compressed(images.encode_compressed(smooth, 'jpeg', 95), 'jpeg')
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 4


def test_grey_png_is_rgb_for_cameras_and_single_channel_for_maps():
    png = images.encode_compressed(RGB[..., 1].copy(), 'png')
    camera = images.decode_compressed(png, 'png')
    assert camera.shape == RGB.shape and np.array_equal(camera[..., 0], RGB[..., 1])
    np.testing.assert_array_equal(images.decode_compressed_map(png, 'png'), RGB[..., 1])


@pytest.mark.parametrize('data, cause', [
    (b'', 'zero_size'),
    (b'\xff\xd8\xff\xe0 not really a jpeg' * 4, 'undecodable'),
    (images.encode_compressed(RGB, 'jpeg')[:40], 'undecodable'),
])
def test_bad_compressed_data_raises_named_causes(data, cause):
    with pytest.raises(images.ImageError, match='jpeg') as info:
        images.decode_compressed(data, 'jpeg')
    assert info.value.cause == cause


@pytest.mark.parametrize('data', [
    webp_8000(),                                    # issue 23 failure 1: 38 bytes, 192 MB
    cv2.imencode('.webp', RGB)[1].tobytes(), cv2.imencode('.tiff', RGB)[1].tobytes(),
    cv2.imencode('.bmp', RGB)[1].tobytes(), b'GIF89a' + bytes(40),
])
@pytest.mark.parametrize('decode', [images.decode_compressed, images.decode_compressed_map])
def test_formats_other_than_jpeg_and_png_are_refused_before_decoding(data, decode):
    with pytest.raises(images.ImageError, match='not JPEG or PNG') as info:
        decode(data, 'webp')
    assert info.value.cause == 'unsupported_format' and 'unsupported_format' in images.CAUSES


@pytest.mark.parametrize('data, pixels', [
    (jpeg_with_comments(), 64_000_000),             # issue 23 failure 1: SOF 1.1 MB in
    (png_1bit(), 900_000_000),                      # issue 23 failure 2: 1-bit 30000 x 30000
])
def test_compressed_images_over_the_budget_are_refused_from_the_header(data, pixels):
    with pytest.raises(images.ImageError, match=f'{pixels} pixels') as info:
        images.decode_compressed(data)
    assert info.value.cause == 'too_large' and images.MAX_PIXELS == 4096 * 4096
    with pytest.raises(images.ImageError, match='too_large|budget'):
        images.decode_compressed_map(data, 'png', max_pixels=pixels - 1)


def test_the_budget_is_a_pixel_count_and_0_is_no_limit():
    png = images.encode_compressed(RGB, 'png')
    assert images.check_compressed(png, 'png', 37 * 53) == (37, 53)
    assert images.decode_compressed(png, 'png', max_pixels=37 * 53).shape == RGB.shape
    with pytest.raises(images.ImageError, match='over the pixel budget of 1960'):
        images.decode_compressed(png, 'png', max_pixels=37 * 53 - 1)
    assert images.decode_compressed(png, 'png', max_pixels=0).shape == RGB.shape
    with pytest.raises(images.ImageError, match='1960') as info:
        images.decode_rgb('rgb8', *raw(RGB), max_pixels=37 * 53 - 1)
    assert info.value.cause == 'too_large'
    with pytest.raises(images.ImageError, match='too_large|budget'):
        images.decode_map('mono8', *raw(RGB[..., 0]), max_pixels=100)
    assert images.decode_rgb('rgb8', *raw(RGB), max_pixels=0).shape == RGB.shape


def test_a_refused_frame_costs_no_more_than_its_bytes():
    """Peak RSS of a process refusing hostile frames (OpenCV took 192 MB to 2.7 GB each)."""
    script = textwrap.dedent('''
        import resource, sys
        sys.path.insert(0, 'test')
        from densehybrid_ros.core import images
        from fuzz.hostile import jpeg_with_comments, png_1bit, png_huge_chunk, webp_8000
        frames = [jpeg_with_comments(), webp_8000(), png_1bit(), png_huge_chunk()]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for data in frames:
            try:
                images.decode_compressed(data, 'jpeg')
            except images.ImageError as exc:
                print(exc.cause)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    *causes, grown_mb = proc.stdout.split()
    assert causes == ['too_large', 'unsupported_format', 'too_large', 'undecodable']
    assert int(grown_mb) < 20, f'peak RSS grew by {grown_mb} MB'


@pytest.mark.parametrize('encoding, array', [
    ('rgb8', RGB), ('bgr8', RGB), ('mono8', RGB[..., 0].copy()), ('32FC1', SCORE),
    ('mono16', RGB[..., 0].astype(np.uint16) * 257),
])
def test_encode_is_unpadded_little_endian(encoding, array):
    height, width, step, data = images.encode(array, encoding)
    assert (height, width) == array.shape[:2] and step * height == data.size
    assert data.dtype == np.uint8 and data.tobytes() == np.ascontiguousarray(
        array.astype(array.dtype.newbyteorder('<'))).tobytes()


def test_encode_refuses_wrong_dtype_shape_and_names():
    with pytest.raises(ValueError, match='mono8 needs a uint8'):
        images.encode(SCORE, 'mono8')
    with pytest.raises(ValueError, match='rgb8 needs .* x 3'):
        images.encode(RGB[..., 0], 'rgb8')
    with pytest.raises(images.ImageError, match="'yuv422'"):
        images.encode(RGB, 'yuv422')
    with pytest.raises(ValueError, match='compressed format'):
        images.encode_compressed(RGB, 'bmp')
