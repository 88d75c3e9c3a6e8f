"""The scene painter: a street in true perspective (sky, ground, facades), then props, then light.

A pinhole camera one world unit above a flat ground looks down a straight street. For a pixel
below the horizon ``yh`` the ground point has depth ``Z = f / (y - yh)`` and lateral offset
``X = (x - xv) / (y - yh)`` (``xv`` is the vanishing point column), so road, sidewalks, terrain,
lane markings and building facades follow true perspective. Poles, signs, trees, cars, people and
anomalies are billboards standing on the ground at ``(X, Z)`` (props.py), drawn far to near.
"""

from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from .canvas import (BUILDING, draw_mask, IGNORE, ROAD, SceneCanvas, SIDEWALK, SKY, TERRAIN,
                     VEGETATION)
from .colour import jitter, Rng, Size, smooth_noise
from .props import Anomalies, Props

WALLS = ((0.55, 0.5, 0.45), (0.45, 0.45, 0.47), (0.65, 0.6, 0.5), (0.5, 0.35, 0.3),
         (0.7, 0.68, 0.62))


class Scene(Props):
    """Builds one scene; all randomness comes from ``rng``."""

    def __init__(self, rng: Rng, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.c = SceneCanvas(h, w)
        self.yh = h * rng.uniform(0.3, 0.5)                 # horizon row
        self.xv = w * rng.uniform(0.38, 0.62)               # vanishing point column
        self.f = w * rng.uniform(0.7, 1.3)                  # focal length, px
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.ys, self.xs = ys + 0.5, xs + 0.5
        self.dy = np.maximum(self.ys - self.yh, 1e-3)
        self.ground = self.ys > self.yh
        self.X = (self.xs - self.xv) / self.dy              # lateral ground offset
        self.Z = self.f / self.dy                           # ground depth
        self.road = (-rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
        self.walk = (rng.uniform(0.8, 2.5), rng.uniform(0.8, 2.5))
        self.terrain = tuple(rng.uniform(0.5, 5.0) if rng.random() < 0.45 else 0.0
                             for _ in range(2))
        left = self.road[0] - self.walk[0] - self.terrain[0]
        right = self.road[1] + self.walk[1] + self.terrain[1]
        self.facades = (left, right)
        self.n2, self.n2b = self.noise(2), self.noise(2.5)
        self.n8 = self.noise(8)
        self.bump = smooth_noise(rng, (1, w), 6)[0]

    # -- helpers
    def project(self, x: float, z: float) -> Tuple[float, float, float]:
        """Image column, ground row and pixels per world unit for ground point (x, z)."""
        s = self.f / z
        return self.xv + x * s, self.yh + s, s

    def noise(self, cell: float) -> np.ndarray:
        return smooth_noise(self.rng, (self.h, self.w), cell)

    # -- layers
    def sky(self) -> None:
        rng = self.rng
        top = jitter(rng, (0.35, 0.55, 0.85) if rng.random() < 0.7 else (0.7, 0.72, 0.75), 0.1)
        bottom = jitter(rng, (0.75, 0.82, 0.9), 0.08)
        t = np.clip(self.ys / max(self.yh, 1.0), 0, 1)[..., None]
        colour = top * (1 - t) + bottom * t + 0.04 * self.noise(self.w / 6)[..., None]
        self.c.paint(np.ones((self.h, self.w), bool), colour, SKY)

    def ground_plane(self) -> None:
        rng = self.rng
        X, Z, g = self.X, self.Z, self.ground
        road = g & (X >= self.road[0]) & (X <= self.road[1])
        lw, rw = self.road[0] - self.walk[0], self.road[1] + self.walk[1]
        walk = g & ~road & (X >= lw) & (X <= rw)
        terr = g & ~road & ~walk
        fine = self.n2[..., None]
        coarse = self.noise(self.w / 8)[..., None]
        asphalt = jitter(rng, (0.33, 0.33, 0.35), 0.06)
        colour = asphalt + 0.035 * fine + 0.05 * coarse
        # lane markings: lines at fixed lateral offsets, dashed with a period along the depth
        marks = np.zeros_like(road)
        width = rng.uniform(0.1, 0.16)
        lanes = [0.0] if rng.random() < 0.7 else []
        lanes += [self.road[0] + 0.3, self.road[1] - 0.3] if rng.random() < 0.6 else []
        dash = rng.uniform(2.0, 5.0)
        phase = rng.uniform(0, dash)
        for i, lx in enumerate(lanes):
            line = np.abs(X - lx) < width / 2
            if i == 0:
                line &= ((Z + phase) / dash) % 1.0 < 0.5
            marks |= line & road
        colour = np.where(marks[..., None], jitter(rng, (0.85, 0.85, 0.8), 0.08), colour)
        self.c.paint(road, colour, ROAD)
        slab = rng.uniform(0.5, 1.2)
        tiles = ((np.floor(Z / slab) + np.floor((X - lw) / slab)) % 2)[..., None]
        paving = jitter(rng, (0.6, 0.55, 0.58), 0.08)
        colour = paving * (0.95 + 0.06 * tiles) + 0.04 * fine
        curb = (np.abs(X - self.road[0]) < 0.12) | (np.abs(X - self.road[1]) < 0.12)
        colour = np.where(curb[..., None], paving * 1.2, colour)
        self.c.paint(walk, colour, SIDEWALK)
        grass = jitter(rng, (0.5, 0.58, 0.3), 0.08)
        colour = grass + 0.06 * fine + 0.06 * coarse
        self.c.paint(terr, colour, TERRAIN)

    def facades_layer(self) -> None:
        """Draw building fronts and hedges on both sides, in depth segments with gaps."""
        rng = self.rng
        cols = self.xs[0] - self.xv
        for side, xb in ((-1, self.facades[0]), (1, self.facades[1])):
            with np.errstate(divide='ignore', invalid='ignore'):
                z = np.where(cols * side > 0, self.f * xb / cols, np.nan)   # depth per column
            edges = [0.0]
            while edges[-1] < 600:
                edges.append(edges[-1] + rng.uniform(4, 25))
            n = len(edges)
            kind = rng.random(n)                  # < 0.12 gap, < 0.35 hedge, else building
            height = np.where(kind > 0.35, rng.uniform(2.0, 14.0, n), rng.uniform(1.0, 3.5, n))
            walls = np.stack([jitter(rng, WALLS[i], 0.07)
                              for i in rng.integers(len(WALLS), size=n)])
            greens = np.stack([jitter(rng, (0.25, 0.38, 0.15), 0.06) for _ in range(n)])
            spacing = np.stack([rng.uniform(1.5, 3.0, n), rng.uniform(1.8, 2.6, n),
                                rng.uniform(0.35, 0.6, n)], 1)
            seg = np.clip(np.searchsorted(edges, np.nan_to_num(z, nan=-1.0)) - 1, 0, n - 1)
            valid = np.isfinite(z) & (z > 0)
            zc = np.nan_to_num(z)[None, :]
            world_y = 1.0 - (self.ys - self.yh) * zc / self.f      # height above the ground
            top = height[seg] + np.where(kind[seg] <= 0.35, 0.5 * self.bump, 0.0)
            inside = valid[None, :] & (world_y >= 0) & (world_y <= top[None, :])
            build = inside & (kind[seg] > 0.35)[None, :]
            hedge = inside & ((kind[seg] > 0.12) & (kind[seg] <= 0.35))[None, :]
            fx, fy, duty = spacing[seg, 0], spacing[seg, 1], spacing[seg, 2]
            win = (((zc / fx) % 1.0) < duty) & (((world_y / fy[None, :]) % 1.0) > 0.45)
            win &= world_y > 1.2
            colour = walls[seg][None] + 0.04 * self.n2[..., None]
            glass = np.array([0.2, 0.25, 0.3], np.float32) * (1 + 0.2 * self.n8[..., None])
            colour = np.where(win[..., None], glass, colour)
            self.c.paint(build, colour, BUILDING)
            colour = (greens[seg][None] * (1 + 0.35 * self.n2b[..., None])
                      + 0.05 * self.n8[..., None])
            self.c.paint(hedge, colour, VEGETATION)

    def finish(self, hood: bool) -> None:
        """Ego-vehicle hood (void), lighting, shadows and sensor noise."""
        rng = self.rng
        c = self.c
        if rng.random() < 0.5:    # soft shadows cast across the ground
            shadow = (self.noise(self.w / 5) > rng.uniform(0.3, 1.2)) & self.ground
            shadow = cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), 2)
            c.image *= (1 - rng.uniform(0.3, 0.5) * shadow)[..., None]
        if hood:
            top = self.h * (1 - rng.uniform(0.06, 0.14))
            m = draw_mask(self.h, self.w, lambda a: cv2.ellipse(
                a, (int(self.w / 2), int(self.h * 1.25)), (int(self.w * 0.75),
                                                           int(self.h * 1.25 - top)),
                0, 180, 360, 1, -1))
            colour = jitter(rng, (0.12, 0.12, 0.14), 0.05)
            field = colour + 0.15 * np.clip(self.noise(self.w / 4), 0, None)[..., None]
            c.paint(m, field, IGNORE, IGNORE)
        gain = rng.uniform(0.6, 1.3)
        cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
        light = 1 + rng.uniform(-0.2, 0.2) * (self.xs / self.w - 0.5)
        img = c.image * gain * cast * light[..., None]
        img += rng.uniform(0.005, 0.03) * rng.standard_normal(img.shape).astype(np.float32)
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))
        c.image = np.clip(img, 0, 1)


def paint_scene(seed: int, size: Size = (256, 512), anomaly: Optional[Anomalies] = None,
                num_anomalies: Tuple[int, int] = (1, 3)) -> Dict[str, np.ndarray]:
    """Paint a deterministic road scene: ``image`` HxWx3 uint8 RGB, ``label``/``anomaly`` HxW.

    ``anomaly`` draws one anomaly (``families.make_scene`` passes a named family's); None
    paints a clean scene.
    """
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f'scene size must be at least 8 x 8, got {size}')
    rng = np.random.default_rng([int(seed), 1409])
    scene = Scene(rng, h, w)
    scene.sky()
    scene.ground_plane()
    scene.facades_layer()
    lo, hi = num_anomalies
    count = int(rng.integers(lo, hi + 1)) if anomaly is not None else 0
    scene.objects(anomaly, count)
    scene.finish(hood=rng.random() < 0.3)
    c = scene.c
    anomaly = c.anomaly.copy()
    return {'image': (c.image * 255).round().astype(np.uint8), 'label': c.label.copy(),
            'anomaly': anomaly}
