"""Synthetic sequences: one world, a moving camera, ground truth that agrees with the pixels."""

import dataclasses

import numpy as np
import pytest

from densehybrid_ros.data.synthetic import (BUILDING, camera_path, IGNORE, Pose, ROAD, Sequence,
                                            SIDEWALK, TERRAIN)

SIZE = (96, 160)
SPEED = 1.2


@pytest.fixture(scope='module')
def straight():
    """Straight drive: obstacles 10-24 units ahead, passed by the last of 24 frames."""
    seq = Sequence(7, SIZE, frames=24, family='eval', speed=SPEED, yaw_rate=0.0,
                   anomalies=(3, 3), ranges=(10.0, 24.0))
    return seq, list(seq)


@pytest.fixture(scope='module')
def turning():
    """A gentle arc with drift, a hood and an off-road obstacle."""
    seq = Sequence(11, SIZE, frames=16, family='voronoi', speed=1.5, yaw_rate=0.004,
                   drift=0.02, anomalies=(2, 2), ranges=(8.0, 20.0), off_road=(1, 1), hood=True)
    return seq, list(seq)


def _box(obj, camera):
    """Projected pixel box (x0, y0, x1, y1), continuous, ROS convention, of an obstacle."""
    u, v = obj.contact
    s = camera.fy / obj.range
    return (u - obj.width * s / 2, v - obj.height * s, u + obj.width * s / 2, v)


def _clean(frame):
    """Obstacles fully in the frame, beyond the near plane, overlapped by no nearer one."""
    cam, out = frame.camera, []
    for obj in frame.objects:
        if obj.contact is None or obj.range < 1.0:
            continue
        x0, y0, x1, y1 = _box(obj, cam)
        if x0 < 1 or y0 < 1 or x1 > cam.width - 2 or y1 > cam.height - 2:
            continue
        hidden = False
        for other in frame.objects:
            if other is obj or other.contact is None or not 1.0 <= other.range < obj.range:
                continue
            a0, b0, a1, b1 = _box(other, cam)
            hidden |= a0 < x1 + 1 and x0 - 1 < a1 and b0 < y1 + 1 and y0 - 1 < b1
        if not hidden:
            out.append(obj)
    return out


def test_frames_are_deterministic_and_random_access(straight):
    seq, frames = straight
    assert len(seq) == len(frames) == 24 and [f.index for f in frames] == list(range(24))
    again = Sequence(7, SIZE, frames=24, family='eval', speed=SPEED, yaw_rate=0.0,
                     anomalies=(3, 3), ranges=(10.0, 24.0))
    for k in (9, 0, 23):                                   # any order
        for key in ('image', 'label', 'anomaly', 'instances', 'depth'):
            np.testing.assert_array_equal(getattr(again[k], key), getattr(frames[k], key))
    assert seq[-1].index == 23
    other = Sequence(8, SIZE, frames=16, family='eval', speed=SPEED, yaw_rate=0.0)
    assert not np.array_equal(other[0].image, frames[0].image)
    assert not np.array_equal(frames[1].image, frames[0].image)       # the camera moves
    with pytest.raises(IndexError):
        seq[24]


def test_arrays_have_the_documented_types(straight):
    frame = straight[1][3]
    h, w = SIZE
    assert frame.image.shape == (h, w, 3) and frame.image.dtype == np.uint8
    assert frame.label.shape == frame.anomaly.shape == (h, w)
    assert frame.label.dtype == frame.anomaly.dtype == np.uint8
    assert frame.instances.shape == (h, w) and frame.instances.dtype == np.uint16
    assert frame.depth.shape == (h, w) and frame.depth.dtype == np.float32
    assert frame.camera.width == w and frame.camera.height == h
    assert (frame.depth > 0).all()
    sky = ~np.isfinite(frame.depth)
    assert sky.any() and (frame.depth[sky] == np.inf).all()           # sky: +inf, never NaN


def test_the_same_object_keeps_its_id_and_grows_as_the_camera_approaches(straight):
    _, frames = straight
    grown = 0
    for oid in (1, 2, 3):
        seen = [(f.index, o) for f in frames for o in _clean(f) if o.id == oid]
        assert len(seen) >= 4, f'object {oid} is cleanly visible in only {len(seen)} frames'
        pixels = [o.pixels for _, o in seen]
        assert all(b >= a for a, b in zip(pixels, pixels[1:])), pixels
        grown += pixels[-1] >= 4 * pixels[0]
        for k, o in seen:                  # the id's pixels sit where the object projects
            ys, xs = np.nonzero(frames[k].instances == oid)
            x0, y0, x1, y1 = _box(o, frames[k].camera)
            assert ys.size == o.pixels and o.visible
            assert x0 - 1.5 <= xs.min() and xs.max() <= x1 + 1.5
            assert y0 - 1.5 <= ys.min() and ys.max() <= y1 + 1.5
    assert grown == 3


def test_bottom_row_and_centre_match_the_projected_ground_position(straight, turning):
    checked = 0
    for _, frames in (straight, turning):
        for frame in frames:
            for o in _clean(frame):
                ys, xs = np.nonzero(frame.instances == o.id)
                u, v = o.contact
                assert abs(ys.max() - v) <= 1.0, (frame.index, o.id, ys.max(), v)
                assert abs((xs.min() + xs.max()) / 2 - u) <= 1.5
                checked += 1
    assert checked >= 12


def test_depth_at_the_contact_pixel_is_the_range_and_ground_depth_follows_the_intrinsics(
        straight):
    seq, frames = straight
    for frame in frames[:8]:
        cam = frame.camera
        for o in _clean(frame):
            ys, xs = np.nonzero(frame.instances == o.id)
            bottom = xs[ys == ys.max()]
            np.testing.assert_allclose(frame.depth[ys.max(), bottom], o.range, rtol=1e-5)
        rows, cols = np.nonzero(np.isin(frame.label, (ROAD, SIDEWALK, TERRAIN)))
        expected = cam.fy * 1.0 / (rows - cam.cy)                 # camera 1 unit above ground
        np.testing.assert_allclose(frame.depth[rows, cols], expected, rtol=1e-4)
        assert rows.min() > cam.cy
        rows, cols = np.nonzero(frame.label == BUILDING)          # fronts: planes X = const
        lateral = (cols - cam.cx) * frame.depth[rows, cols] / cam.fx + frame.pose.x
        fronts = [fr.x for fr in seq.world.street.fronts]
        assert rows.size > 50
        assert np.all(np.min(np.abs(lateral[:, None] - fronts), axis=1) < 1e-3)


def test_range_decreases_by_the_speed_per_frame(straight, turning):
    _, frames = straight
    ranges = np.array([[o.range for o in f.objects] for f in frames])
    np.testing.assert_allclose(np.diff(ranges, axis=0), -SPEED, atol=1e-9)
    laterals = np.array([[o.lateral for o in f.objects] for f in frames])
    np.testing.assert_allclose(laterals - laterals[0], 0.0, atol=1e-9)      # no yaw, no drift
    seq, frames = turning
    steps = np.diff(np.array([[o.range for o in f.objects] for f in frames]), axis=0)
    np.testing.assert_allclose(steps, -seq.speed, atol=0.1)
    for f in frames:                 # camera-frame position is the world position seen from it
        for o in f.objects:
            x, z = f.pose.to_world(o.lateral, o.range)
            assert abs(x - o.x) < 1e-9 and abs(z - o.z) < 1e-9
            assert abs(o.distance - np.hypot(o.lateral, o.range)) < 1e-12


def test_labels_anomalies_and_instances_agree(straight, turning):
    for seq, frames in (straight, turning):
        ids = {o.id for o in seq.world.obstacles}
        assert ids == set(range(1, len(ids) + 1))
        for f in frames:
            inst = f.instances > 0
            np.testing.assert_array_equal(inst, f.anomaly == 1)
            assert (f.label[inst] == IGNORE).all()
            assert set(np.unique(f.instances)) <= ids | {0}
            assert set(np.unique(f.anomaly)) <= {0, 1, 255}
            for o in f.objects:
                assert o.pixels == int((f.instances == o.id).sum())
    seq, frames = turning
    hood = frames[0].anomaly == 255                      # the hood: void, no depth, no id
    assert hood[-1].any() and not hood[0].any()
    for f in frames:
        np.testing.assert_array_equal(f.anomaly == 255, hood)
        assert (f.label[hood] == IGNORE).all() and np.isnan(f.depth[hood]).all()
        assert not np.isnan(f.depth[~hood]).any()


def test_the_footprint_is_what_the_obstacle_shows_with_nothing_in_front_of_it(straight,
                                                                              turning):
    for seq, frames in (straight, turning):
        for f in frames[::3]:
            for o in f.objects:
                ob = next(b for b in seq.world.obstacles if b.id == o.id)
                alone = dataclasses.replace(seq.world, props=(), obstacles=(ob,))
                shown = int((alone.render(seq.camera, f.pose).instances == o.id).sum())
                assert o.footprint == shown and o.pixels <= o.footprint
                if o.footprint:
                    assert o.visible_fraction == o.pixels / o.footprint
                else:
                    assert np.isnan(o.visible_fraction)


def test_an_obstacle_behind_another_shows_part_of_its_footprint():
    seq = Sequence(7, SIZE, frames=4, family='eval', speed=SPEED, anomalies=(2, 2),
                   ranges=(12.0, 12.0))
    far, near = seq.world.obstacles
    # the second obstacle moved to stand 3 units in front of the first, a little to the side
    near = dataclasses.replace(near, x=far.x + 0.3 * far.width, z=far.z - 3.0)
    seq.world = dataclasses.replace(seq.world, obstacles=(far, near))
    frame = seq[0]
    hidden, front = frame.objects
    assert front.pixels == front.footprint > 0
    assert 0 < hidden.pixels < hidden.footprint
    ids = frame.instances
    assert hidden.pixels == int((ids == hidden.id).sum())
    assert 0 < hidden.visible_fraction < 1


def test_obstacles_stand_on_the_road_beside_the_path_and_are_passed(straight, turning):
    for seq, frames in (straight, turning):
        road = seq.world.street.road
        xs = np.array([p.x for p in seq.poses])
        zs = np.array([p.z for p in seq.poses])
        on_road = [o for o in seq.world.obstacles if o.on_road]
        assert len(on_road) == len(seq.world.obstacles) - (seq is turning[0])
        for o in on_road:
            assert road[0] < o.x < road[1]
            assert abs(o.x - np.interp(o.z, zs, xs)) - o.width / 2 >= 0.4
        for o in seq.world.obstacles:
            assert not o.on_road or frames[0].objects[o.id - 1].visible
            assert frames[-1].objects[o.id - 1].range < 1.0        # passed by the end
    off = [o for o in turning[0].world.obstacles if not o.on_road]
    assert len(off) == 1 and not road[0] <= off[0].x <= road[1]


def test_camera_path_moves_speed_per_frame_and_returns_to_its_lane():
    poses = camera_path(41, 0.5, yaw_rate=0.003)
    steps = np.hypot(np.diff([p.x for p in poses]), np.diff([p.z for p in poses]))
    np.testing.assert_allclose(steps, 0.5, rtol=1e-12)
    assert poses[20].yaw == 0.0 and poses[0].yaw == pytest.approx(-0.06)
    assert abs(poses[-1].x - poses[0].x) < 1e-9 and poses[20].x < -0.1    # an arc
    straight = camera_path(5, 2.0, drift=0.1)
    assert [p.z for p in straight] == [0.0, 2.0, 4.0, 6.0, 8.0]
    np.testing.assert_allclose([p.x for p in straight], [0, 0.1, 0.2, 0.3, 0.4])
    pose = Pose(1.0, 2.0, 0.3)
    lateral, range_ = pose.to_camera(4.0, 9.0)
    np.testing.assert_allclose(pose.to_world(lateral, range_), (4.0, 9.0))
    assert Pose(0.0, 0.0, 0.1).to_camera(0.0, 10.0)[0] < 0        # turning right: street left


def test_the_world_does_not_depend_on_the_frame_size():
    small, large = Sequence(4, (48, 96), frames=3), Sequence(4, (96, 160), frames=3)
    assert len(small.world.obstacles) >= 3
    for a, b in zip(small.world.obstacles, large.world.obstacles):
        assert (a.x, a.z, a.width, a.height) == (b.x, b.z, b.width, b.height)
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert small.camera.fx / 96 == pytest.approx(large.camera.fx / 160)
    assert (small.camera.cy + 0.5) / 48 == pytest.approx((large.camera.cy + 0.5) / 96)


def test_without_a_family_nothing_is_anomalous():
    frame = Sequence(2, (48, 96), frames=2, family=None)[1]
    assert frame.objects == () and not frame.instances.any() and not frame.anomaly.any()


@pytest.mark.parametrize('kwargs', [{'family': 'nope'}, {'size': (4, 64)}, {'frames': 0},
                                    {'speed': -1.0}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        Sequence(0, **kwargs)
