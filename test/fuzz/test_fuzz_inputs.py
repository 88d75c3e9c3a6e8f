r"""Fuzz every input path with mutated and generated inputs (issue 23, ``hypothesis``).

Input paths: the raw image decoder, the compressed decoder and its header size reader, the CDR
stamp reader, the bag reader (small generated bags mutated byte-wise), checkpoint loading
(mutated files and generated dicts) and artifact loading (mutated ``meta.json`` and graphs).
Every case must succeed or raise the package's own error (``ImageError``, ``BagError``,
``CheckpointError``, ``ExportError``, or ``ValueError``) -- never another exception, never
hang (a watchdog kills the run with a traceback dump when one case takes over
``DENSEHYBRID_FUZZ_CASE_S`` x 3 seconds; over ``DENSEHYBRID_FUZZ_CASE_S`` fails the test), and a
decoder never returns more pixels than the header it was checked by.

CI runs ``DENSEHYBRID_FUZZ_EXAMPLES`` cases per path (default 60, a quarter of them, at least 10,
for the checkpoint dicts: 9 to 13 s in all on a busy 2-core machine, most of it importing torch,
rosbags and onnx), derandomized and from seeds built the same way each time, so every run sees
the same cases. The long run draws new cases over the 7 paths (6 x 17,000 +
4,250 = 106,250), niced, without pytest's per-test timeout, counting crashes instead of stopping
at the first (``DENSEHYBRID_FUZZ_SURVEY=1``), allowing 30 s a case (a niced run on a busy
machine waits for the others)::

    DENSEHYBRID_FUZZ_SURVEY=1 DENSEHYBRID_FUZZ_EXAMPLES=17000 DENSEHYBRID_FUZZ_CASE_S=30 \\
        DENSEHYBRID_FUZZ_REPORT=fuzz.json \\
        nice -n 19 .venv/bin/python -m pytest test/fuzz -q -p no:cacheprovider --timeout=0

``DENSEHYBRID_FUZZ_REPORT`` writes, after every test, per path: cases, outcomes by exception
type, the slowest case, the largest rise of the peak RSS one case caused; and the process's
peak RSS.
"""

import faulthandler
import functools
import json
import os
from pathlib import Path
import resource
import shutil
import struct
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Tuple
import zlib

import cv2
import numpy as np
import pytest

pytest.importorskip('hypothesis')        # requirements/dev.txt
from hypothesis import given, HealthCheck, settings, strategies as st  # noqa: E402

from densehybrid_ros.core import images  # noqa: E402
from densehybrid_ros.core.image_size import header_size  # noqa: E402
from fuzz.hostile import jpeg_with_comments, png_1bit, png_chunk, webp_8000  # noqa: E402

EXAMPLES = int(os.environ.get('DENSEHYBRID_FUZZ_EXAMPLES', '60'))
CASE_S = float(os.environ.get('DENSEHYBRID_FUZZ_CASE_S', '10'))
CASE_MB = 200.0                 # most one case may raise the process's peak RSS by
REPORT = os.environ.get('DENSEHYBRID_FUZZ_REPORT')
SURVEY = os.environ.get('DENSEHYBRID_FUZZ_SURVEY') == '1'
BUDGET = 1 << 20                # pixel budget of the fuzzed decoders: 1 MP, 3 MB decoded
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                derandomize='DENSEHYBRID_FUZZ_EXAMPLES' not in os.environ,
                suppress_health_check=list(HealthCheck))
STATS: Dict[str, Dict[str, Any]] = {}
# torch warns of every unusual pickle protocol byte a mutated checkpoint starts with.
pytestmark = pytest.mark.filterwarnings('ignore:Detected pickle protocol:UserWarning')
MB = 1 << 20


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, MB (Linux: ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(path: str, allowed: Tuple[type, ...], call: Callable[[], Any]) -> Any:
    """Run one case: the result, or None when it raised one of ``allowed``; count it.

    Any other exception fails the case; with ``DENSEHYBRID_FUZZ_SURVEY=1`` it is counted
    instead (``unexpected:<type>``, with the first message) and the run goes on, so a long
    run reports every kind of crash; :func:`test_no_case_crashed` fails at the end.
    """
    stats = STATS.setdefault(path, {'cases': 0, 'outcomes': {}, 'slowest_s': 0.0,
                                    'peak_rss_step_mb': 0.0})
    faulthandler.dump_traceback_later(CASE_S * 3, exit=True)     # a hang ends the run loudly
    rss = peak_rss_mb()
    start = time.monotonic()
    try:
        result, outcome = call(), 'ok'
    except allowed as exc:
        cause = getattr(exc, 'cause', None)          # ImageError: the diagnostics key
        result, outcome = None, type(exc).__name__ + (f':{cause}' if cause else '')
    except Exception as exc:
        if not SURVEY:
            raise
        result, outcome = None, f'unexpected:{type(exc).__module__}.{type(exc).__name__}'
        stats.setdefault('first', {}).setdefault(outcome, ' '.join(str(exc).split())[:300])
    finally:
        faulthandler.cancel_dump_traceback_later()
        took = time.monotonic() - start
        stats['cases'] += 1
        stats['slowest_s'] = max(stats['slowest_s'], round(took, 3))
        # How far one case raised the process's peak RSS (0 once an earlier case went higher).
        stats['peak_rss_step_mb'] = max(stats['peak_rss_step_mb'], round(peak_rss_mb() - rss))
    grown = peak_rss_mb() - rss
    if grown > CASE_MB and SURVEY:
        outcome = 'unexpected:memory'
        stats.setdefault('first', {}).setdefault(outcome, f'one case raised the peak RSS by '
                                                          f'{grown:.0f} MB')
    stats['outcomes'][outcome] = stats['outcomes'].get(outcome, 0) + 1
    assert took < CASE_S, f'{path}: one case took {took:.1f} s'
    assert grown <= CASE_MB or SURVEY, f'{path}: one case raised the peak RSS by {grown:.0f} MB'
    return result


START = (time.monotonic(), peak_rss_mb())       # when and at what peak RSS the module began


@pytest.fixture(autouse=True)
def report():
    """Write the report when asked for, after every test: a run cut short keeps its figures."""
    yield
    if REPORT:
        path = Path(REPORT)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix('.tmp').write_text(json.dumps({
            'examples_per_path': EXAMPLES, 'cases': sum(s['cases'] for s in STATS.values()),
            'seconds': round(time.monotonic() - START[0]), 'peak_rss_mb': round(peak_rss_mb()),
            'peak_rss_mb_at_start': round(START[1]), 'paths': STATS}, indent=1) + '\n')
        path.with_suffix('.tmp').replace(path)


@st.composite
def mutated(draw: Callable, seeds: Tuple[bytes, ...], max_ops: int = 6) -> bytes:
    """A seed with byte flips, overwrites, inserted, deleted or repeated runs, truncation."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(['flip', 'set', 'insert', 'delete', 'repeat', 'truncate',
                                   'word']))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 'flip' and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 'set' and data:
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif op == 'insert':
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == 'delete':
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == 'repeat':
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 256))] * draw(st.integers(1, 4))
        elif op == 'truncate':
            del data[pos:]
        elif op == 'word' and len(data) >= 4:       # a length or size field gone wild
            at = draw(st.integers(0, len(data) - 4))
            data[at:at + 4] = struct.pack('>I', draw(st.sampled_from(
                [0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, draw(st.integers(0, 2 ** 32 - 1))])))
    return bytes(data)


# ------------------------------------------------------------------------------ raw decoder
RAW_ENCODINGS = tuple(images.ENCODINGS) + ('8UC3', 'bayer_rggb8', 'yuv422', 'RGB8', '')


ACCEPTED = {'rgb': images.CAMERA_ENCODINGS, 'map': images.MAP_ENCODINGS,
            'depth': images.DEPTH_ENCODINGS}


@given(decoder=st.sampled_from(sorted(ACCEPTED)), data=st.data(),
       height=st.integers(0, 64) | st.integers(0, 2 ** 32 - 1),
       width=st.integers(0, 64) | st.integers(0, 2 ** 32 - 1),
       pad=st.integers(0, 16) | st.integers(-2 ** 31, 2 ** 32 - 1),
       short=st.just(0) | st.integers(-64, 64) | st.integers(-2 ** 20, 2 ** 20),
       bigendian=st.booleans(), fill=st.integers(0, 255))
@FUZZ
def test_raw_decoder(decoder, data, height, width, pad, short, bigendian, fill):
    accepted = st.sampled_from(ACCEPTED[decoder])
    encoding = data.draw(st.one_of(accepted, accepted, accepted, st.sampled_from(RAW_ENCODINGS),
                                   st.text(max_size=6)))
    dtype, channels = images.ENCODINGS.get(encoding, (np.uint8, 1))
    step = max(0, min(2 ** 32 - 1, width * channels * np.dtype(dtype).itemsize + pad))
    # Data of height x step bytes, give or take ``short``; at most 64 KB are ever made.
    data = bytes([fill]) * max(0, min(1 << 16, height * step + short))
    call = {'rgb': lambda: images.decode_rgb(encoding, height, width, step, data, BUDGET),
            'map': lambda: images.decode_map(encoding, height, width, step, data, bigendian,
                                             BUDGET),
            'depth': lambda: images.decode_depth(encoding, height, width, step, data,
                                                 bigendian, BUDGET)}[decoder]
    out = run_case('raw_decoder', (images.ImageError,), call)
    if out is not None:
        assert out.shape[:2] == (height, width) and height * width <= BUDGET
        if decoder == 'rgb':
            assert out.shape == (height, width, 3) and out.dtype == np.uint8


# ------------------------------------------------------------------------------ compressed
@functools.lru_cache(maxsize=None)
def image_seeds() -> Tuple[bytes, ...]:
    """Small JPEGs and PNGs of every kind the encoders make, and hostile headers."""
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 256, (6, 8, 3), np.uint8), (40, 30))
    grey = np.ascontiguousarray(rgb[..., 1])
    seeds = [
        cv2.imencode('.jpg', rgb)[1], cv2.imencode('.jpg', grey)[1],
        cv2.imencode('.jpg', rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
        cv2.imencode('.jpg', rgb, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2,
                                   cv2.IMWRITE_JPEG_OPTIMIZE, 1])[1],
        cv2.imencode('.png', rgb)[1], cv2.imencode('.png', grey)[1],
        cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_BGR2BGRA))[1],
        cv2.imencode('.png', grey.astype(np.uint16) * 257)[1],
        cv2.imencode('.png', (grey > 128).astype(np.uint8) * 255,
                     [cv2.IMWRITE_PNG_BILEVEL, 1])[1],
    ]
    palette_ihdr = struct.pack('>IIBBBBB', 30, 40, 8, 3, 0, 0, 1)     # no PLTE, interlaced
    hostile = [jpeg_with_comments(1200, 1000, 2, 300), png_1bit(1500, 1500, 2), webp_8000(),
               b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', palette_ihdr)]
    return tuple(bytes(s) for s in seeds) + tuple(hostile)


@given(data=st.one_of(st.deferred(lambda: mutated(image_seeds())),
                      st.deferred(lambda: mutated(image_seeds(), max_ops=2)),
                      st.binary(max_size=256)),
       fmt=st.sampled_from(['jpeg', 'png', 'webp', '', 'rgb8; jpeg compressed bgr8']),
       camera=st.booleans())
@FUZZ
def test_compressed_decoder_and_size_reader(data, fmt, camera):
    size = header_size(data)
    decode = images.decode_compressed if camera else images.decode_compressed_map
    out = run_case('compressed_decoder', (images.ImageError,),
                   lambda: decode(data, fmt, BUDGET))
    if out is not None:     # never more pixels than the header said (EXIF may rotate)
        assert size is not None and sorted(out.shape[:2]) == sorted(size), (out.shape, size)
        assert size[0] * size[1] <= BUDGET
        if camera:
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


# ------------------------------------------------------------------------------ bags, CDR
@functools.lru_cache(maxsize=None)
def bag_seeds() -> Tuple[Tuple[str, bytes, bytes], ...]:
    """(storage file name, its bytes, metadata.yaml bytes) of three tiny bags."""
    from densehybrid_ros.data.bag_writer import array_to_compressed, BagWriter
    root = Path(tempfile.mkdtemp(prefix='fuzz_bags_'))
    rgb = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    seeds = []
    for storage, compressed in (('mcap', False), ('mcap', True), ('sqlite3', False)):
        path = root / f'{storage}_{compressed}'
        with BagWriter(path, storage=storage) as writer:
            for i, stamp in enumerate((1_000_000_000, 1_100_000_000)):
                if compressed:
                    writer.write('/cam/image/compressed',
                                 array_to_compressed(rgb, 'jpeg' if i else 'png', stamp))
                else:
                    writer.write_image('/cam/image', rgb, 'rgb8', stamp)
                writer.write_image('/cam/anomaly_label', rgb[..., 0] % 2, 'mono8', stamp)
        (store,) = [p for p in path.iterdir() if p.name != 'metadata.yaml']
        seeds.append((store.name, store.read_bytes(), (path / 'metadata.yaml').read_bytes()))
    shutil.rmtree(root)
    return tuple(seeds)


@functools.lru_cache(maxsize=None)
def cdr_seeds() -> Tuple[bytes, ...]:
    """Serialized Image and CompressedImage messages, as the bag seeds hold them."""
    from densehybrid_ros.data.bags import BagReader
    root = Path(tempfile.mkdtemp(prefix='fuzz_cdr_'))
    raws = []
    for name, store, meta in bag_seeds()[:2]:
        (root / name).write_bytes(store)
        with BagReader(root / name) as bag:
            raws += [raw for _, _, _, raw in bag.messages(list(bag.topics))]
    shutil.rmtree(root)
    return tuple(bytes(raw) for raw in raws)


@given(raw=st.deferred(lambda: mutated(cdr_seeds())) | st.binary(max_size=40),
       stamp=st.integers(0, 2 ** 62))
@FUZZ
def test_cdr_stamp_reader(raw, stamp):
    from densehybrid_ros.data.bags import cdr_stamp, set_cdr_stamp
    value = run_case('cdr_stamp', (ValueError,), lambda: cdr_stamp(raw))
    if value is not None:
        assert isinstance(value, int)
        if stamp // 1_000_000_000 < 2 ** 31:
            assert cdr_stamp(set_cdr_stamp(bytearray(raw), stamp)) == stamp


def read_whole_bag(path: Path) -> int:
    """Open a bag and read everything the tools read: topics, messages, joined frames."""
    from densehybrid_ros.data.bags import BagReader
    with BagReader(path) as bag:
        bag.describe()
        count = sum(1 for _ in bag.messages(list(bag.topics)))
        cameras = bag.camera_topics()
        if cameras:
            roles = {'image': cameras[0]}
            label = bag.label_topic(cameras[0].rsplit('/', 1)[0], ('anomaly_label',))
            if label:
                roles['anomaly'] = label
            count += sum(len(frame.arrays) for frame in bag.frames(roles, partial=True))
        return count


@given(seed=st.integers(0, 2), store_ops=st.integers(0, 1), meta_ops=st.integers(0, 3),
       data=st.data())
@FUZZ
def test_bag_reader(tmp_path_factory, seed, store_ops, meta_ops, data):
    from densehybrid_ros.data.bags import BagError
    name, store, meta = bag_seeds()[seed]
    if store_ops:
        store = data.draw(mutated((store,), max_ops=4))
    if meta_ops:
        meta = data.draw(mutated((meta,), max_ops=meta_ops))
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        (folder / name).write_bytes(store)
        (folder / 'metadata.yaml').write_bytes(meta)
        run_case('bag_reader', (BagError,), lambda: read_whole_bag(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------ checkpoints
@functools.lru_cache(maxsize=None)
def checkpoint_seeds() -> Tuple[bytes, ...]:
    """Small checkpoint files: zip and legacy pickle formats of a checkpoint-shaped dict."""
    import io

    import torch
    from densehybrid_ros.models.checkpoint import FORMAT
    # Both tensors are views of one storage: the legacy format names storages by their address
    # (and sorts them by it); with one storage, the one name is replaced by '0'.
    flat = torch.cat([torch.ones(12), torch.zeros(3)])
    payload = {'format': FORMAT, 'arch': 'ladder_resnet18_half', 'num_classes': 3,
               'class_names': ['a', 'b', 'c'], 'palette': [[0, 0, 0]] * 3,
               'state_dict': {'logits.conv.weight': flat[:12].view(3, 4, 1, 1),
                              'logits.conv.bias': flat[12:]},
               'calibration': {'threshold': -2.0}, 'train': {'command': 'fuzz'}}
    seeds = []
    for zipped in (True, False):
        buf = io.BytesIO()
        torch.save(payload, buf, _use_new_zipfile_serialization=zipped)
        data = buf.getvalue()
        if zipped:
            data = same_id(data)
        else:
            key = str(flat.untyped_storage()._cdata).encode()
            data = data.replace(b'X' + struct.pack('<I', len(key)) + key, b'X\x01\x00\x00\x000')
        seeds.append(data)
    return tuple(seeds)


def same_id(data: bytes) -> bytes:
    """A torch zip checkpoint with its random serialization id zeroed: the same bytes every run.

    The id is a stored (uncompressed) member: its digits change in place, and the CRC-32 in its
    local header and central directory entry with them.
    """
    import io
    import zipfile
    archive = zipfile.ZipFile(io.BytesIO(data))
    (info,) = [i for i in archive.infolist() if i.filename.endswith('/.data/serialization_id')]
    old = archive.read(info)
    new = b'0' * len(old)
    crcs = [struct.pack('<I', zlib.crc32(x)) for x in (old, new)]
    assert info.compress_type == zipfile.ZIP_STORED and data.count(crcs[0]) == 2
    at = data.index(old, info.header_offset)
    return (data[:at] + new + data[at + len(old):]).replace(*crcs)


@given(data=st.deferred(lambda: mutated(checkpoint_seeds(), max_ops=3)) | st.binary(max_size=512))
@FUZZ
def test_checkpoint_files(tmp_path_factory, data):
    from densehybrid_ros.models.checkpoint import CheckpointError, load_checkpoint
    path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / 'model.pt'
    try:
        path.write_bytes(data)
        run_case('checkpoint_file', (CheckpointError,),
                 lambda: load_checkpoint(path))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def real_state_dict() -> Dict[str, Any]:
    """The state_dict of a small real model (ladder_resnet18_half, 19 classes)."""
    import torch
    from densehybrid_ros.models import build_model
    torch.manual_seed(0)
    return build_model('ladder_resnet18_half', 19).state_dict()


JUNK = (st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats()
        | st.text(max_size=8) | st.lists(st.integers(0, 300), max_size=4))


@st.composite
def checkpoint_dicts(draw: Callable) -> Dict[str, Any]:
    """A checkpoint dict with fields kept, dropped or replaced by junk of any type."""
    import torch
    from densehybrid_ros.models.checkpoint import FORMAT
    state = dict(real_state_dict())
    kind = draw(st.sampled_from(['real', 'dropped', 'reshaped', 'junk', 'tensor_junk']))
    if kind == 'dropped':
        for key in draw(st.lists(st.sampled_from(sorted(state)), max_size=3)):
            state.pop(key, None)
    elif kind == 'reshaped':
        key = draw(st.sampled_from(sorted(state)))
        state[key] = torch.zeros(draw(st.lists(st.integers(0, 4), max_size=4)))
    elif kind == 'junk':
        state = draw(JUNK)
    elif kind == 'tensor_junk':
        key = draw(st.sampled_from(sorted(state)))
        state[key] = draw(JUNK)
    # Known archs other than the smallest cost seconds to build: their names appear unknown.
    arch = draw(st.sampled_from(['ladder_resnet18_half', 'resnet9000', '']))
    fields = {'format': FORMAT, 'arch': arch,
              'num_classes': 19, 'class_names': [str(i) for i in range(19)],
              'palette': torch.zeros(19, 3, dtype=torch.uint8), 'state_dict': state,
              'calibration': {'threshold': -2.0}, 'train': {}}
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
        if draw(st.booleans()):
            fields.pop(key, None)
        else:
            fields[key] = draw(JUNK)
    if draw(st.booleans()):                  # class counts a model can be built with
        fields['num_classes'] = draw(st.integers(-3, 300))
    return fields


@given(payload=checkpoint_dicts())
@settings(FUZZ, max_examples=max(10, EXAMPLES // 4))     # each builds a model: ~0.1 s
def test_checkpoint_dicts(tmp_path_factory, payload):
    import torch
    from densehybrid_ros.models.checkpoint import CheckpointError, load_checkpoint
    path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / 'model.pt'
    try:
        torch.save(payload, path)
        result = run_case('checkpoint_dict', (CheckpointError,),
                          lambda: load_checkpoint(path))
        if result is not None:
            model, meta = result
            assert model.num_classes == payload['num_classes']
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


# ------------------------------------------------------------------------------ artifacts
@functools.lru_cache(maxsize=None)
def artifact_seeds() -> Dict[str, Dict[str, bytes]]:
    """Small artifact folders (file name -> bytes): an ONNX graph and an OpenVINO IR.

    The graphs take image N x 3 x 64 x 96; only their files are read (never run), so a
    one-operator graph stands in for the model.
    """
    import hashlib

    import onnx
    from onnx import helper, TensorProto
    from densehybrid_ros.deploy.artifacts import FORMAT
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT, ['N', 3, 64, 96])
    score = helper.make_tensor_value_info('score', TensorProto.FLOAT, ['N', 3, 64, 96])
    weight = helper.make_tensor('w', TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node('Mul', ['image', 'w'], ['score'])], 'g',
                              [image], [score], [weight])
    onnx_bytes = helper.make_model(graph).SerializeToString()
    xml = (b'<?xml version="1.0"?>\n<net name="g" version="11"><layers>'
           b'<layer id="0" name="image" type="Parameter" version="opset1">'
           b'<data shape="?,3,64,96" element_type="f32"/></layer></layers></net>\n')
    folders = {}
    for fmt, files in (('onnx', {'model.onnx': onnx_bytes}),
                       ('openvino', {'model.xml': xml, 'model.bin': bytes(64)})):
        meta = {'format': FORMAT, 'runtime_format': fmt, 'arch': 'ladder_resnet18_half',
                'num_classes': 19, 'input_size': [64, 96], 'precision': 'fp32',
                'score': 'hybrid', 'weights_sha256': '0' * 16, 'calibration': {},
                'files': {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}
        folders[fmt] = dict(files, **{'meta.json': json.dumps(meta, indent=1).encode()})
    assert onnx.load_from_string(onnx_bytes).graph.input[0].name == 'image'
    return folders


@st.composite
def artifact_folders(draw: Callable) -> Dict[str, bytes]:
    """An artifact folder with meta.json edited or mutated, graph files mutated."""
    import hashlib
    files = dict(artifact_seeds()[draw(st.sampled_from(['onnx', 'openvino']))])
    meta = json.loads(files['meta.json'])
    for name in draw(st.lists(st.sampled_from([n for n in files if n != 'meta.json']),
                              max_size=2)):
        files[name] = draw(mutated((files[name],), max_ops=4))
        if draw(st.booleans()):                 # digests that agree: the parsers are reached
            meta['files'][name] = hashlib.sha256(files[name]).hexdigest()
    for key in draw(st.lists(st.sampled_from(sorted(meta) + ['extra']), max_size=3)):
        meta[key] = draw(JUNK | st.dictionaries(st.text(max_size=12), st.text(max_size=70),
                                                max_size=3))
    if draw(st.booleans()):
        meta['input_size'] = draw(st.lists(st.integers(-1, 2 ** 33), max_size=3))
    files['meta.json'] = json.dumps(meta).encode()
    if draw(st.booleans()):
        files['meta.json'] = draw(mutated((files['meta.json'],), max_ops=3))
    return files


@given(files=artifact_folders())
@FUZZ
def test_artifact_loading(tmp_path_factory, files):
    from densehybrid_ros.deploy.artifacts import read_artifact
    from densehybrid_ros.deploy.runtimes import ExportError
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        info = run_case('artifact', (ExportError,), lambda: read_artifact(folder))
        if info is not None:
            assert info['input_size'] == [64, 96] and Path(info['graph']).parent == folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_no_case_crashed_and_memory_stayed_bounded():
    """After all paths (this file's last test): no unexpected exception, the peak RSS."""
    crashes = {path: {k: n for k, n in s['outcomes'].items() if k.startswith('unexpected')}
               for path, s in STATS.items()}
    print(f'fuzz: {sum(s["cases"] for s in STATS.values())} cases, peak RSS '
          f'{peak_rss_mb():.0f} MB', file=sys.stderr)
    assert not any(crashes.values()), crashes
    # the bound is per case (run_case: CASE_MB); the process's own peak is reported, not bounded:
    # in the whole suite it holds every earlier test's peak too (1.7 GB seen)
    steps = {path: s['peak_rss_step_mb'] for path, s in STATS.items()}
    assert all(step <= CASE_MB for step in steps.values()), steps
