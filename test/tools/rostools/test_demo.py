"""The README's main command: bag -> live node -> recording -> evaluation, in real processes."""

import json
import math
from pathlib import Path

from densehybrid_ros.data.bags import BagReader
from densehybrid_ros.tools.rostools import demo


def test_demo_runs_end_to_end_and_reports_metrics(tmp_path, tiny_checkpoint):
    out, summary = tmp_path / 'demo', tmp_path / 'summary.json'
    rc = demo.main(['--frames', '3', '--size', '96', '192', '--checkpoint', str(tiny_checkpoint),
                    '--device', 'cpu', '--precision', 'bf16', '--output', str(out),
                    '--json', str(summary)])
    assert rc == 0
    result = json.loads(summary.read_text())
    assert result['frames'] == 3
    for key in ('ap', 'fpr95', 'open_miou'):
        assert isinstance(result[key], float) and math.isfinite(result[key])
    # the sample bag is a sequence: the recording kept its ground truth, objects were scored
    assert result['sequence']['frames'] == 3 and 'phantom_tracks_per_100_frames' in \
        result['sequence']['tracking']
    assert 'objects_f1' in result
    # ... and its depth image, so eval places the node's objects with depth as well
    recording = BagReader(out / 'live_bag')
    try:
        assert recording.topics['/camera/depth'][1] == 3
    finally:
        recording.close()
    pictures = {p.name for p in Path(result['pictures']).glob('*.png')}
    assert any('overlay' in name for name in pictures)
    assert any('heatmap' in name for name in pictures)
    log = (out / 'node.log').read_text()
    assert 'Traceback' not in log and '(bf16)' in log            # --precision reached the node
    assert result['megabytes_written'] > 0


def test_the_node_gets_the_model_options_int8_artifacts_included():
    """Issue 24 (6): the demo said the node has no int8; it runs int8 from an artifact."""
    args = demo.build_parser().parse_args(['--backend', 'openvino', '--precision', 'int8',
                                           '--artifacts', 'out/a', 'out/b', '--device', 'cpu'])
    cmd = demo.node_command(args)
    assert cmd[cmd.index('--ros-args') + 1:] == [
        '-p', f'input_topics:=[{demo.CAMERA}]', '-p', 'device:=cpu', '-p', 'precision:=int8',
        '-p', 'backend:=openvino', '-p', 'artifacts:=out/a,out/b']
    plain = demo.node_command(demo.build_parser().parse_args(['--checkpoint', 'm.pt']))
    assert 'checkpoint:=m.pt' in plain and 'backend:=auto' in plain      # said, not assumed
    assert not any(p.startswith('inference_width:=') for p in plain)    # 0: the node's own
    narrow = demo.node_command(demo.build_parser().parse_args(['--inference-width', '512']))
    assert 'inference_width:=512' in narrow
    assert not any(p.startswith('artifacts:=') for p in plain)
