"""Export: every arch at two sizes through ONNX Runtime, fp16-safe score, metadata, the CLI."""

import hashlib
import json
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

from densehybrid_ros.deploy.artifacts import export_checkpoint
from densehybrid_ros.deploy.graph import export_onnx, FrameGraph
from densehybrid_ros.deploy.runtimes import ExportError
from densehybrid_ros.models import ARCHS, build_model
from densehybrid_ros.models.fusion import fuse_for_inference
from densehybrid_ros.models.layers import SpatialPyramidPooling
from densehybrid_ros.tools.model.export import main as export_main

ort = pytest.importorskip('onnxruntime')
# dlv3plus_wrn38 (137 M parameters, a 550 MB graph) is too large to export in a unit test.
SMALL_ARCHS = sorted(a for a in ARCHS if a != 'dlv3plus_wrn38')


def _run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(['labels', 'score'], {'image': x.numpy()})


@pytest.mark.parametrize('arch', SMALL_ARCHS)
@pytest.mark.parametrize('size', [(64, 96), (96, 64)])
def test_every_arch_exports_at_two_sizes_and_matches_torch(arch, size, tmp_path):
    torch.manual_seed(3)
    model = fuse_for_inference(build_model(arch, 19).eval())
    path = export_onnx(model, size, tmp_path / 'g.onnx')
    x = torch.rand(2, 3, *size)                       # batch 2: the batch dim is dynamic
    labels, score = _run_onnx(path, x)
    with torch.no_grad():
        ref_labels, ref_score = FrameGraph(model)(x)
    assert labels.dtype == np.uint8 and labels.shape == (2, *size)
    assert score.dtype == np.float32 and score.shape == (2, *size)
    assert (labels == ref_labels.numpy()).mean() >= 0.9999
    assert np.abs(score - ref_score.numpy()).max() <= 1e-3


def test_dense_blocks_export_as_concatenation_not_slice_writes(tmp_path):
    """The inference buffer's slice writes exported as ScatterND, which runtimes run slowly."""
    import onnx
    model = fuse_for_inference(build_model('ldn121', 19).eval())
    graph = onnx.load(str(export_onnx(model, (64, 96), tmp_path / 'g.onnx'))).graph
    ops = {node.op_type for node in graph.node}
    assert 'Concat' in ops and not ops & {'ScatterND', 'ScatterElements', 'TopK', 'ArgMax'}


def test_a_graph_is_for_its_own_size_only(tmp_path):
    path = export_onnx(build_model('ladder_resnet18_half', 19).eval(), (64, 96),
                       tmp_path / 'g.onnx')
    with pytest.raises(Exception, match='(?i)dimension|shape'):
        _run_onnx(path, torch.rand(1, 3, 96, 64))


def test_fp16_graph_score_is_finite_where_logits_reach_minus_450(tmp_path):
    torch.manual_seed(0)
    model = fuse_for_inference(build_model('ladder_resnet18_half', 19).eval())
    with torch.no_grad():
        model.logits.conv.bias.fill_(-450.0)          # as low as the embedded model's logits
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        logits, _ = model(x)
        assert logits.max() < -400
        assert not torch.isfinite(logits.exp().sum(1).log()).all()    # the unshifted form
        _, ref = FrameGraph(model)(x)
    path = export_onnx(model, (64, 96), tmp_path / 'h.onnx', precision='fp16')
    _, score = _run_onnx(path, x)
    assert np.isfinite(score).all()
    assert np.abs(score - ref.numpy()).max() < 0.5   # fp16 spacing at 450 is 0.25


def test_spp_exports_with_the_legacy_exporter(tmp_path):
    # round() on the traced size tensors stopped torch.onnx's legacy exporter (TypeError).
    torch.manual_seed(0)
    spp = SpatialPyramidPooling(32, 16, 8, 16).eval()
    x = torch.rand(1, 32, 8, 16)                     # grids 8x16 .. 1x2 divide the input
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(spp, (x,), str(tmp_path / 'spp.onnx'), dynamo=False,
                          input_names=['x'])
    session = ort.InferenceSession(str(tmp_path / 'spp.onnx'),
                                   providers=['CPUExecutionProvider'])
    with torch.no_grad():
        ref = spp(x).numpy()
    assert np.abs(session.run(None, {'x': x.numpy()})[0] - ref).max() < 1e-5


def test_artifact_carries_its_metadata(tiny_checkpoint, tmp_path):
    info = export_checkpoint(tiny_checkpoint, 'onnx', (64, 96), tmp_path / 'art')
    on_disk = json.loads((tmp_path / 'art' / 'meta.json').read_text())
    assert on_disk['arch'] == info['arch'] == 'ladder_resnet18_half'
    assert on_disk['input_size'] == [64, 96] and on_disk['precision'] == 'fp32'
    assert len(on_disk['class_names']) == 19 and on_disk['class_names'][0] == 'road'
    assert np.asarray(on_disk['palette']).shape == (19, 3)
    assert on_disk['calibration']['threshold'] == -2.0       # the fixture's calibration
    assert on_disk['checkpoint_sha256'] == hashlib.sha256(
        tiny_checkpoint.read_bytes()).hexdigest()
    assert on_disk['labels_dtype'] == 'uint8' and on_disk['score'] == 'hybrid'
    assert (tmp_path / 'art' / 'model.onnx').is_file()


@pytest.mark.parametrize('args, match', [
    (['--format', 'onnx', '--precision', 'bf16'], "precision 'bf16' is not supported for onnx"),
    (['--format', 'openvino', '--precision', 'int8'], 'int8 needs --calibration'),
    (['--format', 'onnx', '--calibration', '.'], 'for --precision int8 only'),
    (['--format', 'onnx', '--size', '8', '96'], 'size must be two integers'),
])
def test_cli_errors_are_one_line(tiny_checkpoint, tmp_path, capsys, args, match):
    argv = [str(tiny_checkpoint), '--size', '64', '96', '--output', str(tmp_path / 'o')] + args
    assert export_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('densehybrid-export: error: ') and match in err
    assert 'Traceback' not in err


def test_cli_missing_checkpoint(tmp_path, capsys):
    assert export_main([str(tmp_path / 'nope.pt'), '--format', 'onnx', '--size', '64', '96',
                        '--output', str(tmp_path / 'o')]) == 2
    assert 'not found' in capsys.readouterr().err


def test_cli_int8_from_an_image_folder_recalibrates_the_threshold(tiny_checkpoint, tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(frames / f'{i}.png'), rng.integers(0, 255, (80, 120, 3), np.uint8))
    out = tmp_path / 'int8'
    proc = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.model.export', str(tiny_checkpoint),
         '--format', 'openvino', '--size', '64', '96', '--precision', 'int8',
         '--calibration', str(frames), '--output', str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    meta = json.loads((out / 'meta.json').read_text())
    calibration = meta['calibration']
    assert meta['precision'] == 'int8' and summary['precision'] == 'int8'
    assert calibration['method'] == 'matched_fraction'      # a folder has no anomaly labels
    assert calibration['fp32_threshold'] == -2.0
    assert np.isfinite(calibration['threshold'])
    assert '4 calibration frames at 64x96' in calibration['measured_on']
    assert (out / 'model.xml').is_file() and (out / 'model.bin').is_file()
    xml = (out / 'model.xml').read_text()
    assert 'FakeQuantize' in xml or 'i8' in xml                # really quantised
    # ... in the convolutions only: the full-resolution score and argmax stay float
    from densehybrid_ros.deploy.quantize import FLOAT_OPS
    import openvino as ov
    int8 = ov.Core().read_model(str(out / 'model.xml'))
    fake_quantized = [op for op in int8.get_ops() if op.get_type_name() == 'FakeQuantize']
    consumers = {target.get_node().get_type_name() for op in fake_quantized
                 for target in op.output(0).get_target_inputs()}
    assert fake_quantized and 'Convolution' in consumers and not consumers & set(FLOAT_OPS)
    # the artifact runs end to end through a tool, with its own recalibrated threshold
    seg = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.model.segment', str(frames / '0.png'),
         '--checkpoint', str(tiny_checkpoint), '--backend', 'openvino', '--precision', 'int8',
         '--artifacts', str(out), '--inference-width', '96', '--output', str(tmp_path / 'seg'),
         '--json', str(tmp_path / 'seg.json')],
        capture_output=True, text=True, timeout=300)
    assert seg.returncode == 0, seg.stderr[-2000:]
    report = json.loads((tmp_path / 'seg.json').read_text())
    assert abs(report['threshold'] - calibration['threshold']) < 1e-6, report


def test_bad_calibration_sources(tmp_path):
    from densehybrid_ros.deploy.quantize import calibration_frames
    with pytest.raises(ExportError, match='not found'):
        calibration_frames(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ExportError, match='no calibration frames'):
        calibration_frames(tmp_path / 'empty')


def test_deploy_modules_are_core_and_runtimes_load_only_when_used(run_without_ros,
                                                                  tiny_checkpoint):
    run_without_ros(f'''
        import sys
        import numpy as np
        import densehybrid_ros.deploy.backends, densehybrid_ros.deploy.artifacts
        import densehybrid_ros.deploy.quantize
        import densehybrid_ros.tools.model.export
        from densehybrid_ros.deploy.segmenter import Segmenter
        seg = Segmenter({str(tiny_checkpoint)!r}, device='cpu')      # torch backend
        seg([np.zeros((64, 96, 3), np.uint8)])
        loaded = sorted(m for m in ('onnxruntime', 'openvino', 'nncf') if m in sys.modules)
        assert not loaded, loaded
        Segmenter({str(tiny_checkpoint)!r}, device='cpu', backend='openvino')
        assert 'openvino' in sys.modules and 'onnxruntime' not in sys.modules
    ''')


def test_recalibration_follows_the_quantised_scores():
    from densehybrid_ros.deploy.quantize import recalibrate
    rng = np.random.default_rng(0)
    anomaly = (rng.random((2, 32, 32)) < 0.1).astype(np.uint8)
    fp32 = rng.normal(size=anomaly.shape) + 3 * anomaly
    int8 = fp32 * 0.5 + 1.0                           # a quantised model on another scale
    with_labels = recalibrate({'threshold': 1.0, 'target_tpr': 0.95}, int8, fp32, anomaly, 'x')
    assert with_labels['method'] == 'target_tpr'
    assert with_labels['threshold'] == pytest.approx(
        with_labels['fp32_threshold_same_frames'] * 0.5 + 1.0, abs=1e-5)
    assert with_labels['tpr'] >= 0.95
    by_fpr = recalibrate({'threshold': 1.0, 'target_fpr': 0.01}, int8, fp32, anomaly, 'x')
    assert by_fpr['method'] == 'target_fpr' and by_fpr['target_fpr'] == 0.01
    assert np.mean(int8[anomaly == 0] > by_fpr['threshold']) <= 0.01
    without = recalibrate({'threshold': 1.0}, int8, fp32, None, 'x')
    assert without['method'] == 'matched_fraction'
    assert np.mean(int8 > without['threshold']) == pytest.approx(np.mean(fp32 > 1.0), abs=1e-3)


def test_calibration_frames_from_a_bag_take_the_camera_and_its_anomaly_labels(tmp_path):
    from densehybrid_ros.deploy.quantize import calibration_frames
    from densehybrid_ros.tools.rostools.make_bag import write_sample_bag
    write_sample_bag(str(tmp_path / 'bag'), 3, (32, 64), rate=10.0, seed=1)
    frames = calibration_frames(tmp_path / 'bag')
    assert len(frames) == 3
    for frame in frames:
        assert frame.image.shape == (32, 64, 3) and frame.image.dtype == np.uint8
        assert frame.anomaly is not None and frame.anomaly.shape == (32, 64)
        assert set(np.unique(frame.anomaly)) <= {0, 1, 255}
