"""Camera model and mount: intrinsics, lens distortion, camera_info, mount conventions."""

from types import SimpleNamespace
from typing import Tuple

import numpy as np
import pytest

from densehybrid_ros.core.camera import back_project, CameraModel, distort, MountPose, undistort

W, H, F = 640, 480, 500.0
PINHOLE = CameraModel(W, H, F, F, 319.5, 239.5)
DISTORTION = {
    'plumb_bob': (-0.28, 0.09, 0.0012, -0.0008, -0.012),
    'rational_polynomial': (0.4, -0.1, 0.001, 0.0005, 0.01, 0.7, -0.05, 0.02),
    'equidistant': (0.05, -0.01, 0.004, -0.001),
}


def pixel_grid(camera: CameraModel, step: int = 7) -> Tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:camera.height:step, 0:camera.width:step]
    return u.ravel().astype(float), v.ravel().astype(float)


# -- camera model ---------------------------------------------------------------------------------

@pytest.mark.parametrize('model', sorted(DISTORTION))
def test_project_then_back_project_returns_the_point(model):
    cam = CameraModel(W, H, F, 510.0, 322.0, 236.0, DISTORTION[model], model)
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(-1.5, 1.5, 200), rng.uniform(-1, 1, 200),
                       rng.uniform(2, 20, 200)], 1)
    uv = cam.project(points)
    back = back_project(cam, uv[:, 0], uv[:, 1], points[:, 2])
    np.testing.assert_allclose(back, points, atol=1e-9)


@pytest.mark.parametrize('model', sorted(DISTORTION))
def test_distort_then_undistort_is_within_a_micro_pixel(model):
    coeffs = DISTORTION[model]
    u, v = pixel_grid(PINHOLE, 5)
    x, y = (u - PINHOLE.cx) / F, (v - PINHOLE.cy) / F
    xd, yd = distort(model, coeffs, x, y)
    assert np.abs(xd - x).max() * F > 5           # the lens really moves pixels
    xu, yu = undistort(model, coeffs, xd, yd)
    assert np.abs(xu - x).max() * F < 1e-6 and np.abs(yu - y).max() * F < 1e-6


def test_undistort_is_nan_where_the_lens_model_has_no_inverse():
    # x (1 - 0.5 x^2) peaks at 0.544 (x = 0.816): a distorted 0.7 has no undistorted point.
    x, y = undistort('plumb_bob', (-0.5,), np.array([0.3, 0.7]), np.zeros(2))
    assert np.isnan(x[1]) and np.isfinite(x[0])
    np.testing.assert_allclose(distort('plumb_bob', (-0.5,), x[:1], y[:1])[0], [0.3])


def test_unknown_distortion_model_is_refused():
    with pytest.raises(ValueError, match='fisheye'):
        CameraModel(W, H, F, F, 1, 1, (0.1,), 'fisheye')


def test_camera_info_raw_uses_k_and_d_rectified_uses_p():
    k = [F, 0, 320, 0, 505, 240, 0, 0, 1]
    p = [450, 0, 310, 0, 0, 455, 230, 0, 0, 0, 1, 0]
    d = DISTORTION['plumb_bob']
    raw = CameraModel.from_camera_info(W, H, k, d, 'plumb_bob', p)
    rect = CameraModel.from_camera_info(W, H, k, d, 'plumb_bob', p, rectified=True)
    assert (raw.fx, raw.fy, raw.cx, raw.cy, raw.distortion) == (F, 505, 320, 240, d)
    assert (rect.fx, rect.fy, rect.cx, rect.cy, rect.distorted) == (450, 455, 310, 230, False)
    # A zero P (uncalibrated driver) falls back to K.
    assert CameraModel.from_camera_info(W, H, k, p=[0] * 12, rectified=True).fx == F


def test_camera_info_message_binning_and_roi():
    info = SimpleNamespace(width=1280, height=960, k=[1000, 0, 639.5, 0, 1000, 479.5, 0, 0, 1],
                           d=[], distortion_model='', p=[0] * 12, binning_x=2, binning_y=2,
                           roi=SimpleNamespace(x_offset=100, y_offset=60, width=800,
                                               height=600))
    cam = CameraModel.from_info(info)
    assert cam.size == (300, 400) and cam.fx == 500
    # The full image's principal point 639.5 is 539.5 into the ROI: binned centre of columns
    # 539 and 540 is binned column 269.5.
    assert cam.cx == pytest.approx(269.5) and cam.cy == pytest.approx((479.5 - 60 - 0.5) / 2)


def test_scaled_camera_sees_the_same_rays():
    cam = CameraModel(1280, 720, 900, 905, 641.3, 357.9, DISTORTION['plumb_bob'])
    half = cam.scaled(640, 360)
    assert half.size == (360, 640) and half.fx == pytest.approx(450)
    u, v = pixel_grid(half, 9)
    # Half-size pixel centre u is full-size 2 u + 0.5 (pixel edges map to pixel edges).
    np.testing.assert_allclose(half.rays(u, v), cam.rays(2 * u + 0.5, 2 * v + 0.5), atol=1e-12)
    assert cam.scaled(1280, 720) == cam


# -- mount conventions ----------------------------------------------------------------------------

def test_quaternion_of_a_standard_optical_frame_matches_the_level_mount():
    # The REP-103 optical frame under a level camera link: rpy (-pi/2, 0, -pi/2).
    tf = MountPose.from_quaternion((0.2, -0.1, 1.5), (-0.5, 0.5, -0.5, 0.5))
    mount = MountPose.from_mount(0.2, -0.1, 1.5)
    np.testing.assert_allclose(tf.matrix, mount.matrix, atol=1e-12)
    np.testing.assert_allclose(MountPose.from_matrix(mount.matrix).matrix, mount.matrix)
    # Optical z (forward) is base x, optical x (right) is base -y, optical y (down) is base -z.
    np.testing.assert_allclose(mount.to_base(np.eye(3)) - mount.translation,
                               [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-12)
