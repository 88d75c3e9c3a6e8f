"""densehybrid_ros.data.bags: image encodings, joining messages by stamp, broken bags."""

import numpy as np
import pytest

from densehybrid_ros.data.bag_writer import array_to_compressed, array_to_image, BagWriter
from densehybrid_ros.data.bags import (BagError, BagReader, cdr_stamp, image_to_array,
                                       set_cdr_stamp, typestore)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _msg(array: np.ndarray, kind: str, **fields):
    msg = array_to_image(array, kind, 1)
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize('array, encoding', [
    (RGB, 'rgb8'), (RGB[..., ::-1], 'bgr8'),
    (np.dstack([RGB, np.full((5, 7), 9, np.uint8)]), 'rgba8'),
    (np.dstack([RGB[..., ::-1], np.full((5, 7), 9, np.uint8)]), 'bgra8'),
    (np.ascontiguousarray(RGB[..., 1]), 'mono8'),
])
def test_cameras_decode_to_rgb_as_the_node_does(array, encoding) -> None:
    got = image_to_array(array_to_image(array, encoding, 123, 'cam'), camera=True)
    expect = np.repeat(RGB[..., 1:2], 3, axis=2) if encoding == 'mono8' else RGB
    assert got.dtype == np.uint8 and np.array_equal(got, expect)


@pytest.mark.parametrize('array, encoding', [
    (RGB, 'rgb8'), (np.ascontiguousarray(RGB[..., 0]), 'mono8'),
    (np.linspace(-3, 3, 35, dtype=np.float32).reshape(5, 7), '32FC1'),
])
def test_maps_decode_with_their_own_dtype(array, encoding) -> None:
    got = image_to_array(array_to_image(array, encoding, 123, 'cam'))
    assert got.dtype == array.dtype and np.array_equal(got, array)


@pytest.mark.parametrize('encoding, camera', [('mono16', True), ('mono16', False),
                                              ('32FC1', True), ('bgr8', False)])
def test_encodings_the_node_would_refuse_are_refused(encoding, camera) -> None:
    array = np.zeros((5, 7), np.uint16 if encoding == 'mono16' else np.float32) \
        if encoding != 'bgr8' else RGB
    msg = array_to_image(array, encoding, 1)
    with pytest.raises(BagError, match=f"camera at 1: unsupported_encoding: .*'{encoding}'"):
        image_to_array(msg, 'camera at 1', camera=camera)


def test_row_padding_and_big_endian_are_honoured() -> None:
    score = np.arange(6, dtype=np.float32).reshape(2, 3)
    padded = np.zeros((2, 16), np.uint8)
    padded[:, :12] = score.astype('>f4').view(np.uint8).reshape(2, 12)
    msg = _msg(score, '32FC1', is_bigendian=1, step=16, data=padded.reshape(-1))
    assert np.array_equal(image_to_array(msg), score)


@pytest.mark.parametrize('fields, message', [
    ({'encoding': 'yuv422'}, "unsupported_encoding: unsupported encoding 'yuv422'"),
    ({'step': 2}, 'bad_step: step 2 < width 7'),
    ({'height': 50}, 'data_too_short'),
    ({'width': 0}, 'zero_size'),
])
def test_inconsistent_images_raise(fields, message) -> None:
    with pytest.raises(BagError, match=message):
        image_to_array(_msg(RGB, 'rgb8', **fields), camera=True)


@pytest.mark.parametrize('fmt, array', [('png', RGB), ('png', RGB[..., 0]), ('jpeg', RGB)])
def test_compressed_images_round_trip(fmt, array) -> None:
    got = image_to_array(array_to_compressed(np.ascontiguousarray(array), fmt, 5))
    assert got.shape == array.shape
    if fmt == 'png':
        assert np.array_equal(got, array)
    camera = image_to_array(array_to_compressed(np.ascontiguousarray(array), fmt, 5),
                            camera=True)
    assert camera.shape == array.shape[:2] + (3,)


def test_undecodable_compressed_data_raises() -> None:
    msg = array_to_compressed(RGB, 'png', 5)
    msg.data = np.frombuffer(b'not an image', np.uint8)
    # bytes that are no JPEG or PNG are refused before any decoder sees them (pixel budget)
    with pytest.raises(BagError, match='camera: unsupported_format: .* is not JPEG or PNG'):
        image_to_array(msg, 'camera', camera=True)


@pytest.mark.parametrize('stamp', [0, 1_700_000_000_123_456_789, 5 * 10 ** 9 + 1])
def test_cdr_stamp_reads_and_writes_the_header_of_serialized_images(stamp) -> None:
    msg = array_to_image(np.zeros((2, 3), np.uint8), 'mono8', stamp, 'cam')
    raw = bytes(typestore().serialize_cdr(msg, msg.__msgtype__))
    assert cdr_stamp(raw) == stamp
    patched = set_cdr_stamp(bytearray(raw), stamp + 7)
    assert cdr_stamp(patched) == stamp + 7
    back = typestore().deserialize_cdr(patched, msg.__msgtype__)
    assert (back.header.frame_id, bytes(back.data)) == ('cam', bytes(6))    # rest untouched
    with pytest.raises(ValueError, match='too short'):
        cdr_stamp(raw[:8])


def _bag(path, entries, storage='mcap'):
    with BagWriter(path, storage=storage) as bag:
        for stamp, topic, value in entries:
            bag.write_image(topic, np.full((2, 2), value, np.uint8), 'mono8', stamp, 'f')
    return path


@pytest.mark.parametrize('partial, expect_frames, expect_stats', [
    (True, [(0, 10, {'a', 'b'}), (1, 20, {'a'}), (2, 30, {'a', 'b'})],
     {'unmatched': 1, 'partial': 1}),
    (False, [(0, 10, {'a', 'b'}), (2, 30, {'a', 'b'})], {'unmatched': 2, 'partial': 0}),
])
def test_frames_join_by_stamp_and_report_leftovers(tmp_path, partial, expect_frames,
                                                   expect_stats) -> None:
    path = _bag(tmp_path / 'bag', [(10, '/b', 1), (10, '/a', 2), (30, '/b', 3), (20, '/a', 4),
                                   (30, '/a', 5), (99, '/b', 6)])
    stats = {}
    with BagReader(path) as reader:
        frames = list(reader.frames({'a': '/a', 'b': '/b'}, key='a', partial=partial,
                                    max_pending=2, stats=stats))
    got = sorted((f.index, f.stamp, set(f.arrays)) for f in frames)
    assert got == expect_frames
    assert stats == expect_stats


def test_select_skips_frames_and_their_labels(tmp_path) -> None:
    path = _bag(tmp_path / 'bag', [(s, t, s) for s in (1, 2, 3, 4) for t in ('/a', '/b')],
                storage='sqlite3')
    stats = {}
    with BagReader(path) as reader:
        frames = list(reader.frames({'a': '/a', 'b': '/b'}, key='a',
                                    select=lambda i: i % 2 == 1, stats=stats))
    assert [(f.index, f.stamp) for f in frames] == [(1, 2), (3, 4)]
    assert stats == {'unmatched': 0, 'partial': 0}


def test_topic_lookup_by_suffix_and_type(tmp_path) -> None:
    path = _bag(tmp_path / 'bag', [(1, '/cam/left/image', 0), (1, '/cam/right/image', 0),
                                   (1, '/cam/left/label', 0)])
    with BagReader(path) as reader:
        assert reader.topic('left/image') == '/cam/left/image'
        with pytest.raises(BagError, match="'image' matches 2 topics"):
            reader.topic('image')
        with pytest.raises(BagError, match='has type sensor_msgs/msg/Image, expected x'):
            reader.topic('left/label', types=('x',))


@pytest.mark.parametrize('content, message', [
    (b'', 'cannot open'),
    (b'SQLite format 3\x00' + b'\x00' * 200, 'cannot open'),
])
def test_broken_files_raise_bag_errors(tmp_path, content, message) -> None:
    path = tmp_path / 'broken.db3'
    path.write_bytes(content)
    with pytest.raises(BagError, match=message):
        BagReader(path)


@pytest.mark.parametrize('length', [2 ** 62, 2 ** 64 - 1])
def test_a_wild_mcap_record_length_is_a_bag_error(tmp_path, length) -> None:
    """Found by test/fuzz: rosbags read 2**62 bytes (MemoryError), 2**64 - 1 (OverflowError)."""
    path = _bag(tmp_path / 'bag', [(1, '/a', 0)])
    (store,) = path.glob('*.mcap')
    data = bytearray(store.read_bytes())
    assert data[:9] == b'\x89MCAP0\r\n\x01'              # magic, then the header record
    data[9:17] = length.to_bytes(8, 'little')
    store.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r'cannot open .*(MemoryError|OverflowError)'):
        BagReader(path)


def test_an_mcap_cut_after_its_magic_is_a_bag_error(tmp_path) -> None:
    """Found by test/fuzz: rosbags took ord() of the missing next byte (TypeError)."""
    path = _bag(tmp_path / 'bag', [(1, '/a', 0)])
    (store,) = path.glob('*.mcap')
    store.write_bytes(store.read_bytes()[:8])
    with pytest.raises(BagError, match='cannot open .*TypeError'):
        BagReader(path)


def test_a_damaged_db3_page_is_a_bag_error(tmp_path) -> None:
    """Found by test/fuzz: sqlite's 'malformed' error while reading came as apsw.CorruptError."""
    import sqlite3
    path = _bag(tmp_path / 'bag', [(1, '/a', 0), (2, '/a', 0)], storage='sqlite3')
    (store,) = path.glob('*.db3')
    db = sqlite3.connect(store)
    (page_size,), (page,) = (db.execute('PRAGMA page_size').fetchone(), db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone())
    db.close()
    data = bytearray(store.read_bytes())
    at = (page - 1) * page_size + 3               # the b-tree page's cell count: none
    data[at:at + 2] = bytes(2)
    store.write_bytes(bytes(data))
    with BagReader(path) as reader, pytest.raises(BagError, match='corrupt .*CorruptError'):
        list(reader.messages(['/a']))
