"""densehybrid-bench obstacles: the node's object and 3-D outputs on real model outputs, timed."""

import json
import math

import numpy as np
import pytest

from densehybrid_ros.tools.speed import bench
from densehybrid_ros.tools.speed.obstacles import (back_and_forth, format_lines, load_frames,
                                                   NodeOutputs, QUICK_SIZE)

pytest.importorskip('rclpy')
FIGURES = ('obstacle_cost_ms', 'three_d_cost_ms', 'three_d_depth_cost_ms', 'frame_ms',
           'obstacle_ratio', 'three_d_ratio', 'three_d_depth_ratio', 'ray_table_ms')


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_help_names_the_subcommand_and_its_figures(capsys):
    with pytest.raises(SystemExit) as done:
        bench.main(['obstacles', '--help'])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith('usage: densehybrid-bench obstacles [-h]')
    assert 'obstacle_cost_ms' in text and 'three_d_cost_ms' in text and '--quick' in text


def test_a_quick_run_prints_and_writes_every_figure(tmp_path, capsys):
    out = tmp_path / 'obstacles.json'
    rc = bench.main(['obstacles', '--quick', '--reps', '4', '--threads', '1', '--json',
                     str(out)])
    assert rc == 0
    figures = json.loads(out.read_text())
    for key in FIGURES:
        assert _positive(figures[key]), (key, figures[key])
    for key in ('p90_ms', 'cpu_ms'):
        assert set(figures[key]) == {'obstacle', 'three_d', 'three_d_depth'}
        assert all(_positive(v) for v in figures[key].values()), key
    assert figures['size'] == figures['inference_size'] == '320x180'  # narrower than 1024
    assert figures['frames'] == [17, 18, 19] and figures['reps'] == 4 and figures['quick']
    assert figures['obstacle_ratio'] == pytest.approx(
        figures['obstacle_cost_ms'] / figures['frame_ms'])
    assert figures['three_d_depth_ratio'] == pytest.approx(
        figures['three_d_depth_cost_ms'] / figures['frame_ms'])
    # The tracker did real work: confirmed tracks, placed, with points in both 3-D modes.
    work = figures['workload_mean']
    assert work['tracks'] >= 1 and work['placed'] >= 1
    assert work['points'] > 0 and work['depth_points'] > 0
    assert figures['vision_msgs'] == 'installed'
    printed = capsys.readouterr().out
    assert '(obstacle_cost_ms)' in printed and '(three_d_cost_ms)' in printed
    assert 'ray table (once per camera)' in printed


def test_bad_options_are_one_error_line(capsys):
    assert bench.main(['obstacles', '--quick', '--frames', '1']) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(
        'densehybrid-bench obstacles: error: need reps >= 1, at least 2 frames')


def test_frames_are_visited_back_and_forth():
    assert back_and_forth(2) == [0, 1]
    assert back_and_forth(4) == [0, 1, 2, 3, 2, 1]      # then 0 again: always a neighbour


def test_the_messages_are_the_nodes_for_the_tracks():
    frames = load_frames(QUICK_SIZE, 17, 3, 0, lambda text: None)
    outputs = NodeOutputs(frames)
    assert outputs.geometry.grid.shape == (100, 200)       # the node's 0.1 m grid, 20 x 10 m
    assert outputs.geometry.cloud_stride == 2
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker
    for step, k in enumerate([0, 1, 2, 1, 0, 1, 2]):
        header = Header(frame_id='cam')
        header.stamp.sec = step
        frame, confidences, (image, det2d, markers) = outputs.objects(frames.results[k], header)
    ids = sorted(t.id for t in frame.tracks)
    assert ids and image.encoding == 'mono16' and image.header.stamp.sec == step
    assert sorted(np.unique(np.frombuffer(bytes(image.data), np.uint16))[1:]) == ids
    assert sorted(int(d.id) for d in det2d.detections) == ids
    drawn = [m for m in markers.markers if m.action == Marker.ADD]
    assert sorted(m.id for m in drawn if m.ns == 'anomaly_outlines') == ids
    for depth in (None, frames.depths[k]):
        points, (info, cloud, grid, det3d) = outputs.three_d(
            frame, confidences, frames.results[k], header, depth)
        assert info.header.stamp.sec == step and info.width == QUICK_SIZE[1]
        assert cloud.width == len(points) > 0 and cloud.header.frame_id == 'base_link'
        assert set(np.unique(points[:, 4]).astype(int)) <= set(ids)
        assert 100 in np.asarray(grid.data) and grid.info.width == 200
        assert sorted(int(d.id) for d in det3d.detections) == sorted(frame.placements)


def test_printed_lines_say_when_vision_msgs_is_missing():
    figures = {'size': '1280x720', 'inference_size': '1024x576', 'frames': [17, 21], 'reps': 30,
               'frame_ms': 500.0, 'ray_table_ms': 300.0, 'cpu_ms': {'obstacle': 2.0},
               'workload_mean': {'instances': 3.0, 'tracks': 2.0, 'points': 900.0},
               'vision_msgs': 'missing, Detection2DArray / Detection3DArray skipped (x)'}
    for key in ('obstacle_cost_ms', 'three_d_cost_ms', 'three_d_depth_cost_ms'):
        figures[key] = 2.5
    for key in ('obstacle_ratio', 'three_d_ratio', 'three_d_depth_ratio'):
        figures[key] = 0.005
    lines = format_lines(figures)
    assert lines[-1] == '  vision_msgs missing, Detection2DArray / Detection3DArray skipped (x)'
    assert '2.50 ms = 0.0050 of the frame (obstacle_cost_ms)' in lines[1]
