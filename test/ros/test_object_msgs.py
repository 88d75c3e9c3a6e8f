"""object_msgs: tracks, placements, points and grids from the real core as ROS messages."""

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip('rclpy')
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from densehybrid_ros.core.camera import CameraModel, MountPose  # noqa: E402
from densehybrid_ros.core.instances import find_instances, InstanceConfig  # noqa: E402
from densehybrid_ros.core.projection import (GridSpec, occupancy_grid, place_on_ground,  # noqa
                                             plane_points, ray_table)
from densehybrid_ros.core.tracking import Tracker, TrackerConfig  # noqa: E402
from densehybrid_ros.ros import object_msgs  # noqa: E402

H, W = 480, 640
CAMERA = CameraModel(W, H, 500.0, 500.0, 319.5, 239.5)
MOUNT = MountPose.from_mount(camera_height=1.5)
OBJECTS = [(100, 300, 60, 80), (400, 320, 40, 50)]     # x, y, w, h: two objects on the road
PHANTOM = (300, 260, 10, 10)                           # seen in the last frame only
THRESHOLD, SCORE_RANGE = 0.5, (0.0, 1.2)
# the score map is synthetic (0.1 / 0.9): seeds anywhere above the threshold
RULES = InstanceConfig(seed_offset=0.1, grow_offset=0.1, min_area_fraction=0.0)


def frame_header() -> Header:
    header = Header(frame_id='front_camera_optical_frame')
    header.stamp.sec, header.stamp.nanosec = 1_700_000_123, 456_000_000
    return header


def score_map(boxes) -> np.ndarray:
    score = np.full((H, W), 0.1, np.float32)
    for x, y, w, h in boxes:
        score[y:y + h, x:x + w] = 0.9
    return score


@pytest.fixture(scope='module')
def world():
    """Four frames through find_instances and a Tracker; the last one placed in 3-D."""
    semantic = np.zeros((H, W), np.uint8)                 # all road: every blob is an obstacle
    tracker = Tracker(TrackerConfig(confirm_hits=3))       # confirmed on the third frame
    for frame in range(4):
        boxes = OBJECTS + ([PHANTOM] if frame == 3 else [])
        score = score_map(boxes)
        found = find_instances(score, semantic, THRESHOLD, RULES)
        tracks = tracker.update(found, stamp=frame * 0.1)
    table = ray_table(CAMERA, MOUNT)
    by_instance = {t.instance.id: t for t in tracks}
    placements = {t.id: place_on_ground(table, t.instance.bbox, t.instance.contact)
                  for t in tracks}
    points = plane_points(table, found.ids, score,
                          {iid: placements[t.id] for iid, t in by_instance.items()},
                          {iid: t.id for iid, t in by_instance.items()}, stride=2)
    spec = GridSpec(resolution=0.1, length=20.0, width=10.0)
    grid = occupancy_grid(table, spec, score < THRESHOLD, points)
    confirmed = sorted((t for t in tracks if t.confirmed), key=lambda t: t.id)
    return SimpleNamespace(tracks=tracks, confirmed=confirmed, placements=placements,
                           points=points, spec=spec, grid=grid,
                           confidences=object_msgs.track_confidences(tracks, SCORE_RANGE))


def round_trip(msg):
    """The message as a subscriber gets it (float32 fields rounded), stable over a second trip.

    (Bytes are not compared: CDR alignment padding is not zeroed by the serializer.)
    """
    back = deserialize_message(serialize_message(msg), type(msg))
    assert deserialize_message(serialize_message(back), type(msg)) == back
    return back


def test_the_fixture_has_two_confirmed_tracks_and_a_tentative_phantom(world):
    assert len(world.tracks) == 3 and len(world.confirmed) == 2
    assert [t.instance.bbox for t in world.confirmed] == OBJECTS
    assert len(world.points) > 1000 and (world.grid == 100).any()


def test_track_confidences_map_the_score_range_to_0_1(world):
    assert world.confidences[world.confirmed[0].id] == pytest.approx(0.9 / 1.2)
    low = SimpleNamespace(id=7, score=-3.0)
    high = SimpleNamespace(id=8, score=9.0)
    assert object_msgs.track_confidences([low, high], SCORE_RANGE) == {7: 0.0, 8: 1.0}


def test_detections_2d_carry_confirmed_tracks_in_pixels(world):
    header = frame_header()
    msg = round_trip(object_msgs.detections_2d(world.tracks, header, world.confidences))
    assert msg.header == header
    assert [d.id for d in msg.detections] == [str(t.id) for t in world.confirmed]
    for det, (x, y, w, h) in zip(msg.detections, OBJECTS):
        # Pixel centres at integers: columns x .. x + w - 1 are centred on x + (w - 1) / 2.
        assert (det.bbox.center.position.x, det.bbox.center.position.y) == (
            x + (w - 1) / 2, y + (h - 1) / 2)
        assert (det.bbox.size_x, det.bbox.size_y, det.bbox.center.theta) == (w, h, 0.0)
        assert det.header == header and len(det.results) == 1
        hypothesis = det.results[0].hypothesis
        assert hypothesis.class_id == 'anomaly'
        assert hypothesis.score == pytest.approx(0.75)


def test_detections_3d_sit_at_the_placements_in_the_base_frame(world):
    header = frame_header()
    msg = round_trip(object_msgs.detections_3d(world.tracks, world.placements, header,
                                               world.confidences, base_frame='odom_base'))
    assert msg.header.frame_id == 'odom_base' and msg.header.stamp == header.stamp
    assert [d.id for d in msg.detections] == [str(t.id) for t in world.confirmed]
    for det, track in zip(msg.detections, world.confirmed):
        placed = world.placements[track.id]
        box = det.bbox
        centre = [box.center.position.x, box.center.position.y, box.center.position.z]
        np.testing.assert_allclose(centre, placed.center)
        np.testing.assert_allclose([box.size.x, box.size.y, box.size.z], placed.size)
        assert 2 * math.atan2(box.center.orientation.z, box.center.orientation.w) == \
            pytest.approx(placed.yaw)
        assert det.results[0].pose.pose == box.center
        assert det.results[0].hypothesis.score == pytest.approx(0.75)
    # A track without a placement (at or above the horizon) is left out.
    fewer = {world.confirmed[0].id: world.placements[world.confirmed[0].id]}
    msg = object_msgs.detections_3d(world.tracks, fewer, header, world.confidences)
    assert [d.id for d in msg.detections] == [str(world.confirmed[0].id)]


def test_markers_in_3d_are_boxes_with_labels(world):
    header = frame_header()
    msg = round_trip(object_msgs.markers(world.tracks, world.placements, header,
                                         world.confidences))
    cleared, drawn = msg.markers[:3], msg.markers[3:]
    assert [(m.action, m.ns) for m in cleared] == [
        (Marker.DELETEALL, ns) for ns in ('anomaly_boxes', 'anomaly_outlines', 'anomaly_labels')]
    boxes = [m for m in drawn if m.type == Marker.CUBE]
    labels = [m for m in drawn if m.type == Marker.TEXT_VIEW_FACING]
    assert [m.id for m in boxes] == [m.id for m in labels] == [t.id for t in world.confirmed]
    assert {m.ns for m in boxes} == {'anomaly_boxes'} and {m.ns for m in labels} == {
        'anomaly_labels'}
    for marker in drawn:
        assert marker.header.frame_id == 'base_link' and marker.header.stamp == header.stamp
        assert marker.lifetime.sec == 0 and marker.lifetime.nanosec == 500_000_000
    for box, label, track in zip(boxes, labels, world.confirmed):
        placed = world.placements[track.id]
        np.testing.assert_allclose([box.scale.x, box.scale.y, box.scale.z], placed.size)
        assert box.pose.position.x == pytest.approx(placed.center[0])
        assert label.pose.position.z > placed.center[2] + placed.size[2] / 2
        assert label.text == f'#{track.id} 0.75 {placed.range:.1f} m'


def test_markers_without_placements_outline_the_boxes_in_the_camera_frame(world):
    header = frame_header()
    msg = round_trip(object_msgs.markers(world.tracks, None, header, world.confidences,
                                         camera=CAMERA))
    outlines = [m for m in msg.markers if m.type == Marker.LINE_STRIP]
    assert [m.id for m in outlines] == [t.id for t in world.confirmed]
    for outline, (x, y, w, h) in zip(outlines, OBJECTS):
        assert outline.header == header and outline.ns == 'anomaly_outlines'
        ring = np.array([[p.x, p.y, p.z] for p in outline.points])
        assert len(ring) == 5 and np.all(ring[:, 2] == 1.0)
        np.testing.assert_array_equal(ring[0], ring[-1])
        # Projected back, the ring runs along the box's outer pixel edges.
        corners = CAMERA.project(ring[:4])
        np.testing.assert_allclose(corners, [[x - 0.5, y - 0.5], [x + w - 0.5, y - 0.5],
                                             [x + w - 0.5, y + h - 0.5],
                                             [x - 0.5, y + h - 0.5]], atol=1e-9)
    # Without a camera model nothing can be drawn: only the deletions remain.
    bare = object_msgs.markers(world.tracks, None, header, world.confidences)
    assert [m.action for m in bare.markers] == [Marker.DELETEALL] * 3


def test_point_cloud_data_is_the_points(world):
    header = frame_header()
    msg = round_trip(object_msgs.point_cloud(world.points, header))
    assert msg.header.frame_id == 'base_link' and msg.header.stamp == header.stamp
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        (name, 4 * i, PointField.FLOAT32, 1)
        for i, name in enumerate(('x', 'y', 'z', 'score', 'track_id'))]
    n = len(world.points)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, n, 20, 20 * n)
    assert msg.is_dense and msg.is_bigendian == (sys.byteorder == 'big')
    decoded = np.frombuffer(bytes(msg.data), np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(decoded, world.points)
    assert set(decoded[:, 4]) == {float(t.id) for t in world.tracks}
    holed = world.points[:3].copy()
    holed[1, 0] = np.nan
    assert not object_msgs.point_cloud(holed, header).is_dense
    assert object_msgs.point_cloud(np.zeros((0, 5), np.float32), header).width == 0
    with pytest.raises(ValueError, match='N x 5'):
        object_msgs.point_cloud(world.points[:, :3], header)


def test_occupancy_grid_keeps_the_grid_and_its_placement(world):
    header = frame_header()
    msg = round_trip(object_msgs.occupancy_grid(world.grid, world.spec, header))
    info = msg.info
    assert msg.header.frame_id == 'base_link' and msg.header.stamp == header.stamp
    assert info.map_load_time == header.stamp
    assert (info.width, info.height) == (200, 100)         # columns = x cells, rows = y cells
    assert info.resolution == pytest.approx(0.1)
    assert (info.origin.position.x, info.origin.position.y, info.origin.orientation.w) == (
        0.0, -5.0, 1.0)
    decoded = np.array(msg.data, np.int8).reshape(info.height, info.width)
    np.testing.assert_array_equal(decoded, world.grid)
    with pytest.raises(ValueError, match='does not match'):
        object_msgs.occupancy_grid(world.grid[:, :10], world.spec, header)


def test_label_info_lists_every_class_and_unknown():
    header = frame_header()
    msg = round_trip(object_msgs.label_info(['road', 'sidewalk', 'car'], header,
                                            threshold=0.4))
    assert msg.header == header
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, 'road'), (1, 'sidewalk'), (2, 'car'), (255, 'unknown')]
    assert msg.threshold == pytest.approx(0.4)
    with pytest.raises(ValueError, match='collides'):
        object_msgs.label_info([f'c{i}' for i in range(256)], header)


def test_camera_info_is_copied_with_the_frame_header():
    info = CameraInfo(height=480, width=640, distortion_model='plumb_bob',
                      d=[-0.28, 0.09, 0.0012, -0.0008, -0.012],
                      k=[500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1],
                      p=[500.0, 0, 319.5, 0, 0, 500.0, 239.5, 0, 0, 0, 1, 0],
                      binning_x=2)
    info.header.frame_id = 'driver_frame'
    info.roi.width, info.roi.do_rectify = 320, True
    header = frame_header()
    copy = round_trip(object_msgs.camera_info_for(info, header))
    assert copy.header == header and info.header.frame_id == 'driver_frame'
    info.header = header
    assert copy == info
    copy.k[0] = 1.0                                       # a copy, not a view of the input
    assert info.k[0] == 500.0


def test_without_vision_msgs_the_other_builders_still_work(tmp_path):
    script = tmp_path / 'no_vision.py'
    script.write_text(
        'import sys\n'
        "sys.modules['vision_msgs'] = None      # as if not installed\n"
        'import numpy as np\n'
        'from std_msgs.msg import Header\n'
        'from densehybrid_ros.ros import object_msgs as om\n'
        'try:\n'
        '    om.detections_2d([], Header(), {})\n'
        'except om.VisionMsgsMissing as exc:\n'
        "    print('missing:', isinstance(exc, ImportError), 'vision_msgs' in str(exc))\n"
        "print('cloud:', om.point_cloud(np.zeros((2, 5), np.float32), Header()).width)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:2] == ['missing: True True', 'cloud: 2']
