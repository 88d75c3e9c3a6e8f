"""densehybrid-import end to end: raw authors' file in, usable checkpoint out."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

from densehybrid_ros.deploy.segmenter import Segmenter
from densehybrid_ros.models import build_model
from densehybrid_ros.tools.model import import_official


def test_cli_converts_and_the_segmenter_runs_it(tmp_path):
    torch.manual_seed(0)
    raw = tmp_path / 'ldn121_official.pth'
    torch.save(build_model('ldn121', 19).state_dict(), raw)
    out, summary = tmp_path / 'ldn121.pt', tmp_path / 'summary.json'
    rc = import_official.main([str(raw), '--arch', 'ldn121', '--threshold', '-3',
                               '--score-range', '-9', '1', '--output', str(out),
                               '--json', str(summary)])
    assert rc == 0
    assert json.loads(summary.read_text())['calibrated'] is True
    seg = Segmenter(out, device='cpu')
    assert seg.threshold == -3.0 and seg.score_range == (-9.0, 1.0)
    result = seg([np.zeros((40, 72, 3), np.uint8)])[0]
    assert result.semantic.shape == (40, 72)


def test_cli_reports_a_wrong_architecture_without_traceback(tmp_path):
    raw = tmp_path / 'weights.pth'
    torch.save(build_model('ladder_resnet18_half', 19).state_dict(), raw)
    proc = subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.model.import_official',
                           str(raw), '--arch', 'ldn121', '--output', str(tmp_path / 'x.pt')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'does not fit arch' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'x.pt').exists()


def _run_cli(*args):
    return subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.model.import_official',
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_refuses_to_overwrite_output_without_force(tmp_path):
    raw, out = tmp_path / 'w.pth', tmp_path / 'out.pt'
    torch.save(build_model('ladder_resnet18_half', 19).state_dict(), raw)
    out.write_bytes(b'precious')
    proc = _run_cli(raw, '--output', out)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip() == (f'densehybrid-import: error: {out} exists; give --force '
                                   f'to overwrite it')
    assert out.read_bytes() == b'precious'
    assert import_official.main([str(raw), '--output', str(out), '--force']) == 0
    proc = _run_cli(raw, '--output', tmp_path, '--force')
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f'densehybrid-import: error: {tmp_path} is a directory; give the checkpoint file name')
    assert torch.load(out, weights_only=True)['arch'] == 'ladder_resnet18_half'   # guessed


def test_cli_reimport_of_a_calibrated_checkpoint_keeps_the_calibration(tmp_path):
    first, second = tmp_path / 'first.pt', tmp_path / 'second.pt'
    torch.save(build_model('ladder_resnet18_half', 19).state_dict(), tmp_path / 'w.pth')
    assert import_official.main([str(tmp_path / 'w.pth'), '--threshold', '-2.5',
                                 '--score-range', '-8', '1', '--output', str(first)]) == 0
    assert import_official.main([str(first), '--output', str(second),
                                 '--json', str(tmp_path / 's.json')]) == 0
    assert json.loads((tmp_path / 's.json').read_text())['calibrated'] is True
    seg = Segmenter(second, device='cpu')
    assert seg.threshold == -2.5 and seg.score_range == (-8.0, 1.0)
    assert second.stat().st_mode & 0o777 == 0o666 & ~_umask()   # 0644 under umask 022


def test_cli_imports_the_deeplab_model_from_a_wrapped_ddp_file(tmp_path):
    # The authors' DeepLabV3+ WRN-38 layout, saved as training scripts do: {'state_dict':
    # {'module.<key>': ...}}; no --arch (told from the keys).
    torch.manual_seed(0)
    model = build_model('dlv3plus_wrn38', 19)
    raw, out = tmp_path / 'wrn38.pth', tmp_path / 'wrn38.pt'
    torch.save({'state_dict': {'module.' + k: v for k, v in model.state_dict().items()},
                'epoch': 10}, raw)
    assert import_official.main([str(raw), '--output', str(out)]) == 0
    seg = Segmenter(out, device='cpu')
    result = seg([np.full((48, 64, 3), 90, np.uint8)])[0]
    assert result.semantic.shape == (48, 64) and np.isfinite(result.score).all()
    with torch.inference_mode():
        ref = model.eval()(torch.full((1, 3, 48, 64), 90 / 255))[0].argmax(1)[0].numpy()
    assert (result.semantic == ref).mean() > 0.99        # fused, channels_last: same labels


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
