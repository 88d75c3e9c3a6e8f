"""Synthetic sequences: one street world seen from a camera driving along it, with ground truth.

``Sequence(seed, size, frames, family, speed, yaw_rate)`` is a deterministic, random-access
sequence of ``SequenceFrame``. The camera (world.py's frames and units: one world unit is the
camera's height; ``X`` across the street, ``Z`` along it) starts at ``(0, 0)`` and moves
``speed`` units per frame along its heading; the heading turns by ``yaw_rate`` radians per frame,
centred so that the middle frame looks straight along the street (the path is an arc that ends
at the lateral position it started from), plus ``drift`` units per frame to the right. The
obstacles (anomalies of ``family``) stand on the road ``ranges`` units ahead of the start, beside
the path, so each approaches over many frames and is passed.

Each frame holds the image, the scene labels, the anomaly and instance maps, depth, the camera's
intrinsics and pose, and for every obstacle its world and camera-frame position, size and
visibility (``ObjectState``). Lens, exposure and hood are fixed per sequence; sensor noise is
drawn afresh per frame.
"""

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

from .canvas import IGNORE
from .colour import jitter, Size, smooth_noise
from .families import check_family
from .layout import sample_world
from .world import Camera, Pose, World


@dataclass(frozen=True)
class ObjectState:
    """One obstacle in one frame: ground position, size and visibility (world units, pixels).

    ``contact`` is the pixel ``(column, row)`` (ROS convention) its contact point projects to,
    inside the image or not; None once it is behind the camera. Obstacles nearer than
    ``world.NEAR`` (1 unit) are not drawn: they show no pixels. ``footprint`` counts the pixels
    it would show if nothing stood in front of it (inside the image): ``pixels / footprint`` is
    the visible fraction, as the tracking benchmarks' occlusion levels grade it (another
    obstacle, a prop or the hood in front of it lowers it).
    """

    id: int                     # its value in ``SequenceFrame.instances``, the same in every frame
    x: float                    # world ground position of its contact point (centre of its base)
    z: float
    lateral: float              # camera frame: right of the optical axis ...
    range: float                # ... and ahead along it (also its depth in ``depth``)
    distance: float             # ground distance from the camera, hypot(lateral, range)
    width: float
    height: float
    on_road: bool
    pixels: int                 # pixels it shows in this frame (after occlusion)
    visible: bool               # pixels > 0
    contact: Optional[Tuple[float, float]]
    footprint: int              # pixels it would show with nothing in front of it

    @property
    def visible_fraction(self) -> float:
        """Return ``pixels / footprint``: 1 unoccluded, 0 hidden; NaN when it is not drawn."""
        return self.pixels / self.footprint if self.footprint else math.nan


@dataclass(frozen=True, eq=False)
class SequenceFrame:
    """One frame: arrays of the frame's size, camera, pose and the obstacles' ground truth.

    ``image`` H x W x 3 uint8 RGB; ``label`` H x W uint8 scene class ids (255 on obstacles and the
    hood); ``anomaly`` uint8 (1 obstacle, 0 inlier, 255 hood), as ``make_scene`` gives them;
    ``instances`` uint16 (obstacle id, 0 none); ``depth`` float32 world units along the optical
    axis (inf: sky, NaN: hood).
    """

    index: int
    image: np.ndarray
    label: np.ndarray
    anomaly: np.ndarray
    instances: np.ndarray
    depth: np.ndarray
    camera: Camera
    pose: Pose
    objects: Tuple[ObjectState, ...]


def camera_path(frames: int, speed: float, yaw_rate: float = 0.0,
                drift: float = 0.0) -> List[Pose]:
    """Poses of a camera moving ``speed`` along its heading per frame (see the module doc)."""
    yaws = yaw_rate * (np.arange(frames) - (frames - 1) / 2)
    x, z, poses = 0.0, 0.0, []
    for k in range(frames):
        poses.append(Pose(x, z, float(yaws[k])))
        if k + 1 < frames:
            mid = (yaws[k] + yaws[k + 1]) / 2
            x += speed * float(np.sin(mid)) + drift
            z += speed * float(np.cos(mid))
    return poses


class Sequence:
    """A street sequence; ``seq[k]`` renders frame ``k`` (deterministic per seed, any order).

    ``anomalies`` (a range, inclusive) obstacles of ``family`` (None: none) stand on the road at
    ``ranges`` units ahead of the start, ``off_road`` (a range) more beside it. ``hood``: draw an
    ego-vehicle hood (void) at the bottom. The world does not depend on ``size``: the same seed
    at another size shows the same street.

    Attributes: ``camera`` (intrinsics at ``size``), ``poses`` (one per frame), ``world``
    (the street, props and ``world.obstacles``, whose ``id`` is the instance id).
    """

    def __init__(self, seed: int, size: Size = (288, 512), frames: int = 100,
                 family: Optional[str] = 'eval', speed: float = 0.7, yaw_rate: float = 0.001,
                 drift: float = 0.0, anomalies: Tuple[int, int] = (3, 5),
                 ranges: Tuple[float, float] = (30.0, 60.0), off_road: Tuple[int, int] = (0, 0),
                 hood: bool = False) -> None:
        h, w = int(size[0]), int(size[1])
        if h < 8 or w < 8:
            raise ValueError(f'frame size must be at least 8 x 8, got {size}')
        if frames < 1 or speed < 0:
            raise ValueError(f'need frames >= 1 and speed >= 0, got {frames}, {speed}')
        if family is not None:
            check_family(family)
        self.seed, self.size, self.frames, self.family = int(seed), (h, w), int(frames), family
        self.speed, self.yaw_rate, self.drift = float(speed), float(yaw_rate), float(drift)
        rng = np.random.default_rng([self.seed, 1411])
        # lens as scene.py draws it: horizon row, vanishing column, focal length (px)
        yh, xv = h * rng.uniform(0.3, 0.5), w * rng.uniform(0.38, 0.62)
        f = w * rng.uniform(0.7, 1.3)
        self.camera = Camera(w, h, f, f, xv - 0.5, yh - 0.5)
        self._gain = rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        self._slope = rng.uniform(-0.2, 0.2)
        self._noise = rng.uniform(0.005, 0.03)
        self._blur = rng.uniform(0.5, 1.0) if rng.random() < 0.3 else 0.0
        self._hood_top = rng.uniform(0.06, 0.14)
        self._hood_colour = jitter(rng, (0.12, 0.12, 0.14), 0.05)
        self.hood = bool(hood)
        count = int(rng.integers(anomalies[0], anomalies[1] + 1)) if family else 0
        extra = int(rng.integers(off_road[0], off_road[1] + 1)) if family else 0
        self.poses = camera_path(self.frames, self.speed, self.yaw_rate, self.drift)
        path = ([p.z for p in self.poses], [p.x for p in self.poses])
        if self.frames == 1 or self.speed == 0:
            path = ([0.0, 1.0], [0.0, 0.0])
        self.world: World = sample_world(self.seed, path, family, count, ranges, extra)
        self._fixed: Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[SequenceFrame]:
        return (self[k] for k in range(self.frames))

    def _screen(self) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Light falloff across the frame, hood mask and hood colour: fixed for the sequence."""
        if self._fixed is None:
            h, w = self.size
            xs = np.arange(w, dtype=np.float32) + 0.5
            light = (1 + self._slope * (xs / w - 0.5)).astype(np.float32)
            hood = np.zeros((h, w), bool)
            field = None
            if self.hood:
                top = h * (1 - self._hood_top)
                mask = np.zeros((h, w), np.uint8)
                cv2.ellipse(mask, (int(w / 2), int(h * 1.25)),
                            (int(w * 0.75), int(h * 1.25 - top)), 0, 180, 360, 1, -1)
                hood = mask.astype(bool)
                rng = np.random.default_rng([self.seed, 1413])
                shine = np.clip(smooth_noise(rng, (h, w), w / 4), 0, None)[..., None]
                field = (self._hood_colour + 0.15 * shine).astype(np.float32)
            self._fixed = (light, hood, field)
        return self._fixed

    def __getitem__(self, k: int) -> SequenceFrame:
        if not -self.frames <= k < self.frames:
            raise IndexError(f'frame {k} of a {self.frames}-frame sequence')
        k %= self.frames
        pose = self.poses[k]
        view = self.world.render(self.camera, pose)
        light, hood, field = self._screen()
        img = view.image
        if field is not None:
            img[hood] = field[hood]
            view.label[hood] = IGNORE
            view.anomaly[hood] = IGNORE
            view.instances[hood] = 0
            view.depth[hood] = np.nan
        img *= (light[:, None] * self._gain)[None]             # exposure, colour cast, falloff
        noise = np.random.default_rng([self.seed, 1412, k]).standard_normal(
            img.shape, dtype=np.float32)
        noise *= self._noise
        img += noise
        if self._blur:
            img = cv2.GaussianBlur(img, (0, 0), self._blur)
        np.clip(img, 0, 1, out=img)
        img *= 255
        image = np.rint(img).astype(np.uint8)
        counts = np.bincount(view.instances.ravel(), minlength=len(self.world.obstacles) + 1)
        objects = []
        for ob in self.world.obstacles:
            lateral, range_ = (float(v) for v in pose.to_camera(ob.x, ob.z))
            contact = self.camera.ground_pixel(lateral, range_) if range_ > 0 else None
            objects.append(ObjectState(ob.id, ob.x, ob.z, lateral, range_,
                                       float(np.hypot(lateral, range_)), ob.width, ob.height,
                                       ob.on_road, int(counts[ob.id]), bool(counts[ob.id]),
                                       contact, view.footprints.get(ob.id, 0)))
        return SequenceFrame(k, image, view.label, view.anomaly, view.instances, view.depth,
                             self.camera, pose, tuple(objects))
