"""A street world fixed in world units, and what a level pinhole camera sees of it from any pose.

Frames and units (one world unit is the camera's height above the ground):

* World: ``X`` across the street (right positive), ``Z`` along it, the ground the plane at
  height 0. The street is scene.py's street laid out along ``Z``: road between ``road[0]`` and
  ``road[1]``, then sidewalks, terrain and building or hedge fronts at ``facades[0|1]``.
* Camera: level (no pitch, no roll) at height ``CAMERA_HEIGHT`` above the ground point
  ``(x, z)`` of its ``Pose``, optical axis along the heading ``(sin yaw, cos yaw)`` in ``(X, Z)``
  (positive yaw turns right). A ground point's camera-frame coordinates are ``lateral``
  (right positive) and ``range`` (forward, along the optical axis).
* Pixels: ROS / OpenCV convention, pixel centres at integer coordinates. A ground point at
  ``(lateral, range)`` projects to column ``cx + fx * lateral / range`` and row
  ``cy + fy * CAMERA_HEIGHT / range``; the horizon is row ``cy``. scene.py's painter works in
  continuous coordinates where pixel ``i`` spans ``[i, i + 1)``: its horizon row ``yh`` and
  vanishing column ``xv`` are ``cy + 0.5`` and ``cx + 0.5``, and its focal length ``f`` is
  ``fx == fy``.
* Depth: ``Z`` along the optical axis (not the length of the ray) in world units, float32, for
  every pixel: the ground, the fronts, every billboard (its ``range``); ``inf`` where the ray
  meets nothing (sky).

Props (poles, trees, people, cars; props.py) and ``Obstacle`` anomalies are billboards facing
the camera, standing on their ground point, painted far to near. An obstacle's texture is drawn
once at up to ``OBSTACLE_PPU`` pixels per world unit and resampled in every view, so it keeps its
look; surface noise of the ground, the fronts, the sky and the tree crowns is sampled from
periodic noise tiles at world (or, for the sky, angular) coordinates, so it moves with the world.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import cv2
import numpy as np

from .canvas import (BUILDING, IGNORE, ROAD, SceneCanvas, SIDEWALK, SKY, TERRAIN, VEGETATION)
from ...core.camera import CameraModel
from .colour import Rng
from .props import Car, draw_car, draw_person, draw_pole, draw_tree, Person, Pole, Tree, tree_box

CAMERA_HEIGHT = 1.0
NEAR = 1.0                  # billboards nearer than this range (world units) are not drawn
OBSTACLE_PPU = 128.0        # obstacle texture resolution, pixels per world unit ...
OBSTACLE_MAX_PX = 256       # ... at most this many pixels on its longer side
BLOCK = 80.0                # props are placed per block of street as scene.py places them
TILE = 256                  # noise tiles: TILE x TILE samples, periodic
# Noise tiles: feature size in world units (angular units x 10 for the sky). At a typical range
# of 10 units and f = 512 px these match scene.py's screen-space noise cells of 2-3 px (fine),
# 8 px (medium) and w / 8 px (coarse).
TILE_FEATURES = {'fine': 0.06, 'medium': 0.25, 'coarse': 1.5}
Spec = Union[Pole, Tree, Person, Car]


@dataclass(frozen=True)
class Camera(CameraModel):
    """The generator's camera: a pinhole (ROS pixel convention), level, 1 unit high."""

    @property
    def matrix(self) -> np.ndarray:
        """The 3 x 3 intrinsic matrix K."""
        return self.k

    def ground_pixel(self, lateral: float, range_: float) -> Tuple[float, float]:
        """Pixel ``(column, row)`` of the ground point at camera-frame ``(lateral, range_)``."""
        return (self.cx + self.fx * lateral / range_,
                self.cy + self.fy * CAMERA_HEIGHT / range_)


@dataclass(frozen=True)
class Pose:
    """The camera's ground position ``(x, z)`` and yaw (radians, positive turns right)."""

    x: float
    z: float
    yaw: float

    def to_camera(self, x: np.ndarray, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Camera-frame ``(lateral, range)`` of world ground points ``(x, z)``."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        dx, dz = np.subtract(x, self.x), np.subtract(z, self.z)
        return c * dx - s * dz, s * dx + c * dz

    def to_world(self, lateral: np.ndarray, range_: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """World ``(x, z)`` of camera-frame ground points ``(lateral, range_)``."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return (self.x + c * np.asarray(lateral) + s * np.asarray(range_),
                self.z - s * np.asarray(lateral) + c * np.asarray(range_))


@dataclass(frozen=True, eq=False)
class Obstacle:
    """An anomaly standing at world ``(x, z)``: ``width`` x ``height`` world units, its look."""

    id: int                     # instance id in every view: 1, 2, ...
    x: float
    z: float
    width: float
    height: float
    on_road: bool
    rgb: np.ndarray             # h x w x 3 float32 in [0, 1], cropped to the mask
    mask: np.ndarray            # h x w bool, touching all four borders


@dataclass(frozen=True, eq=False)
class Prop:
    """A pole, tree, person or car at world ``(x, z)``; ``texture``: its noise offset."""

    spec: Spec
    x: float
    z: float
    texture: Tuple[float, float]


@dataclass(frozen=True, eq=False)
class Fronts:
    """Building or hedge fronts on one side: segments between ``edges`` along ``Z``."""

    x: float                    # world X of the fronts
    edges: np.ndarray           # n + 1 increasing Z
    kind: np.ndarray            # n: < 0.12 gap, < 0.35 hedge, else building
    height: np.ndarray          # n, world units
    walls: np.ndarray           # n x 3 wall colours
    greens: np.ndarray          # n x 3 hedge colours
    spacing: np.ndarray         # n x 3: window period along Z, along height, duty


@dataclass(frozen=True, eq=False)
class Street:
    """The street's layout (world units) and its surface colours."""

    road: Tuple[float, float]
    walk: Tuple[float, float]
    terrain: Tuple[float, float]
    asphalt: np.ndarray
    marking: np.ndarray
    marking_width: float
    lanes: Tuple[float, ...]    # X of the lane lines; the first is dashed
    dash: float
    phase: float
    paving: np.ndarray
    slab: float
    grass: np.ndarray
    sky: Tuple[np.ndarray, np.ndarray]
    fronts: Tuple[Fronts, Fronts]
    shadow: Optional[Tuple[float, float]]   # noise threshold and darkening, or no shadows


@dataclass(frozen=True, eq=False)
class View:
    """One rendered view: image float32 H x W x 3, label and anomaly uint8, ids, depth."""

    image: np.ndarray
    label: np.ndarray           # scene class ids, IGNORE on obstacles
    anomaly: np.ndarray         # 1 on obstacles, else 0
    instances: np.ndarray       # uint16: obstacle id, 0 elsewhere
    depth: np.ndarray           # float32 range along the optical axis, inf for the sky
    footprints: Dict[int, int]  # obstacle id -> pixels painted, before nearer things covered it


class _Painter(SceneCanvas):
    """The view being painted: a scene canvas that also writes depth and instance id."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__(h, w)
        self.instances = np.zeros((h, w), np.uint16)
        self.depth = np.full((h, w), np.inf, np.float32)
        self.range, self.id = np.inf, 0               # of the billboard being painted
        self.footprints: Dict[int, int] = {}          # obstacle id -> pixels it painted

    def write(self, region: Tuple[slice, slice], m: np.ndarray, colour: np.ndarray, label: int,
              anomaly: int) -> None:
        """Write one clipped paint, with the billboard's instance id and range."""
        super().write(region, m, colour, label, anomaly)
        self.instances[region][m] = self.id
        self.depth[region][m] = self.range
        if self.id:                                   # an obstacle paints once per view
            self.footprints[self.id] = self.footprints.get(self.id, 0) + int(np.count_nonzero(m))


def noise_tile(rng: Rng, feature: float) -> np.ndarray:
    """Periodic smooth noise, ``TILE`` x ``TILE`` float32, unit deviation, ``feature`` samples."""
    white = np.fft.rfft2(rng.standard_normal((TILE, TILE)))
    fy, fx = np.fft.fftfreq(TILE)[:, None], np.fft.rfftfreq(TILE)[None, :]
    sigma = feature / 2                                   # Gaussian low pass, sigma in samples
    field = np.fft.irfft2(white * np.exp(-2 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2)),
                          s=(TILE, TILE))
    return (field / field.std()).astype(np.float32)


def _sample(tile: np.ndarray, step: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sample a periodic tile at coordinates ``a`` (columns), ``b`` (rows) in units of ``step``."""
    a, b = np.broadcast_arrays(a, b)
    shape, n = a.shape, a.size
    if n == 0:
        return np.zeros(shape, np.float32)
    # remap wants maps under 32767 rows and columns and keeps coordinates as 16-bit integers:
    # lay them out 1024 wide and wrap them here (BORDER_WRAP handles the last cell)
    rows = -(-n // 1024)
    maps = np.zeros((2, rows * 1024), np.float32)
    for i, coord in enumerate((a, b)):
        v = coord.ravel().astype(np.float32) * np.float32(1 / step)
        whole = np.floor(v)
        maps[i, :n] = v - whole + (whole.astype(np.int64) & (TILE - 1))   # mod TILE, fast
    out = cv2.remap(tile, maps[0].reshape(rows, 1024), maps[1].reshape(rows, 1024),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.ravel()[:n].reshape(shape)


@dataclass(frozen=True, eq=False)
class World:
    """A street, its props and its obstacles; ``render`` paints the view from a pose."""

    street: Street
    props: Tuple[Prop, ...]
    obstacles: Tuple[Obstacle, ...]
    tiles: Dict[str, np.ndarray]

    def noise(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Noise tile ``name`` at world coordinates ``(a, b)`` (float32, unit deviation)."""
        return _sample(self.tiles[name], TILE_FEATURES[name] / 3, a, b)

    def render(self, camera: Camera, pose: Pose) -> View:
        """Paint what ``camera`` at ``pose`` sees: sky, ground, fronts, billboards, shadows."""
        h, w = camera.height, camera.width
        p = _Painter(h, w)
        ys = np.arange(h, dtype=np.float32) + 0.5              # continuous pixel centres
        xs = np.arange(w, dtype=np.float32) + 0.5
        yh, xv, f = camera.cy + 0.5, camera.cx + 0.5, camera.fx
        r0 = min(max(int(np.floor(yh - 0.5)) + 1, 0), h)      # first row below the horizon
        self._sky(p, ys[:r0, None], xs[None, :], yh, xv, f, pose.yaw)
        shadow = self._ground(p, ys[r0:, None], xs[None, :], r0, yh, xv, f, pose)
        for fronts in self.street.fronts:
            self._fronts(p, fronts, ys[:, None], xs, yh, xv, f, pose)
        self._billboards(p, camera, pose, ys, xs)
        if shadow is not None:
            shade = cv2.GaussianBlur(shadow, (0, 0), 2) * self.street.shadow[1]
            ground = (p.label == ROAD) | (p.label == SIDEWALK) | (p.label == TERRAIN)
            p.image[ground] *= (1 - shade[ground])[:, None]
        return View(p.image, p.label, p.anomaly, p.instances, p.depth, p.footprints)

    def _sky(self, p: _Painter, ys: np.ndarray, xs: np.ndarray, yh: float, xv: float, f: float,
             yaw: float) -> None:
        if ys.size == 0:
            return
        top, bottom = self.street.sky
        t = np.clip(ys / max(yh, 1.0), 0, 1)[..., None]
        n = self.noise('coarse', ((xs - xv) / f + yaw) * 10, (ys - yh) / f * 10 + 50.0)
        p.image[:ys.shape[0]] = top * (1 - t) + bottom * t + 0.04 * n[..., None]
        p.label[:ys.shape[0]] = SKY

    def _ground(self, p: _Painter, ys: np.ndarray, xs: np.ndarray, r0: int, yh: float,
                xv: float, f: float, pose: Pose) -> Optional[np.ndarray]:
        """Road, sidewalks and terrain below the horizon; returns the shadow mask (or None)."""
        st = self.street
        if ys.size == 0:
            return None
        dy = np.maximum(ys - yh, 1e-3)
        rng_ = np.broadcast_to(f / dy, (ys.shape[0], xs.shape[1]))   # range of each pixel
        X, Z = pose.to_world((xs - xv) / dy, rng_)
        X, Z = X.astype(np.float32), Z.astype(np.float32)
        road = (X >= st.road[0]) & (X <= st.road[1])
        lw, rw = st.road[0] - st.walk[0], st.road[1] + st.walk[1]
        walk = ~road & (X >= lw) & (X <= rw)
        marks = np.zeros_like(road)
        for i, lx in enumerate(st.lanes):
            line = np.abs(X - lx) < st.marking_width / 2
            if i == 0:
                line &= ((Z + st.phase) / st.dash) % 1.0 < 0.5
            marks |= line & road
        curb = walk & ((np.abs(X - st.road[0]) < 0.12) | (np.abs(X - st.road[1]) < 0.12))
        # surface: 0 asphalt, 1 paving, 2 grass, 3 marking, 4 curb; colour = base * gain + noise
        surface = np.where(road, 0, np.where(walk, 1, 2)).astype(np.uint8)
        surface[marks] = 3
        surface[curb] = 4
        base = np.stack([st.asphalt, st.paving, st.grass, st.marking, st.paving * 1.2])
        # Surface noise in screen space, as scene.py paints single scenes (features of 2 px and
        # w / 8 px): noise fixed to world coordinates drew blotches tens of pixels wide on the
        # near road, which the embedded model flagged (road false alarms, phantom tracks).
        cols, rows = np.broadcast_arrays(xs, ys)
        fine = _sample(self.tiles['fine'], 2.0 / 3, cols, rows)
        coarse = _sample(self.tiles['coarse'], xs.size / 24, cols + 37.0, rows + 11.0)
        tiles = (np.floor(Z / st.slab) + np.floor((X - lw) / st.slab)) % 2
        gain = np.where(surface == 1, 0.95 + 0.06 * tiles, 1.0).astype(np.float32)
        weights = np.array([[0.035, 0.05], [0.04, 0.0], [0.06, 0.06], [0, 0], [0, 0]],
                           np.float32)[surface]
        noise = weights[..., 0] * fine + weights[..., 1] * coarse
        p.image[r0:] = base.astype(np.float32)[surface] * gain[..., None] + noise[..., None]
        p.label[r0:] = np.array([ROAD, SIDEWALK, TERRAIN, ROAD, SIDEWALK], np.uint8)[surface]
        p.depth[r0:] = rng_
        if st.shadow is None:
            return None
        shadow = np.zeros((p.h, p.w), np.float32)
        shadow[r0:] = self.noise('coarse', X * 0.6 + 91.0, Z * 0.6 + 53.0) > st.shadow[0]
        return shadow

    def _fronts(self, p: _Painter, fr: Fronts, ys: np.ndarray, xs: np.ndarray, yh: float,
                xv: float, f: float, pose: Pose) -> None:
        """Paint building and hedge fronts: vertical planes at ``X = fr.x`` along ``Z``."""
        c, s = np.cos(pose.yaw), np.sin(pose.yaw)
        a = (xs - xv) / f                                    # column's ray: lateral per range
        dx, dz = c * a + s, c - s * a                        # its world direction per range
        with np.errstate(divide='ignore', invalid='ignore'):
            t = ((fr.x - pose.x) / dx).astype(np.float32)    # range where it meets the front
        zw = pose.z + t * dz.astype(np.float32)              # and the Z it meets it at
        valid = np.isfinite(t) & (t > 1e-2) & (zw >= fr.edges[0]) & (zw < fr.edges[-1])
        cols = np.flatnonzero(valid)
        if cols.size == 0:
            return
        c0, c1 = cols[0], cols[-1] + 1
        t, zw, valid = t[c0:c1], zw[c0:c1], valid[c0:c1]
        n = len(fr.kind)
        seg = np.clip(np.searchsorted(fr.edges, np.where(valid, zw, fr.edges[0])) - 1, 0, n - 1)
        kind = fr.kind[seg]
        height = 1 - (ys - yh) * (np.where(valid, t, 0) / np.float32(f))  # rows x cols
        bump = np.where(kind <= 0.35, 0.5 * self.noise('medium', zw, fr.x + 5.0), 0.0)
        inside = valid & (height >= 0) & (height <= fr.height[seg] + bump)
        inside &= kind > 0.12
        rr, cc = np.nonzero(inside)
        if rr.size == 0:
            return
        zp, hp, sp = zw[cc], height[rr, cc], seg[cc]
        fine = self.noise('fine', zp + fr.x, hp)[:, None]
        n8 = self.noise('medium', zp + fr.x, hp + 17.0)[:, None]
        n2b = self.noise('fine', zp + fr.x + 29.0, hp + 13.0)[:, None]
        build = (fr.kind[sp] > 0.35)[:, None]
        spacing = fr.spacing[sp]
        win = (((zp / spacing[:, 0]) % 1.0) < spacing[:, 2]) & (hp > 1.2)
        win &= ((hp / spacing[:, 1]) % 1.0) > 0.45
        glass = np.array([0.2, 0.25, 0.3], np.float32) * (1 + 0.2 * n8)
        wall = np.where(win[:, None], glass, fr.walls[sp] + 0.04 * fine)
        hedge = fr.greens[sp] * (1 + 0.35 * n2b) + 0.05 * n8
        cols_ = cc + c0
        p.image[rr, cols_] = np.where(build, wall, hedge)
        p.label[rr, cols_] = np.where(build[:, 0], BUILDING, VEGETATION)
        p.depth[rr, cols_] = t[cc]

    def _billboards(self, p: _Painter, camera: Camera, pose: Pose, ys: np.ndarray,
                    xs: np.ndarray) -> None:
        """Props and obstacles in front of the near plane, far to near."""
        yh, xv, f = camera.cy + 0.5, camera.cx + 0.5, camera.fx
        things = list(self.props) + list(self.obstacles)
        if not things:
            return
        lateral, range_ = pose.to_camera(np.array([t.x for t in things]),
                                         np.array([t.z for t in things]))
        order = np.argsort(-range_, kind='stable')
        n2b = n8 = None
        for i in order:
            r = float(range_[i])
            s = f / r if r >= NEAR else 0.0
            u = xv + float(lateral[i]) * s
            if r < NEAR or u + 3 * s < 0 or u - 3 * s > p.w:
                continue
            v = yh + s * CAMERA_HEIGHT
            thing = things[i]
            p.range = r
            p.id = thing.id if isinstance(thing, Obstacle) else 0
            if isinstance(thing, Obstacle):
                self._obstacle(p, thing, u, v, s)
            elif isinstance(thing.spec, Pole):
                draw_pole(p, thing.spec, u, v, s)
            elif isinstance(thing.spec, Person):
                draw_person(p, thing.spec, u, v, s)
            elif isinstance(thing.spec, Car):
                draw_car(p, thing.spec, u, v, s)
            else:
                if n2b is None:
                    n2b, n8 = np.zeros((p.h, p.w), np.float32), np.zeros((p.h, p.w), np.float32)
                y0, y1, x0, x1 = tree_box(thing.spec, u, v, s)
                y0, y1, x0, x1 = max(y0, 0), min(y1, p.h), max(x0, 0), min(x1, p.w)
                if y0 < y1 and x0 < x1:                  # crown noise fixed to the tree
                    a = (xs[None, x0:x1] - u) / s + thing.texture[0]
                    b = (ys[y0:y1, None] - v) / s + thing.texture[1]
                    n2b[y0:y1, x0:x1] = self.noise('fine', a, b)
                    n8[y0:y1, x0:x1] = self.noise('medium', a, b)
                draw_tree(p, thing.spec, u, v, s, n2b, n8)
        p.range, p.id = np.inf, 0

    @staticmethod
    def _obstacle(p: _Painter, ob: Obstacle, u: float, v: float, s: float) -> None:
        """Paint an obstacle's texture scaled to ``s``, its lowest mask row on row ``v``."""
        ph, pw = max(1, int(round(ob.height * s))), max(1, int(round(ob.width * s)))
        col0 = int(round(u - pw / 2))
        if ph * pw > 4 * p.h * p.w:           # far larger than the view: warp the visible part
            row0 = int(np.floor(v)) - ph + 1
            ya, yb, xa, xb = max(row0, 0), min(row0 + ph, p.h), max(col0, 0), min(col0 + pw, p.w)
            if ya >= yb or xa >= xb:
                return
            sy, sx = ph / ob.mask.shape[0], pw / ob.mask.shape[1]
            warp = np.array([[sx, 0, (sx - 1) / 2 + col0 - xa],
                             [0, sy, (sy - 1) / 2 + row0 - ya]], np.float64)
            size = (xb - xa, yb - ya)
            rgb = cv2.warpAffine(ob.rgb, warp, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            mask = cv2.warpAffine(ob.mask.astype(np.float32), warp, size,
                                  flags=cv2.INTER_LINEAR) >= 0.5
            p.paint(mask, rgb, IGNORE, 1, offset=(ya, xa))
            return
        shrink = ph < ob.mask.shape[0]
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        rgb = cv2.resize(ob.rgb, (pw, ph), interpolation=interp)
        cover = cv2.resize(ob.mask.astype(np.float32), (pw, ph), interpolation=interp)
        cover = cover.reshape(ph, pw)
        mask = cover >= 0.5
        if not mask.any():                               # tiny: keep its best covered pixel
            mask = cover >= cover.max()
        bottom = int(np.flatnonzero(mask.any(axis=1))[-1])
        p.paint(mask, rgb.reshape(ph, pw, 3), IGNORE, 1,
                offset=(int(np.floor(v)) - bottom, col0))
