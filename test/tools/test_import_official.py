"""densehybrid-import end to end: raw authors' file in, usable checkpoint out."""

import json
import subprocess
import sys

import numpy as np
import torch

from densehybrid_ros.inference import Segmenter
from densehybrid_ros.models import build_model
from densehybrid_ros.tools import import_official


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
    proc = subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.import_official',
                           str(raw), '--arch', 'ldn121', '--output', str(tmp_path / 'x.pt')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'does not fit arch' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'x.pt').exists()
