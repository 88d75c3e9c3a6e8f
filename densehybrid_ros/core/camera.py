"""Where the camera is and how it sees: intrinsics, lens distortion, the mount on the robot.

Conventions (every function here and in ``projection`` follows them):

- **Pixels** follow ROS / OpenCV: column ``u`` and row ``v``, the centre of pixel (column i,
  row j) is at (u, v) = (i, j), so an image of W x H pixels spans [-0.5, W - 0.5] x
  [-0.5, H - 0.5]. A generator that puts pixel centres at i + 0.5 has cx, cy smaller by 0.5.
- **Camera optical frame** (REP-103 ``*_optical_frame``): z forward along the optical axis,
  x right, y down. A depth is the z coordinate of a point in this frame (as in a depth image).
- **Base frame** (REP-103, ``base_frame``, default ``base_link``): x forward, y left, z up; its
  z = 0 plane is the ground.
- **Mount angles** (``MountPose.from_mount``) are REP-103 / URDF roll-pitch-yaw: rotations about
  the base frame's fixed x, y, z axes, applied in that order (R = Rz(yaw) Ry(pitch) Rx(roll)), to a
  camera body that looks along base +x. The right-hand rule gives the signs: **positive pitch
  tilts the camera's forward axis down** (Ry maps x = (1, 0, 0) to (cos p, 0, -sin p)), positive
  yaw turns it left (towards +y), positive roll lowers its right side.
- **Intrinsics** come from a camera_info-like set of numbers (``CameraModel.from_camera_info``):
  for a *rectified* image the projection matrix P's fx, fy, cx, cy and no distortion; for a *raw*
  image K and D, and raw pixel coordinates are undistorted (``plumb_bob`` and
  ``rational_polynomial`` by Newton iteration on OpenCV's model, ``equidistant`` = OpenCV's
  fisheye model) before back-projection. The rectification rotation R is taken as identity
  (monocular cameras) and P's Tx (a stereo baseline) is ignored.

Per-pixel tables, ground hits and everything in the base frame beyond one point live in
``projection``.
"""

from dataclasses import dataclass
import math
from typing import Optional, Sequence, Tuple

import numpy as np

DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')
_NEWTON_STEPS = 30
_NEWTON_TOL = 1e-13             # normalised units (1e-13 x fx ~ 1e-10 px)
_NEWTON_ACCEPT = 1e-9           # a point whose residual stays above this is NaN (not invertible)
EPS = 1e-9                      # a denominator (ray component, radius) at or below this is zero


def _f64(values: object) -> np.ndarray:
    return np.asarray(values, np.float64)


# -- lens distortion (normalised image coordinates x = X / Z, y = Y / Z) -------------------------

def _radial_coeffs(model: str, coeffs: Sequence[float]) -> Tuple[float, ...]:
    """k1..k3, p1, p2, k4..k6 of OpenCV's (rational) model, zeros where not given."""
    c = list(coeffs) + [0.0] * max(0, 8 - len(coeffs))
    if model == 'plumb_bob' and any(c[5:8]):
        raise ValueError('plumb_bob takes 5 coefficients (k1, k2, p1, p2, k3)')
    k1, k2, p1, p2, k3, k4, k5, k6 = (float(v) for v in c[:8])
    return k1, k2, k3, p1, p2, k4, k5, k6


def _check_model(model: str, coeffs: Sequence[float]) -> None:
    if model not in DISTORTION_MODELS:
        raise ValueError(f'distortion model {model!r} is not one of {DISTORTION_MODELS}')
    if model == 'equidistant' and len(coeffs) > 4:
        raise ValueError('equidistant takes 4 coefficients (k1..k4)')
    if model != 'equidistant' and len(coeffs) > 8:
        raise ValueError(f'{model} takes at most 8 coefficients, got {len(coeffs)}')


def _lens_input(model: str, coeffs: Sequence[float], x: np.ndarray,
                y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Check the lens model and return float64 copies of the coordinates."""
    _check_model(model, coeffs)
    return _f64(x).copy(), _f64(y).copy()


def distort(model: str, coeffs: Sequence[float], x: np.ndarray,
            y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Apply lens distortion ``model`` to normalised coordinates (OpenCV's equations)."""
    x, y = _lens_input(model, coeffs, x, y)
    distorted = _distort_equidistant if model == 'equidistant' else _distort_radial
    return distorted(model, coeffs, x, y) if any(coeffs) else (x, y)


def _distort_equidistant(model: str, coeffs: Sequence[float], x: np.ndarray,
                         y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Fisheye (equidistant) distortion of normalised coordinates."""
    k = list(coeffs) + [0.0] * (4 - len(coeffs))
    r = np.hypot(x, y)
    theta = np.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))
    with np.errstate(divide='ignore', invalid='ignore'):
        scale = np.where(r > EPS, theta_d / r, 1.0)
    return x * scale, y * scale


def _distort_radial(model: str, coeffs: Sequence[float], x: np.ndarray,
                    y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """plumb_bob / rational_polynomial distortion of normalised coordinates."""
    k1, k2, k3, p1, p2, k4, k5, k6 = _radial_coeffs(model, coeffs)
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort(model: str, coeffs: Sequence[float], xd: np.ndarray,
              yd: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Invert ``distort`` by Newton iteration; NaN where it does not converge (1e-9 units)."""
    xd, yd = _lens_input(model, coeffs, xd, yd)
    if not any(coeffs):
        return xd, yd
    if model == 'equidistant':
        return _undistort_equidistant(coeffs, xd, yd)
    k1, k2, k3, p1, p2, k4, k5, k6 = _radial_coeffs(model, coeffs)
    x, y = xd.copy(), yd.copy()
    with np.errstate(all='ignore'):
        for _ in range(_NEWTON_STEPS):
            r2 = x * x + y * y
            a = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            b = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
            radial = a / b
            # d radial / d r2 = (a' b - a b') / b^2
            da = k1 + r2 * (2 * k2 + 3 * k3 * r2)
            db = k4 + r2 * (2 * k5 + 3 * k6 * r2)
            dradial = (da * b - a * db) / (b * b)
            ex = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) - xd
            ey = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y - yd
            if np.nanmax(np.abs(ex) + np.abs(ey), initial=0.0) < _NEWTON_TOL:
                break
            jxx = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
            jyy = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
            jxy = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y      # = d yd / d x too
            det = jxx * jyy - jxy * jxy
            x = x - (jyy * ex - jxy * ey) / det
            y = y - (jxx * ey - jxy * ex) / det
        bx, by = distort(model, coeffs, x, y)
        bad = ~(np.abs(bx - xd) + np.abs(by - yd) < _NEWTON_ACCEPT)
    return np.where(bad, np.nan, x), np.where(bad, np.nan, y)


def _undistort_equidistant(coeffs: Sequence[float], xd: np.ndarray,
                           yd: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Invert the fisheye model: solve theta_d = theta (1 + k1 theta^2 + ...) for theta."""
    k = list(coeffs) + [0.0] * (4 - len(coeffs))
    theta_d = np.hypot(xd, yd)
    theta = theta_d.copy()
    with np.errstate(all='ignore'):
        for _ in range(_NEWTON_STEPS):
            t2 = theta * theta
            err = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))) - theta_d
            if np.nanmax(np.abs(err), initial=0.0) < _NEWTON_TOL:
                break
            slope = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
            theta = theta - err / slope
        t2 = theta * theta
        err = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))) - theta_d
        # A ray at 90 degrees or more off the axis has no pinhole coordinates.
        ok = (np.abs(err) < _NEWTON_ACCEPT) & (theta >= 0) & (theta < math.pi / 2 - 1e-6)
        scale = np.where(ok, np.where(theta_d > EPS, np.tan(theta) / theta_d, 1.0), np.nan)
    return xd * scale, yd * scale


# -- the camera -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera for one image size, with the lens distortion of its raw pixels (if any).

    Hashable: ``ray_table`` caches per (camera, mount). ``distortion`` empty or all zero means an
    ideal pinhole (a rectified image, or a lens without distortion).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: Tuple[float, ...] = ()
    distortion_model: str = 'plumb_bob'

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f'image size must be positive, got {self.width} x {self.height}')
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}')
        object.__setattr__(self, 'distortion', tuple(float(d) for d in self.distortion))
        _check_model(self.distortion_model, self.distortion)

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Sequence[float],
                         d: Sequence[float] = (), distortion_model: str = 'plumb_bob',
                         p: Optional[Sequence[float]] = None, rectified: bool = False,
                         binning: Tuple[int, int] = (0, 0),
                         roi: Optional[Tuple[int, int, int, int]] = None) -> 'CameraModel':
        """Build from camera_info numbers (K 3x3 and P 3x4 as row-major lists or arrays).

        ``rectified``: the image is the rectified one (``image_rect``): use P's fx, fy, cx, cy (K
        when P is missing or zero) and no distortion. Otherwise the image is raw: K with D.
        ``binning`` (x, y; 0 or 1 = none) and ``roi`` (x_offset, y_offset, width, height; a zero
        width or height = the full image) describe the published image as camera_info does.
        """
        k = _f64(k).reshape(3, 3)
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        dist: Tuple[float, ...] = tuple(float(v) for v in d)
        if rectified:
            dist = ()
            if p is not None:
                pm = _f64(p).reshape(3, 4)
                if pm[0, 0] > 0 and pm[1, 1] > 0:
                    fx, fy, cx, cy = pm[0, 0], pm[1, 1], pm[0, 2], pm[1, 2]
        width, height = int(width), int(height)
        if roi is not None and roi[2] > 0 and roi[3] > 0:
            x_off, y_off, width, height = (int(v) for v in roi)
            cx, cy = cx - x_off, cy - y_off
        bx, by = (max(1, int(b)) for b in binning)
        if bx > 1 or by > 1:
            # A binned pixel averages b source pixels: centre i -> source centre b i + (b - 1) / 2.
            fx, cx = fx / bx, (cx - (bx - 1) / 2) / bx
            fy, cy = fy / by, (cy - (by - 1) / 2) / by
            width, height = width // bx, height // by
        return cls(width, height, float(fx), float(fy), float(cx), float(cy), dist,
                   distortion_model or 'plumb_bob')

    @classmethod
    def from_info(cls, info: object, rectified: bool = False) -> 'CameraModel':
        """Build from a sensor_msgs/CameraInfo-like object (duck typed; no ROS import)."""
        roi = getattr(info, 'roi', None)
        roi_box = None
        if roi is not None:
            roi_box = (roi.x_offset, roi.y_offset, roi.width, roi.height)
        return cls.from_camera_info(
            info.width, info.height, info.k, getattr(info, 'd', ()),
            getattr(info, 'distortion_model', '') or 'plumb_bob', getattr(info, 'p', None),
            rectified, (getattr(info, 'binning_x', 0), getattr(info, 'binning_y', 0)), roi_box)

    @property
    def size(self) -> Tuple[int, int]:
        """Image size as (height, width), the order of an image array's shape."""
        return self.height, self.width

    @property
    def k(self) -> np.ndarray:
        """The 3 x 3 intrinsic matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def distorted(self) -> bool:
        """Whether pixel coordinates must be undistorted before back-projection."""
        return any(self.distortion)

    def scaled(self, width: int, height: int) -> 'CameraModel':
        """Return this camera for an image resized to ``width`` x ``height`` (e.g. cv2.resize).

        A resize maps pixel edges to pixel edges (centre u -> (u + 0.5) s - 0.5), so
        cx' = (cx + 0.5) sx - 0.5; distortion acts on normalised coordinates and is unchanged.
        """
        sx, sy = width / self.width, height / self.height
        return CameraModel(int(width), int(height), self.fx * sx, self.fy * sy,
                           (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                           self.distortion, self.distortion_model)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Rays (x, y, 1) in the optical frame through pixels (u, v): shape (..., 3), float64.

        A point at depth z on the ray is ``z * ray``. NaN where undistortion fails.
        """
        xd = (_f64(u) - self.cx) / self.fx
        yd = (_f64(v) - self.cy) / self.fy
        x, y = undistort(self.distortion_model, self.distortion, xd, yd)
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels (u, v), shape (..., 2), of optical-frame points (..., 3); NaN behind it.

        With distortion, points far outside the view can fold back into the image (a lens
        polynomial is not monotonic): check the pixel's ray as ``RayTable.cell_pixels`` does.
        """
        points = _f64(points)
        z = points[..., 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            z = np.where(z > EPS, z, np.nan)
            x, y = distort(self.distortion_model, self.distortion, points[..., 0] / z,
                           points[..., 1] / z)
        return np.stack([x * self.fx + self.cx, y * self.fy + self.cy], axis=-1)


# -- the mount ------------------------------------------------------------------------------------

# base <- optical rotation of a camera looking along base +x: optical z = base x,
# optical x = base -y, optical y = base -z (columns are the optical axes in base coordinates).
_OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation Rz(yaw) Ry(pitch) Rx(roll) (REP-103 / URDF fixed-axis roll-pitch-yaw), 3 x 3."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def quaternion_matrix(quaternion: Sequence[float]) -> np.ndarray:
    """Rotation matrix (3 x 3) of a quaternion (x, y, z, w) as in geometry_msgs, normalised."""
    x, y, z, w = _f64(quaternion) / np.linalg.norm(_f64(quaternion))
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass(frozen=True)
class MountPose:
    """The camera's optical frame in the base frame: p_base = rotation @ p_optical + translation.

    Hashable (floats in tuples) so ray tables can be cached per mount.
    """

    rotation: Tuple[float, ...]         # 9 numbers, the 3 x 3 matrix row-major
    translation: Tuple[float, float, float]
    base_frame: str = 'base_link'

    def __post_init__(self) -> None:
        rot = _f64(self.rotation).reshape(3, 3)
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise ValueError('rotation must be a proper rotation matrix')
        object.__setattr__(self, 'rotation', tuple(float(v) for v in rot.ravel()))
        object.__setattr__(self, 'translation', tuple(float(v) for v in self.translation))

    @classmethod
    def from_mount(cls, camera_x: float = 0.0, camera_y: float = 0.0,
                   camera_height: float = 1.0, camera_roll: float = 0.0,
                   camera_pitch: float = 0.0, camera_yaw: float = 0.0,
                   base_frame: str = 'base_link') -> 'MountPose':
        """Build a static mount: position (m), REP-103 roll, pitch, yaw (rad) in base_frame.

        All zero angles: the camera looks along base +x, level, image rows horizontal. Positive
        pitch looks down, positive yaw looks left (see the module docstring).
        """
        body = rpy_matrix(camera_roll, camera_pitch, camera_yaw)
        return cls(tuple((body @ _OPTICAL_IN_BODY).ravel()),
                   (camera_x, camera_y, camera_height), base_frame)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, base_frame: str = 'base_link') -> 'MountPose':
        """From a 4 x 4 homogeneous transform base <- camera optical frame."""
        m = _f64(matrix)
        if m.shape != (4, 4):
            raise ValueError(f'a 4 x 4 transform is needed, got {m.shape}')
        return cls(tuple(m[:3, :3].ravel()), tuple(m[:3, 3]), base_frame)

    @classmethod
    def from_quaternion(cls, translation: Sequence[float], quaternion: Sequence[float],
                        base_frame: str = 'base_link') -> 'MountPose':
        """From a tf2 transform base <- optical: translation and quaternion (x, y, z, w).

        Feed it ``lookup_transform(base_frame, image.header.frame_id, ...)``: the image's frame is
        the camera's optical frame by convention.
        """
        return cls(tuple(quaternion_matrix(quaternion).ravel()), tuple(translation), base_frame)

    @property
    def matrix(self) -> np.ndarray:
        """The 4 x 4 homogeneous transform base <- camera optical frame."""
        m = np.eye(4)
        m[:3, :3] = np.reshape(self.rotation, (3, 3))
        m[:3, 3] = self.translation
        return m

    def to_base(self, points: np.ndarray) -> np.ndarray:
        """Optical-frame points (..., 3) in the base frame."""
        return transform_points(self.matrix, points)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4 x 4 transform to points of shape (..., 3); float64 out."""
    m = _f64(matrix)
    p = _f64(points)
    # Three broadcast multiply-adds: a BLAS matmul with an inner size of 3 is slower and threads.
    return p[..., 0:1] * m[:3, 0] + p[..., 1:2] * m[:3, 1] + p[..., 2:3] * m[:3, 2] + m[:3, 3]


def back_project(camera: CameraModel, u: np.ndarray, v: np.ndarray,
                 depth: np.ndarray) -> np.ndarray:
    """Optical-frame points (..., 3) of pixels (u, v) at ``depth`` (the z coordinate, m)."""
    return camera.rays(u, v) * _f64(depth)[..., None]
