"""One camera's obstacle pipeline: instances -> confirmed tracks -> placement, points, grid."""

import numpy as np

from densehybrid_ros.core.camera import CameraModel, MountPose
from densehybrid_ros.core.instances import InstanceConfig
from densehybrid_ros.core.obstacles import (Geometry, obstacle_grid, obstacle_points,
                                            ObstaclePipeline)
from densehybrid_ros.core.projection import GridSpec
from densehybrid_ros.core.tracking import TrackerConfig

H, W, F = 240, 320, 200.0
CY, CX = 100.0, 159.5                   # horizon row of the level camera, centre column
THRESHOLD = 0.0
RANGE, LATERAL, SIZE = 8.0, 0.5, 0.6    # the obstacle: 8 m ahead, 0.5 m left, 0.6 m wide


def geometry() -> Geometry:
    """A level camera 1 m above the base origin, looking along x."""
    camera = CameraModel(W, H, F, F, CX, CY)
    return Geometry(camera, MountPose.from_mount(camera_height=1.0), GridSpec(0.25, 20.0, 10.0),
                    cloud_stride=1)


def frame_maps(visible: bool = True):
    """Score and semantic of a road scene with a square obstacle standing at RANGE, LATERAL."""
    semantic = np.full((H, W), 2, np.uint8)            # building above the horizon
    semantic[int(CY) + 1:] = 0                         # road below it
    score = np.full((H, W), -5.0, np.float32)
    if visible:
        bottom = int(round(CY + F * 1.0 / RANGE))      # ground contact row at 8 m
        side = int(round(F * SIZE / RANGE))
        left = int(round(CX - F * LATERAL / RANGE - side / 2))
        score[bottom - side + 1:bottom + 1, left:left + side] = 20.0
    return score, semantic


def pipeline() -> ObstaclePipeline:
    """Defaults but seeds anywhere above the test threshold (the score map is synthetic)."""
    return ObstaclePipeline(InstanceConfig(seed_offset=1.0, grow_offset=0.5,
                                           min_area_fraction=0.0),
                            TrackerConfig(confirm_hits=3, confirm_window=5, max_misses=2))


def test_an_obstacle_is_confirmed_after_three_frames_and_keeps_its_id():
    pipe = pipeline()
    seen = []
    for k in range(4):
        frame = pipe.update(*frame_maps(), THRESHOLD, stamp=0.1 * k)
        seen.append([t.id for t in frame.tracks])
    assert seen[:2] == [[], []] and seen[2] == seen[3] == [1]
    image = frame.track_image()
    assert image.dtype == np.uint16 and set(np.unique(image)) == {0, 1}
    assert pipe.confirmed == 1 and pipe.phantoms == 0


def test_a_one_frame_phantom_is_counted_and_never_published():
    pipe = pipeline()
    published = []
    for visible in (True, False, False, False, False, False):
        published += pipe.update(*frame_maps(visible), THRESHOLD).tracks
    assert published == [] and pipe.phantoms == 1 and pipe.confirmed == 0


def test_placement_points_and_grid_stand_where_the_obstacle_is():
    pipe, geo = pipeline(), geometry()
    for k in range(3):
        score, semantic = frame_maps()
        frame = pipe.update(score, semantic, THRESHOLD)
    placed = pipe.place(frame, geo)
    x, y = placed[1].position[:2]
    assert abs(x - RANGE) < 0.3 and abs(y - LATERAL) < 0.1
    points = obstacle_points(frame, geo, score)
    assert points.shape[1] == 5 and len(points) > 50
    assert np.all(np.abs(points[:, 0] - RANGE) < 0.3)           # on the obstacle's plane
    assert 0.0 <= points[:, 2].min() < 0.1 and abs(points[:, 2].max() - SIZE) < 0.1  # heights
    assert set(points[:, 4].tolist()) == {1.0}
    grid = obstacle_grid(geo, semantic, (0,), points)
    rows, cols = np.nonzero(grid == 100)
    spec = geo.grid
    xs = spec.origin[0] + (cols + 0.5) * spec.resolution
    ys = spec.origin[1] + (rows + 0.5) * spec.resolution
    assert len(xs) and np.all(np.abs(xs - RANGE) <= spec.resolution)
    assert np.all(np.abs(ys - LATERAL) <= SIZE / 2 + spec.resolution)
    assert (grid == 0).any() and (grid == -1).any()               # road seen, rest unknown


def test_with_depth_the_obstacle_is_placed_by_its_depth():
    pipe, geo = pipeline(), geometry()
    for k in range(3):
        score, semantic = frame_maps()
        frame = pipe.update(score, semantic, THRESHOLD)
    depth = np.full((H, W), 6.0, np.float32)      # the depth image says 6 m, not 8
    placed = pipe.place(frame, geo, depth)
    assert abs(placed[1].position[0] - 6.0) < 0.2
    points = obstacle_points(frame, geo, score, depth)
    assert len(points) and np.all(np.abs(points[:, 0] - 6.0) < 0.05)


def test_depth_points_are_the_confirmed_instances_pixels_in_either_depth_encoding():
    pipe, geo = pipeline(), geometry()
    for k in range(3):
        score, semantic = frame_maps()
        if k == 2:                                  # a new blob: an instance, not yet a track
            score[150:170, 20:40] = 20.0
        frame = pipe.update(score, semantic, THRESHOLD)
    assert len(frame.instances.instances) == 2 and list(frame.matched) == [1]
    mine = frame.instances.ids == frame.matched[1]
    metres = obstacle_points(frame, geo, score, np.full((H, W), 6.0, np.float32))
    assert len(metres) == np.count_nonzero(mine)              # stride 1: every pixel, no other
    assert set(metres[:, 4].tolist()) == {1.0}
    millimetres = obstacle_points(frame, geo, score, np.full((H, W), 6000, np.uint16))
    np.testing.assert_allclose(millimetres, metres, rtol=1e-6, atol=1e-6)


def test_a_coasting_track_keeps_its_last_placement():
    pipe, geo = pipeline(), geometry()
    for k in range(3):
        frame = pipe.update(*frame_maps(), THRESHOLD)
    pipe.place(frame, geo)
    frame = pipe.update(*frame_maps(visible=False), THRESHOLD)
    assert [t.id for t in frame.tracks] == [1] and frame.matched == {}
    assert abs(pipe.place(frame, geo)[1].position[0] - RANGE) < 0.3
