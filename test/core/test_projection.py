"""Projection: pixels to rays, ground and depth placement, points with height, the grid."""

import math
from typing import Tuple

import numpy as np
import pytest

from densehybrid_ros.core.camera import CameraModel, MountPose
from densehybrid_ros.core.projection import (
    depth_in_metres, depth_points, ground_points, GridSpec, occupancy_grid, place_on_ground,
    place_with_depth, plane_points, ray_table)
from densehybrid_ros.data.synthetic import HELD_OUT_FAMILIES, IGNORE, make_scene, ROAD, SIDEWALK

W, H, F = 640, 480, 500.0
PINHOLE = CameraModel(W, H, F, F, 319.5, 239.5)
PLUMB_BOB = (-0.28, 0.09, 0.0012, -0.0008, -0.012)


def level(height: float = 1.5, **angles) -> MountPose:
    return MountPose.from_mount(camera_height=height, **angles)


# -- rays to the ground ---------------------------------------------------------------------------

def test_level_camera_ground_range_is_fy_h_over_row_offset():
    h = 1.5
    table = ray_table(PINHOLE, level(h))
    v = np.arange(250, H)
    ground = table.ground[v, 400]
    np.testing.assert_allclose(ground[:, 0], F * h / (v - PINHOLE.cy), rtol=1e-5)
    np.testing.assert_allclose(ground[:, 1], -(400 - PINHOLE.cx) * h / (v - PINHOLE.cy),
                               rtol=1e-5)
    assert np.all(ground[:, 2] == 0)
    assert np.isnan(table.ground[:240]).all()        # at and above the horizon: no ground


def test_pitch_down_sees_the_ground_closer():
    u, v = np.array([PINHOLE.cx, 300.0]), np.array([PINHOLE.cy, 400.0])
    pitch = 0.2
    flat = ground_points(PINHOLE, level(1.5), u, v)
    down = ground_points(PINHOLE, level(1.5, camera_pitch=pitch), u, v)
    assert np.isnan(flat[0, 0]) and down[0, 0] == pytest.approx(1.5 / math.tan(pitch))
    assert down[1, 0] < flat[1, 0]
    up = ground_points(PINHOLE, level(1.5, camera_pitch=-0.05), u, v)
    assert up[1, 0] > flat[1, 0]


def test_yaw_left_moves_points_to_plus_y():
    u, v = np.array([PINHOLE.cx]), np.array([PINHOLE.cy])
    yaw = 0.3
    point = ground_points(PINHOLE, level(1.5, camera_pitch=0.2, camera_yaw=yaw), u, v)[0]
    assert point[1] > 0 and math.atan2(point[1], point[0]) == pytest.approx(yaw)
    assert ray_table(PINHOLE, level(1.5, camera_yaw=yaw)).forward[1] == pytest.approx(
        math.sin(yaw))


def test_positive_roll_lowers_the_right_side():
    u, v = np.array([500.0, 139.0]), np.array([300.0, 300.0])   # right and left of centre
    right, left = ground_points(PINHOLE, level(1.5, camera_roll=0.1), u, v)
    assert np.hypot(*right[:2]) < np.hypot(*left[:2])


def test_ray_tables_are_cached_and_read_only():
    table = ray_table(PINHOLE, level(1.5))
    assert ray_table(PINHOLE, level(1.5)) is table
    assert ray_table(PINHOLE, level(1.6)) is not table
    with pytest.raises(ValueError):
        table.ground[0, 0, 0] = 1.0


# -- instances ------------------------------------------------------------------------------------

# A billboard (x = 8 m ahead, y from -0.2 to 0.8 m, 1.2 m tall) seen by a level camera 1.5 m up.
BOARD_X, BOARD_Y, BOARD_W, BOARD_H, CAM_H = 8.0, (-0.2, 0.8), 1.0, 1.2, 1.5


def billboard_scene() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Instance mask, instance ids, score and depth (m) rendered with pinhole formulas by hand."""
    v, u = np.mgrid[0:H, 0:W].astype(float)
    y = -(u - PINHOLE.cx) * BOARD_X / F           # where each pixel's ray meets x = BOARD_X
    z = CAM_H - (v - PINHOLE.cy) * BOARD_X / F
    mask = (y >= BOARD_Y[0]) & (y <= BOARD_Y[1]) & (z >= 0) & (z <= BOARD_H)
    with np.errstate(divide='ignore'):
        ground = np.where(v > PINHOLE.cy, F * CAM_H / (v - PINHOLE.cy), 0.0)
    depth = np.where(mask, BOARD_X, ground).astype(np.float32)
    score = np.where(mask, 0.9, 0.1).astype(np.float32)
    return mask, mask.astype(np.uint16), score, depth


def bbox_of(mask: np.ndarray) -> Tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return (int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
            int(rows.max() - rows.min() + 1))


def test_instance_on_the_ground_gets_its_position_and_size():
    mask, ids, score, _ = billboard_scene()
    table = ray_table(PINHOLE, level(CAM_H))
    placed = place_on_ground(table, bbox_of(mask))
    # One pixel row is R^2 / (f h) = 0.085 m of range here: half-pixel edges hold it to 0.05.
    assert placed.position[0] == pytest.approx(BOARD_X, abs=0.05)
    assert placed.position[1] == pytest.approx(np.mean(BOARD_Y), abs=0.02)
    assert placed.range == pytest.approx(np.hypot(BOARD_X, np.mean(BOARD_Y)), abs=0.05)
    assert placed.size[1] == pytest.approx(BOARD_W, abs=0.03)
    assert placed.size[2] == pytest.approx(BOARD_H, abs=0.03)
    assert placed.yaw == 0 and placed.center[0] > placed.position[0]   # box behind its face
    # An instance whose contact is above the horizon is not placed.
    assert place_on_ground(table, (300, 100, 20, 30)) is None


def test_points_without_depth_carry_height():
    mask, ids, score, _ = billboard_scene()
    table = ray_table(PINHOLE, level(CAM_H))
    placed = place_on_ground(table, bbox_of(mask))
    points = plane_points(table, ids, score, {1: placed}, track_ids={1: 42})
    assert points.dtype == np.float32 and points.shape == (mask.sum(), 5)
    assert np.abs(points[:, 0] - BOARD_X).max() < 0.05
    assert points[:, 2].min() == pytest.approx(0, abs=0.03)
    assert points[:, 2].max() == pytest.approx(BOARD_H, abs=0.03)
    assert np.all(points[:, 3] == np.float32(0.9)) and np.all(points[:, 4] == 42)
    sparse = plane_points(table, ids, score, {1: placed}, stride=4)
    assert len(points) / 20 < len(sparse) < len(points) / 12


def test_instance_with_depth_in_millimetres_and_at_another_size():
    mask, ids, score, depth = billboard_scene()
    table = ray_table(PINHOLE, level(CAM_H))
    x, y, w, h = box = bbox_of(mask)
    crop = mask[y:y + h, x:x + w]                 # the instance's mask, as Instance.mask
    mm = np.round(depth * 1000).astype(np.uint16)
    # 32FC1 m, 16UC1 mm, a half-size depth image (nearest neighbour: at the instance's edges a
    # pixel may take its neighbour's depth, the ground's, so only most points sit at 8 m).
    for image, exact in ((depth, 1.0), (mm, 1.0), (mm[::2, ::2], 0.9)):
        placed = place_with_depth(table, box, image, crop)
        assert placed.position[0] == pytest.approx(BOARD_X, abs=1e-3)
        assert placed.position[1] == pytest.approx(np.mean(BOARD_Y), abs=0.02)
        assert placed.size[2] == pytest.approx(BOARD_H, abs=0.03)
        points = depth_points(table, image, mask, score, ids, {1: 7})
        on_board = np.abs(points[:, 0] - BOARD_X) < 1e-3
        assert len(points) == mask.sum() and on_board.mean() >= exact
        assert points[on_board, 2].max() == pytest.approx(BOARD_H, abs=0.03)
        assert np.all(points[:, 4] == 7)
    nothing = np.zeros_like(mm)
    assert place_with_depth(table, box, nothing, crop) is None
    assert len(depth_points(table, nothing, mask, score)) == 0


def test_depth_units():
    np.testing.assert_array_equal(
        depth_in_metres(np.array([0, 1500], np.uint16)), np.array([np.nan, 1.5], np.float32))
    np.testing.assert_array_equal(depth_in_metres(np.array([-1, np.inf, 2.5], np.float32)),
                                  np.array([np.nan, np.nan, 2.5], np.float32))


# -- occupancy grid -------------------------------------------------------------------------------

def test_grid_marks_seen_ground_free_and_anomaly_points_occupied():
    spec = GridSpec(resolution=0.1, length=20.0, width=10.0)
    table = ray_table(PINHOLE, level(CAM_H))
    drivable = np.zeros((H, W), bool)
    drivable[300:, :] = True                      # ground from the row 300 down
    points = np.array([[8.05, 0.55, 0.6], [30.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    grid = occupancy_grid(table, spec, drivable, points)
    assert grid.dtype == np.int8 and grid.shape == (100, 200)
    # (8.05, 0.55): column 80, row (0.55 + 5) / 0.1 = 55; +y is the upper half of the rows.
    assert grid[55, 80] == 100 and (grid == 100).sum() == 1
    # Row 300 sees the ground at F h / (300 - cy) = 12.4 m; the bottom row at 3.1 m.
    assert np.all(grid[50, 40:120] == 0)
    assert np.all(grid[50, :30] == -1) and np.all(grid[50, 126:] == -1)
    assert grid[0, 40] == -1                      # 5 m to the left at 4 m: out of view


def test_grid_leaves_ground_hidden_behind_an_obstacle_unknown():
    spec = GridSpec(resolution=0.1, length=20.0, width=10.0)
    table = ray_table(PINHOLE, level(CAM_H))
    mask = billboard_scene()[0]
    drivable = np.zeros((H, W), bool)
    drivable[241:] = True
    drivable[mask] = False                        # the billboard hides what is behind it
    grid = occupancy_grid(table, spec, drivable)
    row = int((0.3 + 5) / 0.1)                    # y = 0.3, the billboard's middle
    assert np.all(grid[row, 40:78] == 0) and np.all(grid[row, 82:150] == -1)
    assert np.all(grid[row - 20, 82:150] == 0)    # 2 m to the right the view is open


# -- the synthetic generator's camera --------------------------------------------------------

def test_ground_plane_matches_the_synthetic_generator():
    """The generator's ground: Z = f / (y + 0.5 - yh), X = (x + 0.5 - xv) / (y + 0.5 - yh).

    scene.py draws its camera (horizon yh, vanishing column xv, focal f) and the road and
    sidewalk bands first from ``default_rng([seed, 1409])``; the rendered labels confirm them.
    """
    seed, (h, w) = 5, (256, 512)
    scene = make_scene(seed, (h, w), next(iter(HELD_OUT_FAMILIES)))
    rng = np.random.default_rng([seed, 1409])
    yh, xv, f = h * rng.uniform(0.3, 0.5), w * rng.uniform(0.38, 0.62), w * rng.uniform(0.7, 1.3)
    road = (-rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
    walk = (rng.uniform(0.8, 2.5), rng.uniform(0.8, 2.5))
    # Pixel centres at +0.5 in the generator are integers here: cx, cy are 0.5 smaller.
    camera = CameraModel.from_camera_info(w, h, [f, 0, xv - 0.5, 0, f, yh - 0.5, 0, 0, 1])
    ground = ray_table(camera, MountPose.from_mount(camera_height=1.0)).ground
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    below = ys - yh > 0.05
    gen_x, gen_z = (xs - xv) / (ys - yh), f / (ys - yh)
    np.testing.assert_allclose(ground[below][:, 0], gen_z[below], rtol=1e-5)
    np.testing.assert_allclose(-ground[below][:, 1], gen_x[below], rtol=1e-5, atol=1e-5)
    assert np.isnan(ground[~below & (ys < yh)]).all()
    # Every road pixel's lateral offset is inside the road band, every sidewalk's in a walk band.
    lateral = -ground[..., 1]
    label, clean = scene['label'], scene['anomaly'] == 0
    on_road = lateral[(label == ROAD) & clean]
    assert on_road.size > 1000 and IGNORE != ROAD
    assert on_road.min() >= road[0] - 1e-4 and on_road.max() <= road[1] + 1e-4
    on_walk = lateral[(label == SIDEWALK) & clean]
    inside = (((on_walk >= road[0] - walk[0] - 1e-4) & (on_walk <= road[0] + 1e-4))
              | ((on_walk >= road[1] - 1e-4) & (on_walk <= road[1] + walk[1] + 1e-4)))
    assert on_walk.size > 100 and inside.all()


def test_grid_ignores_ground_a_lens_polynomial_folds_into_the_image():
    # k1 = -0.3 alone: the radial factor 1 - 0.3 r^2 reaches 0 at r = 1.83 (61 degrees), so
    # ground far outside this camera's 23-degree half view projects near the image centre.
    cam = CameraModel(W, H, 800.0, 800.0, 319.5, 239.5, (-0.3,))
    table = ray_table(cam, level(CAM_H))
    spec = GridSpec(resolution=0.25, length=10.0, width=30.0)
    grid = occupancy_grid(table, spec, np.ones((H, W), bool))
    rows, cols = spec.shape
    y, x = np.mgrid[0:rows, 0:cols] * 0.25 + 0.125 + np.array([-15.0, 0.0])[:, None, None]
    angle = np.degrees(np.arctan2(np.abs(y), x))
    assert np.all(grid[angle > 30] == -1) and np.all(grid[(angle < 15) & (x > 6)] == 0)


def test_depth_of_the_ground_back_projects_onto_the_ground_for_a_turned_camera():
    mount = level(CAM_H, camera_pitch=0.25, camera_yaw=-0.4, camera_roll=0.05)
    cam = CameraModel(W, H, F, F, 319.5, 239.5, PLUMB_BOB)
    table = ray_table(cam, mount)
    seen = np.isfinite(table.ground[..., 0])
    # The ground's depth image: the optical z of each pixel's ground point.
    inverse = np.linalg.inv(mount.matrix)
    depth = np.where(seen, (table.ground @ inverse[:3, :3].T + inverse[:3, 3])[..., 2], 0)
    points = depth_points(table, depth.astype(np.float32), seen, np.zeros((H, W), np.float32))
    assert len(points) == seen.sum() > H * W / 3
    assert np.abs(points[:, 2]).max() < 1e-3
    np.testing.assert_allclose(points[:, :2], table.ground[seen][:, :2], rtol=1e-4, atol=1e-4)
