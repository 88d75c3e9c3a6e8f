"""Obstacles and 3-D outputs over real processes: a camera plays a sequence bag into the node.

``densehybrid-make-bag --sequence`` writes a street seen from a camera driving towards held-out
anomalies (image, camera_info, depth, per-object ground truth). A camera process plays it; the
node (embedded model, static mount: the generator's camera is level, 1 unit above the ground)
publishes tracks, markers, points, the grid and camera_info, which a probe in this process
receives. Checked: track ids persist across frames, every output carries the input's stamp,
2-D outputs its frame and 3-D outputs ``base_link``, and the grid's occupied cells stand where
the generator put the anomalies.
"""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('rclpy')
vision_msgs = pytest.importorskip('vision_msgs.msg')
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, REPO, ros_env, stamp_ns, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from rosbags.highlevel import AnyReader  # noqa: E402

FRAMES, SIZE, RATE = 24, (288, 512), 3.0
OUT = '/camera/densehybrid'
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
RESOLUTION = 0.5                      # grid cell, generator units (m)


@pytest.fixture(scope='module')
def sequence_bag(tmp_path_factory):
    """A short sequence bag of held-out anomalies approaching the camera."""
    bag = tmp_path_factory.mktemp('sequence') / 'bag'
    done = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.rostools.make_bag', '--sequence',
         '--output', str(bag), '--frames', str(FRAMES), '--size', *map(str, SIZE),
         '--seed', '3', '--speed', '1.6', '--quiet'],
        capture_output=True, text=True, timeout=300, env=ros_env())
    assert done.returncode == 0, done.stderr
    return bag


def ground_truth(bag):
    """Stamp -> the frame's ground-truth JSON (camera pose and every object)."""
    truth = {}
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic.endswith('/ground_truth')]
        for conn, _, raw in reader.messages(connections=conns):
            frame = json.loads(reader.deserialize(raw, conn.msgtype).data)   # String: no header
            stamp = frame['header']['stamp']
            truth[stamp['sec'] * 1_000_000_000 + stamp['nanosec']] = frame
    return truth


@pytest.fixture(scope='module')
def played(module_probe, sequence_bag, tmp_path_factory):
    """Run the node and the camera process; return what the probe received per output."""
    log = tmp_path_factory.mktemp('node') / 'node.log'
    node = NodeProcess(['--autostart', '--ros-args', '-r', 'image:=/camera/image',
                        '-p', 'device:=cpu', '-p', 'backend:=torch', '-p', 'camera_height:=1.0',
                        '-p', f'grid_resolution:={RESOLUTION}', '-p', 'grid_length:=60.0',
                        '-p', 'grid_width:=20.0', '-p', 'track_confirm_hits:=2',
                        '-p', 'track_confirm_window:=3'], log)
    subs = {name: module_probe.subscribe(msg_type, f'{OUT}/{name}', RELIABLE, keep=FRAMES)
            for name, msg_type in (('anomaly_detections', vision_msgs.Detection2DArray),
                                   ('anomaly_markers', MarkerArray),
                                   ('anomaly_points', PointCloud2),
                                   ('anomaly_grid', OccupancyGrid),
                                   ('anomaly_instances', Image),
                                   ('camera_info', CameraInfo))}
    try:
        camera = subprocess.run(
            [sys.executable, str(REPO / 'test' / 'ros' / 'play_sequence.py'), str(sequence_bag),
             str(RATE), '--no-depth'], capture_output=True, text=True,
            timeout=START_TIMEOUT_S + FRAMES / RATE + 60, env=ros_env())
        assert camera.returncode == 0, camera.stderr + node.output()[-3000:]
        sent = json.loads(camera.stdout.strip().splitlines()[-1])
        last = sent['stamps'][-1]
        if not module_probe.wait(lambda: any(stamp_ns(m.header) == last
                                             for m in subs['camera_info'].recent), 60.0):
            node.stop(signal.SIGINT, timeout=10.0)         # stacks into the log if it hangs
            pytest.fail('no 3-D outputs of the last frame within 60 s; received '
                        f'{ {name: len(c.arrivals) for name, c in subs.items()} }, '
                        f'probe errors {module_probe.errors[-3:]}; '
                        f'{module_probe.stacks(log.with_suffix(".probe-stacks"))}; '
                        f'node log:\n{node.output()[-6000:]}')
        yield sent, subs, ground_truth(sequence_bag), node
    finally:
        node.stop(signal.SIGINT)


def test_track_ids_persist_across_frames(played):
    sent, subs, _, node = played
    frames_per_id = {}
    for msg in subs['anomaly_detections'].recent:
        for det in msg.detections:
            frames_per_id.setdefault(det.id, set()).add(stamp_ns(msg.header))
            assert det.results[0].hypothesis.class_id == 'anomaly'
            assert 0.0 <= det.results[0].hypothesis.score <= 1.0
    assert frames_per_id, 'no confirmed track was published\n' + node.output()[-3000:]
    assert max(len(stamps) for stamps in frames_per_id.values()) >= 4, frames_per_id
    # the instance image shows the same ids
    ids = set()
    for msg in subs['anomaly_instances'].recent:
        assert msg.encoding == 'mono16' and (msg.height, msg.width) == SIZE
        ids |= set(np.unique(np.frombuffer(bytes(msg.data), np.uint16)).tolist()) - {0}
    assert {int(i) for i in frames_per_id} <= ids


def test_outputs_carry_the_input_stamp_and_say_their_frame(played):
    sent, subs, _, _ = played
    stamps = set(sent['stamps'])
    for name in ('anomaly_detections', 'anomaly_points', 'anomaly_grid', 'camera_info',
                 'anomaly_markers'):
        received = list(subs[name].recent)
        assert received, name
        for msg in received:
            headers = [m.header for m in msg.markers] if name == 'anomaly_markers' \
                else [msg.header]
            for header in headers:
                assert stamp_ns(header) in stamps, name
                expected = 'base_link' if name in ('anomaly_points', 'anomaly_grid') \
                    else None
                if expected:
                    assert header.frame_id == expected, name
    assert any(m.header.frame_id == 'base_link' for a in subs['anomaly_markers'].recent
               for m in a.markers if m.action == m.ADD), 'markers are not placed in 3-D'
    info = list(subs['camera_info'].recent)[-1]
    assert (info.height, info.width) == SIZE and info.k[0] > 0


def test_the_grid_marks_the_anomalies_where_the_generator_put_them(played):
    _, subs, truth, _ = played
    marked = {}                                  # object id -> grids that mark it in place
    for grid in subs['anomaly_grid'].recent:
        cells = np.asarray(grid.data, np.int8).reshape(grid.info.height, grid.info.width)
        assert set(np.unique(cells).tolist()) <= {-1, 0, 100}
        assert (cells == 0).any(), 'no drivable ground seen'
        rows, cols = np.nonzero(cells == 100)
        res = grid.info.resolution
        xs = grid.info.origin.position.x + (cols + 0.5) * res
        ys = grid.info.origin.position.y + (rows + 0.5) * res
        for obj in truth[stamp_ns(grid.header)]['objects']:
            # base frame of the generator's level camera: x = range, y = -lateral; the object's
            # points stand on its plane (x within a cell) across its width (y)
            here = (np.abs(xs - obj['range']) <= res) \
                & (np.abs(ys + obj['lateral']) <= obj['width'] / 2 + res)
            if obj['visible'] and here.any():
                marked.setdefault(obj['id'], 0)
                marked[obj['id']] += 1
    assert marked and max(marked.values()) >= 3, marked
