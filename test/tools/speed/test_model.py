"""Model-only benchmark: figures for a real (small) model, and clear errors for bad sizes."""

import json
import subprocess
import sys

from densehybrid_ros.tools.speed import bench


def test_times_a_real_model_and_writes_the_json(tmp_path, capsys):
    out = tmp_path / 'b.json'
    rc = bench.main(['model', '--arch', 'ladder_resnet18_half', '--widths', '96', '72',
                     '--aspect', '0.6', '--reps', '2', '--threads', '1', '--json', str(out)])
    assert rc == 0
    figs = json.loads(out.read_text())
    assert figs['arch'] == 'ladder_resnet18_half' and figs['fused'] is True
    assert figs['threads'] == 1 and figs['parameters'] > 1e6
    assert list(figs['sizes']) == ['96x58', '72x43']
    for size in figs['sizes'].values():
        assert len(size['seconds']) == 2 and all(t > 0 for t in size['seconds'])
        assert len(size['cpu_seconds']) == 2 and all(t > 0 for t in size['cpu_seconds'])
        assert size['fps_best'] >= size['fps_median'] > 0
        assert size['peak_rss_mib'] >= figs['rss_after_load_mib'] > 50
    assert 'ladder_resnet18_half 96x58 fp32 fused:' in capsys.readouterr().out


def test_a_bad_size_is_an_error_line_not_a_traceback():
    proc = subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.speed.bench', 'model',
                           '--widths', '1024', '10'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip() == ('densehybrid-bench model: error: need --reps >= 1 and sizes '
                                   'of at least 8x8, got --reps 2 and 1024x512, 10x5')
