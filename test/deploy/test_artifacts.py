"""Verified graphs (issue 23 failures 4 and 7): digests, input sizes, external data, leftovers.

One lazy export of the tiny checkpoint at 64 x 96 serves the module; every test tampers with
a copy of it: in a cache (exported again with one warning) or given as an artifact (refused).
"""

import hashlib
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from densehybrid_ros.core.images import encode_compressed
from densehybrid_ros.deploy.artifacts import (cache_dir, ensure_artifact, read_artifact,
                                              write_artifact)
from densehybrid_ros.deploy.runtimes import ExportError
from densehybrid_ros.deploy.segmenter import Segmenter
from densehybrid_ros.models.checkpoint import load_checkpoint
from densehybrid_ros.models.fusion import fuse_for_inference

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
IMAGE = np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)


def segmenter(checkpoint, **kwargs) -> Segmenter:
    """The tiny checkpoint on ONNX Runtime at its native 64 x 96."""
    return Segmenter(checkpoint, device='cpu', backend='onnxruntime', **kwargs)


@pytest.fixture(scope='module')
def exported(tiny_checkpoint, tmp_path_factory):
    """(cache root with one entry, that entry's folder name, its score on IMAGE)."""
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('DENSEHYBRID_CACHE', str(root))
        score = segmenter(tiny_checkpoint)([IMAGE])[0].score
        (entry,) = [p.name for p in cache_dir().iterdir()]
    return root, entry, score


@pytest.fixture
def cache(exported, tmp_path, monkeypatch):
    """A copy of the exported cache in use; returns the copied entry's folder."""
    root, entry, _ = exported
    shutil.copytree(root, tmp_path / 'cache')
    monkeypatch.setenv('DENSEHYBRID_CACHE', str(tmp_path / 'cache'))
    return cache_dir() / entry


@pytest.fixture
def given(exported, tmp_path):
    """A copy of the exported graph as a user's artifact folder."""
    root, entry, _ = exported
    return shutil.copytree(root / 'artifacts' / entry, tmp_path / 'artifacts' / 'front')


def scale_one_weight(graph, name: str = 'model.logits_ood.conv.weight',
                     factor: float = -3.0) -> None:
    """Scale one weight tensor of an ONNX graph in place (the anomaly head's), as in the issue."""
    model = onnx.load(str(graph))
    (tensor,) = [t for t in model.graph.initializer if t.name == name]
    values = onnx.numpy_helper.to_array(tensor) * np.float32(factor)
    tensor.CopyFrom(onnx.numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(graph))


def rewrite_meta(folder, **changes) -> None:
    meta = json.loads((folder / 'meta.json').read_text())
    meta.update(changes)
    (folder / 'meta.json').write_text(json.dumps(meta))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_meta_records_a_digest_of_every_file_of_the_graph(cache):
    meta = json.loads((cache / 'meta.json').read_text())
    assert meta['files'] == {'model.onnx': sha256(cache / 'model.onnx')}
    assert read_artifact(cache)['graph'] == str(cache / 'model.onnx')


def test_a_truncated_cached_graph_is_exported_again_with_one_warning(
        tiny_checkpoint, exported, cache, caplog):
    """Issue 23 failure 4: every later run ended in an InvalidProtobuf traceback."""
    data = (cache / 'model.onnx').read_bytes()
    (cache / 'model.onnx').write_bytes(data[:len(data) // 2])
    with caplog.at_level(logging.WARNING, logger='densehybrid_ros'):
        score = segmenter(tiny_checkpoint)([IMAGE])[0].score
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'exporting it again' in warnings[0].getMessage()
    assert cache.name in warnings[0].getMessage() and '\n' not in warnings[0].getMessage()
    assert (cache / 'model.onnx').read_bytes() == data
    np.testing.assert_allclose(score, exported[2], atol=1e-5)


def test_a_cached_graph_with_a_scaled_weight_is_found_by_its_digest(
        tiny_checkpoint, exported, cache, caplog):
    """Issue 23 failure 4: one weight x -3 ran silently with 9x the anomalous fraction."""
    scale_one_weight(cache / 'model.onnx')
    session = ort.InferenceSession(str(cache / 'model.onnx'), providers=['CPUExecutionProvider'])
    x = (IMAGE.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
    tampered = session.run(['score'], {'image': x})[0][0]
    assert np.abs(tampered - exported[2]).max() > 0.1               # the tampering matters
    with pytest.raises(ExportError, match='model.onnx: SHA-256 .* does not match meta.json'):
        read_artifact(cache)
    with caplog.at_level(logging.WARNING, logger='densehybrid_ros'):
        score = segmenter(tiny_checkpoint)([IMAGE])[0].score
    assert sum('exporting it again' in r.getMessage() for r in caplog.records) == 1
    np.testing.assert_allclose(score, exported[2], atol=1e-5)
    assert read_artifact(cache)['files']['model.onnx'] == sha256(cache / 'model.onnx')


def test_a_given_artifact_with_a_scaled_weight_is_refused(tiny_checkpoint, given):
    """Issue 23 failure 4: the same graph under a user's artifacts folder was accepted."""
    scale_one_weight(given / 'model.onnx')
    with pytest.raises(ExportError, match='SHA-256 .* the file was changed or damaged'):
        segmenter(tiny_checkpoint, artifacts=[given])


def test_a_tool_refuses_it_in_one_line(tiny_checkpoint, given, tmp_path, capsys):
    from densehybrid_ros.tools.model.segment import main
    scale_one_weight(given / 'model.onnx')
    image = tmp_path / 'x.png'
    image.write_bytes(encode_compressed(IMAGE, 'png'))
    assert main([str(image), '--checkpoint', str(tiny_checkpoint), '--device', 'cpu',
                 '--backend', 'onnxruntime', '--artifacts', str(given),
                 '--output', str(tmp_path / 'out')]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and 'model.onnx: SHA-256' in lines[0], lines
    assert not (tmp_path / 'out').exists()


def test_meta_stating_another_size_than_its_graph_is_refused(tiny_checkpoint, given):
    """Issue 23 failure 7: meta.json's input size was never checked against the graph."""
    rewrite_meta(given, input_size=[96, 64])
    with pytest.raises(ExportError, match='takes 64x96 images but meta.json says 96x64'):
        segmenter(tiny_checkpoint, artifacts=[given])


def test_external_data_outside_the_folder_is_refused_in_one_line(tiny_checkpoint, given):
    """Issue 23 failure 7: the runtime refused it, shown as a traceback."""
    (given.parent / 'outside.bin').write_bytes(bytes(16))
    model = onnx.load(str(given / 'model.onnx'))
    tensor = model.graph.initializer[0]
    tensor.ClearField('raw_data')
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (('location', '../outside.bin'), ('offset', '0'), ('length', '16')):
        tensor.external_data.add(key=key, value=value)
    onnx.save(model, str(given / 'model.onnx'))
    rewrite_meta(given, files={'model.onnx': sha256(given / 'model.onnx')})   # digests agree
    with pytest.raises(ExportError, match=r"points outside the artifact folder \('\.\./outs"):
        segmenter(tiny_checkpoint, artifacts=[given])


@pytest.mark.parametrize('change, match', [
    ({'files': None}, 'lists no file digests'),                  # made before digests
    ({'files': {'model.onnx': '0' * 64, '../meta.json': '0'}}, 'not a file of the artifact'),
    ({'input_size': [64]}, 'two positive integers'),
    ({'runtime_format': 'tflite'}, "unknown runtime_format 'tflite'"),
    ({'precision': 16}, 'precision is missing or not a str'),
])
def test_meta_json_that_cannot_be_trusted_is_refused(given, change, match):
    rewrite_meta(given, **change)
    with pytest.raises(ExportError, match=match):
        read_artifact(given)


def test_openvino_artifacts_are_verified_too(tiny_checkpoint, given, tmp_path):
    pytest.importorskip('openvino')
    model, meta = load_checkpoint(tiny_checkpoint, device='cpu')
    out = write_artifact(fuse_for_inference(model), meta, 'openvino', (64, 96), tmp_path / 'ov',
                         onnx_graph=given / 'model.onnx')
    files = json.loads((out / 'meta.json').read_text())['files']
    assert sorted(files) == ['model.bin', 'model.xml']
    assert read_artifact(out)['input_size'] == [64, 96]
    rewrite_meta(out, input_size=[32, 48])
    with pytest.raises(ExportError, match='model.xml takes 64x96 images but meta.json says'):
        read_artifact(out)
    rewrite_meta(out, input_size=[64, 96])
    with open(out / 'model.bin', 'r+b') as f:
        f.seek(100)
        f.write(b'\x00\x00\x80\x7f')                         # one weight becomes +inf
    with pytest.raises(ExportError, match='model.bin: SHA-256'):
        read_artifact(out)


def test_exports_of_killed_processes_are_removed_from_the_cache(tiny_checkpoint, cache):
    """Issue 23 failure 9: ``.<key>.<pid>`` folders of killed exports stayed forever."""
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    dead = cache.parent / f'.{cache.name}.{int(proc.stdout)}'
    dead.mkdir()
    (dead / 'model.onnx').write_bytes(b'half an export')
    model, meta = load_checkpoint(tiny_checkpoint, device='cpu')
    model = fuse_for_inference(model)
    assert ensure_artifact(model, meta, 'onnx', (64, 96), 'fp32', 'hybrid') == cache
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]
