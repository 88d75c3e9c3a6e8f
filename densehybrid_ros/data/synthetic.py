"""Procedural road scenes with Cityscapes train-id labels and SMIYC-style anomaly labels.

A pinhole camera one world unit above a flat ground looks down a straight street. For a pixel
below the horizon ``yh`` the ground point has depth ``Z = f / (y - yh)`` and lateral offset
``X = (x - xv) / (y - yh)`` (``xv`` is the vanishing point column), so road, sidewalks, terrain,
lane markings and building facades follow true perspective. Poles, signs, trees, cars, people and
anomalies are billboards standing on the ground at ``(X, Z)``, drawn far to near.

Anomalies come in two disjoint families (shapes and textures): ``'train'`` is only ever pasted
as a training negative, ``'eval'`` only appears in evaluation scenes, so the evaluation measures
generalisation to unseen anomaly types, as in the DenseHybrid paper.
"""

import multiprocessing
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

IGNORE = 255
ROAD, SIDEWALK, BUILDING, POLE, SIGN = 0, 1, 2, 5, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13
SCENE_CLASSES = (ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR)
WALLS = ((0.55, 0.5, 0.45), (0.45, 0.45, 0.47), (0.65, 0.6, 0.5), (0.5, 0.35, 0.3),
         (0.7, 0.68, 0.62))

Size = Tuple[int, int]
Rng = np.random.Generator


# ----------------------------------------------------------------------------------- textures
def smooth_noise(rng: Rng, size: Size, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish value noise of feature size ``cell`` pixels (H x W float32)."""
    h, w = size
    gh, gw = max(2, int(h / max(cell, 1.0)) + 2), max(2, int(w / max(cell, 1.0)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _jitter(rng: Rng, rgb: Sequence[float], amount: float) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    pixel = np.array([[[h * 179.0, s * 255.0, v * 255.0]]], np.float32).astype(np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


# ------------------------------------------------------------------------- anomaly families
def _shape_ellipse(rng: Rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)),
                float(rng.uniform(-20, 20)), 0, 360, 1, -1)
    return m


def _shape_box(rng: Rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cx, cy = w / 2, h / 2
    box = cv2.boxPoints(((cx, cy), (w * rng.uniform(0.6, 0.95), h * rng.uniform(0.6, 0.95)),
                         float(rng.uniform(-25, 25))))
    cv2.fillPoly(m, [np.round(box).astype(np.int32)], 1)
    return m


def _shape_ngon(rng: Rng, h: int, w: int) -> np.ndarray:
    n = int(rng.integers(3, 8))
    ang = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
    pts = np.stack([w / 2 + (w / 2 - 1) * np.cos(ang), h / 2 + (h / 2 - 1) * np.sin(ang)], 1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def _shape_star(rng: Rng, h: int, w: int) -> np.ndarray:
    n = int(rng.integers(4, 10))
    inner = rng.uniform(0.3, 0.6)
    ang = rng.uniform(0, 2 * np.pi) + np.arange(2 * n) * np.pi / n
    rad = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
    pts = np.stack([w / 2 + (w / 2 - 1) * rad * np.cos(ang),
                    h / 2 + (h / 2 - 1) * rad * np.sin(ang)], 1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def _shape_blob(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2)
    theta, r = np.arctan2(dy, dx), np.hypot(dx, dy)
    edge = 0.7 * np.ones_like(theta)
    for k in range(2, 6):
        edge += rng.uniform(0.0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (r < np.clip(edge, 0.25, 0.98)).astype(np.uint8)


def _shape_ring(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2))
    m = (r < 0.97) & (r > rng.uniform(0.35, 0.6))
    if rng.random() < 0.5:      # a crescent: bite a disc out of one side
        ox, oy = rng.uniform(-0.5, 0.5, 2)
        m &= np.hypot((xs - w / 2) / (w / 2) - ox, (ys - h / 2) / (h / 2) - oy) > 0.6
        m |= (r < 0.97) & (np.hypot((xs - w / 2) / (w / 2) + ox, (ys - h / 2) / (h / 2) + oy)
                           < 0.3)
    return m.astype(np.uint8)


def _shape_cluster(rng: Rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        r = max(1, int(min(h, w) * rng.uniform(0.15, 0.3)))
        c = (int(rng.uniform(r, max(r + 1, w - r))), int(rng.uniform(r, max(r + 1, h - r))))
        cv2.circle(m, c, r, 1, -1)
    return m


def _two_colours(rng: Rng) -> Tuple[np.ndarray, np.ndarray]:
    h = rng.random()
    a = _hsv(h, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
    b = _hsv((h + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0))
    return a, b


def _tex_stripes(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _two_colours(rng)
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(3, 10)
    t = ((xs * np.cos(ang) + ys * np.sin(ang)) / period) % 1.0 < 0.5
    return np.where(t[..., None], a, b)


def _tex_checker(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _two_colours(rng)
    cell = rng.uniform(3, 10)
    t = ((xs // cell + ys // cell) % 2) == 0
    return np.where(t[..., None], a, b)


def _tex_gradient(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _two_colours(rng)
    ang = rng.uniform(0, 2 * np.pi)
    t = xs / max(w, 1) * np.cos(ang) + ys / max(h, 1) * np.sin(ang)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return a * (1 - t[..., None]) + b * t[..., None]


def _tex_dots(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _two_colours(rng)
    period = rng.uniform(4, 10)
    d = np.hypot((xs % period) - period / 2, (ys % period) - period / 2)
    return np.where((d < period * 0.3)[..., None], a, b)


def _tex_noise(rng: Rng, h: int, w: int) -> np.ndarray:
    cell = rng.uniform(1.5, 5)
    return np.clip(np.stack([0.5 + 0.3 * smooth_noise(rng, (h, w), cell) for _ in range(3)], -1),
                   0, 1)


def _tex_rings(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _two_colours(rng)
    period = rng.uniform(3, 8)
    r = np.hypot(xs - w * rng.uniform(0.3, 0.7), ys - h * rng.uniform(0.3, 0.7))
    t = 0.5 + 0.5 * np.sin(2 * np.pi * r / period)
    return a * t[..., None] + b * (1 - t[..., None])


def _tex_hue_sweep(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    hue = ((np.arctan2(ys - h / 2, xs - w / 2) / (2 * np.pi)) + rng.random()) % 1.0
    hsv = np.stack([hue * 179, np.full_like(hue, 220), np.full_like(hue, 230)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0


def _shape_hull(rng: Rng, h: int, w: int) -> np.ndarray:
    pts = rng.uniform(0, 1, (int(rng.integers(5, 13)), 2)) * [w - 1, h - 1]
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [cv2.convexHull(np.round(pts).astype(np.int32))], 1)
    return m


def _shape_half_disc(rng: Rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h - 1), (max(1, w // 2 - 1), max(1, h - 2)), 0, 180, 360, 1, -1)
    return m


def _shape_rounded_box(rng: Rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    r = max(1, int(min(h, w) * rng.uniform(0.1, 0.3)))
    cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 1, -1)
    return m


def _train_colours(rng: Rng, n: int) -> List[np.ndarray]:
    """Colours of any saturation and brightness (greys and earth tones included)."""
    return [_hsv(rng.random(), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.1, 1.0))
            for _ in range(n)]


def _tex_plaid(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = _train_colours(rng, 3)
    p1, p2 = rng.uniform(4, 12, 2)
    u = ((xs / p1) % 1.0 < 0.35)[..., None]
    v = ((ys / p2) % 1.0 < 0.35)[..., None]
    return np.where(u & v, c, np.where(u | v, (a + c) / 2, a)) * 0.5 + b * 0.5 * (u | v)


def _tex_solid(rng: Rng, h: int, w: int) -> np.ndarray:
    (a,) = _train_colours(rng, 1)
    ys = np.linspace(-0.1, 0.1, h, dtype=np.float32)[:, None, None]
    return np.clip(a + ys + rng.normal(0, 0.03, (h, w, 3)).astype(np.float32), 0, 1)


def _tex_zigzag(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _train_colours(rng, 2)
    period, amp = rng.uniform(4, 12), rng.uniform(2, 6)
    tri = np.abs((xs / period) % 2.0 - 1.0) * amp
    t = (((ys + tri) / period) % 1.0 < 0.5)[..., None]
    return np.where(t, a, b)


def _tex_bricks(rng: Rng, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    brick, mortar = _train_colours(rng, 2)
    bh = rng.uniform(3, 8)
    bw = bh * rng.uniform(1.5, 3.0)
    row = np.floor(ys / bh)
    shifted = xs + (row % 2) * bw / 2
    line = ((ys % bh) < 1.0) | ((shifted % bw) < 1.0)
    return np.where(line[..., None], mortar, brick)


def _tex_mosaic(rng: Rng, h: int, w: int) -> np.ndarray:
    cell = rng.uniform(4, 12)
    gh, gw = int(h / cell) + 1, int(w / cell) + 1
    tiles = np.stack(_train_colours(rng, gh * gw)).reshape(gh, gw, 3).astype(np.float32)
    return cv2.resize(tiles, (w, h), interpolation=cv2.INTER_NEAREST)


Shape = Callable[[Rng, int, int], np.ndarray]
ANOMALY_FAMILIES: Dict[str, Dict[str, Dict[str, Shape]]] = {
    # Training negatives: convex shapes; periodic, flat, tiled or linear-gradient textures.
    'train': {
        'shapes': {'ellipse': _shape_ellipse, 'box': _shape_box, 'ngon': _shape_ngon,
                   'hull': _shape_hull, 'half_disc': _shape_half_disc,
                   'rounded_box': _shape_rounded_box},
        'textures': {'stripes': _tex_stripes, 'checker': _tex_checker,
                     'gradient': _tex_gradient, 'plaid': _tex_plaid, 'solid': _tex_solid,
                     'zigzag': _tex_zigzag, 'bricks': _tex_bricks, 'mosaic': _tex_mosaic},
    },
    # Evaluation only: concave or holed shapes, dotted, noisy, ringed or hue-sweep textures.
    'eval': {
        'shapes': {'star': _shape_star, 'blob': _shape_blob, 'ring': _shape_ring,
                   'cluster': _shape_cluster},
        'textures': {'dots': _tex_dots, 'noise': _tex_noise, 'rings': _tex_rings,
                     'hue_sweep': _tex_hue_sweep},
    },
}


def make_anomaly(rng: Rng, family: str, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``family``: ``(rgb h x w x 3 float32 in [0, 1], mask h x w bool)``."""
    if family not in ANOMALY_FAMILIES:
        raise ValueError(f'unknown anomaly family {family!r}; use one of '
                         f'{sorted(ANOMALY_FAMILIES)}')
    h, w = max(int(h), 3), max(int(w), 3)
    fam = ANOMALY_FAMILIES[family]
    shape = list(fam['shapes'].values())[int(rng.integers(len(fam['shapes'])))]
    texture = list(fam['textures'].values())[int(rng.integers(len(fam['textures'])))]
    mask = shape(rng, h, w).astype(bool)
    if not mask.any():
        mask[h // 2, w // 2] = True
    rgb = texture(rng, h, w).astype(np.float32)
    shade = np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]   # lit from above
    return np.clip(rgb * shade, 0, 1), mask


def make_negative(seed: int, family: str = 'train', size: int = 96) -> Dict[str, np.ndarray]:
    """Make a standalone negative patch: ``{'image' HxWx3 uint8, 'mask' HxW bool}``."""
    rng = np.random.default_rng([seed, 7919])
    h = int(size * rng.uniform(0.6, 1.0))
    w = int(size * rng.uniform(0.6, 1.0))
    rgb, mask = make_anomaly(rng, family, h, w)
    return {'image': (rgb * 255).round().astype(np.uint8), 'mask': mask}


# ------------------------------------------------------------------------------------ scene
class _Canvas:
    """Image (float RGB), labels and anomaly ground truth being painted together."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.image = np.zeros((h, w, 3), np.float32)
        self.label = np.full((h, w), IGNORE, np.uint8)
        self.anomaly = np.zeros((h, w), np.uint8)

    def paint(self, mask: np.ndarray, colour: np.ndarray, label: int, anomaly: int = 0,
              offset: Tuple[int, int] = (0, 0)) -> None:
        """Paint ``colour`` (RGB or a field of the mask's size) where ``mask``, clipped."""
        y0, x0 = offset
        if mask.shape == (self.h, self.w) and offset == (0, 0):
            bx, by, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
            if bw == 0 or bh == 0:
                return
            colour = np.asarray(colour, np.float32)
            if colour.ndim == 3:
                colour = colour[by:by + bh, bx:bx + bw]
            mask, offset, y0, x0 = mask[by:by + bh, bx:bx + bw], (by, bx), by, bx
        mh, mw = mask.shape
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + mh, self.h), min(x0 + mw, self.w)
        if ya >= yb or xa >= xb:
            return
        m = mask[ya - y0:yb - y0, xa - x0:xb - x0].astype(bool)
        colour = np.asarray(colour, np.float32)
        if colour.ndim == 3:
            colour = colour[ya - y0:yb - y0, xa - x0:xb - x0][m]
        self.image[ya:yb, xa:xb][m] = colour
        self.label[ya:yb, xa:xb][m] = label
        self.anomaly[ya:yb, xa:xb][m] = anomaly


def _draw_mask(h: int, w: int, draw: Callable[[np.ndarray], None]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    draw(m)
    return m.astype(bool)


class _Scene:
    """Builds one scene; all randomness comes from ``rng``."""

    def __init__(self, rng: Rng, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.c = _Canvas(h, w)
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
        top = _jitter(rng, (0.35, 0.55, 0.85) if rng.random() < 0.7 else (0.7, 0.72, 0.75), 0.1)
        bottom = _jitter(rng, (0.75, 0.82, 0.9), 0.08)
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
        asphalt = _jitter(rng, (0.33, 0.33, 0.35), 0.06)
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
        colour = np.where(marks[..., None], _jitter(rng, (0.85, 0.85, 0.8), 0.08), colour)
        self.c.paint(road, colour, ROAD)
        slab = rng.uniform(0.5, 1.2)
        tiles = ((np.floor(Z / slab) + np.floor((X - lw) / slab)) % 2)[..., None]
        paving = _jitter(rng, (0.6, 0.55, 0.58), 0.08)
        colour = paving * (0.95 + 0.06 * tiles) + 0.04 * fine
        curb = (np.abs(X - self.road[0]) < 0.12) | (np.abs(X - self.road[1]) < 0.12)
        colour = np.where(curb[..., None], paving * 1.2, colour)
        self.c.paint(walk, colour, SIDEWALK)
        grass = _jitter(rng, (0.5, 0.58, 0.3), 0.08)
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
            walls = np.stack([_jitter(rng, WALLS[i], 0.07)
                              for i in rng.integers(len(WALLS), size=n)])
            greens = np.stack([_jitter(rng, (0.25, 0.38, 0.15), 0.06) for _ in range(n)])
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

    def _vegetation(self, m: np.ndarray) -> None:
        rng = self.rng
        green = _jitter(rng, (0.25, 0.38, 0.15), 0.06)
        colour = green * (1 + 0.35 * self.n2b[..., None]) + 0.05 * self.n8[..., None]
        self.c.paint(m, colour, VEGETATION)

    def objects(self, family: Optional[str], count: int) -> None:
        """Poles, signs, trees, cars, people and anomalies, drawn far to near."""
        rng = self.rng
        items: List[Tuple[float, Callable[[], None]]] = []
        zmax = 80.0
        for side in (0, 1):
            edge = self.road[side] + (1 if side else -1) * 0.3
            for _ in range(int(rng.integers(1, 5))):
                z = rng.uniform(3, zmax)
                items.append((z, lambda x=edge, z=z: self._pole(x, z)))
            for _ in range(int(rng.integers(0, 4))):
                z = rng.uniform(4, zmax)
                x = edge + (1 if side else -1) * rng.uniform(0.2, self.walk[side])
                items.append((z, lambda x=x, z=z: self._tree(x, z)))
            for _ in range(int(rng.integers(0, 4))):
                z = rng.uniform(3, 50)
                x = self.road[side] + (1 if side else -1) * rng.uniform(0.3, self.walk[side])
                items.append((z, lambda x=x, z=z: self._person(x, z)))
        for _ in range(int(rng.integers(0, 6))):
            z = rng.uniform(4, zmax)
            x = rng.uniform(self.road[0] + 0.7, self.road[1] - 0.7)
            items.append((z, lambda x=x, z=z: self._car(x, z)))
        if rng.random() < 0.15:
            z = rng.uniform(3, 30)
            x = rng.uniform(self.road[0], self.road[1])
            items.append((z, lambda x=x, z=z: self._person(x, z)))
        if family is not None:
            for _ in range(count):
                z = rng.uniform(3, 30)
                x = rng.uniform(self.road[0] + 0.3, self.road[1] - 0.3)
                items.append((z, lambda x=x, z=z: self._anomaly(family, x, z)))
        for _, draw in sorted(items, key=lambda it: -it[0]):
            draw()

    def _pole(self, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        width = max(1.0, rng.uniform(0.1, 0.18) * s)
        height = rng.uniform(3.5, 6.5) * s
        x0 = int(round(u - width / 2))
        m = _draw_mask(self.h, self.w, lambda a: cv2.rectangle(
            a, (x0, int(v - height)), (x0 + int(round(width)) - 1, int(v)), 1, -1))
        grey = _jitter(rng, (0.5, 0.5, 0.52), 0.1)
        self.c.paint(m, grey, POLE)
        if rng.random() < 0.6:
            r = rng.uniform(0.3, 0.5) * s
            cy = v - height + r * rng.uniform(1.0, 2.5)
            shape = rng.integers(3)
            if shape == 0:
                draw = (lambda a: cv2.circle(a, (int(u), int(cy)), max(1, int(r)), 1, -1))
            elif shape == 1:
                draw = (lambda a: cv2.rectangle(a, (int(u - r), int(cy - r)),
                                                (int(u + r), int(cy + r)), 1, -1))
            else:
                tri = np.array([[u - r, cy + r * 0.8], [u + r, cy + r * 0.8], [u, cy - r]])
                draw = (lambda a: cv2.fillPoly(a, [np.round(tri).astype(np.int32)], 1))
            m = _draw_mask(self.h, self.w, draw)
            colour = rng.choice([(0.8, 0.1, 0.1), (0.1, 0.3, 0.75), (0.9, 0.8, 0.1),
                                 (0.92, 0.92, 0.92)])
            self.c.paint(m, _jitter(rng, colour, 0.08), SIGN)

    def _tree(self, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        trunk_h = rng.uniform(1.5, 3.0) * s
        tw = max(1, int(rng.uniform(0.15, 0.3) * s))
        r = rng.uniform(1.0, 2.5) * s
        m = _draw_mask(self.h, self.w, lambda a: cv2.rectangle(
            a, (int(u - tw / 2), int(v - trunk_h - r * 0.3)), (int(u + tw / 2), int(v)), 1, -1))
        crown = _draw_mask(self.h, self.w, lambda a: cv2.ellipse(
            a, (int(u), int(v - trunk_h - r * 0.8)), (max(1, int(r)), max(1, int(r * 1.1))),
            0, 0, 360, 1, -1))
        rough = self.n8 > -0.8
        crown &= rough
        self.c.paint(m, _jitter(rng, (0.3, 0.22, 0.15), 0.05), VEGETATION)
        self._vegetation(crown)

    def _person(self, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        height = rng.uniform(1.0, 1.25) * s
        w = height * rng.uniform(0.22, 0.3)
        head = height * 0.13
        skin = _jitter(rng, rng.choice([(0.85, 0.7, 0.6), (0.55, 0.4, 0.3), (0.7, 0.55, 0.4)]),
                       0.05)
        shirt = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 0.9))
        trousers = _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.5))
        legs = _draw_mask(self.h, self.w, lambda a: cv2.fillPoly(a, [np.round(np.array([
            [u - w * 0.4, v], [u - w * 0.05, v - height * 0.45], [u + w * 0.05, v - height * 0.45],
            [u + w * 0.4, v], [u + w * 0.15, v], [u, v - height * 0.3], [u - w * 0.15, v]])
        ).astype(np.int32)], 1))
        torso = _draw_mask(self.h, self.w, lambda a: cv2.ellipse(
            a, (int(u), int(v - height * 0.62)), (max(1, int(w / 2)), max(1, int(height * 0.2))),
            0, 0, 360, 1, -1))
        face = _draw_mask(self.h, self.w, lambda a: cv2.circle(
            a, (int(u), int(v - height + head)), max(1, int(head)), 1, -1))
        self.c.paint(legs, trousers, PERSON)
        self.c.paint(torso, shirt, PERSON)
        self.c.paint(face, skin, PERSON)

    def _car(self, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        w = rng.uniform(1.1, 1.35) * s
        h = rng.uniform(0.85, 1.1) * s
        paint = _jitter(rng, rng.choice([(0.9, 0.9, 0.9), (0.1, 0.1, 0.12), (0.5, 0.5, 0.52),
                                         (0.6, 0.1, 0.1), (0.1, 0.2, 0.5), (0.75, 0.75, 0.78),
                                         (0.15, 0.3, 0.2)]), 0.05)
        body = np.array([[u - w / 2, v - h * 0.1], [u + w / 2, v - h * 0.1],
                         [u + w / 2, v - h * 0.55], [u + w * 0.36, v - h],
                         [u - w * 0.36, v - h], [u - w / 2, v - h * 0.55]])
        m = _draw_mask(self.h, self.w, lambda a: cv2.fillPoly(
            a, [np.round(body).astype(np.int32)], 1))
        self.c.paint(m, paint, CAR)
        window = np.array([[u - w * 0.4, v - h * 0.58], [u + w * 0.4, v - h * 0.58],
                           [u + w * 0.32, v - h * 0.93], [u - w * 0.32, v - h * 0.93]])
        m = _draw_mask(self.h, self.w, lambda a: cv2.fillPoly(
            a, [np.round(window).astype(np.int32)], 1))
        self.c.paint(m, _jitter(rng, (0.15, 0.18, 0.22), 0.04), CAR)
        for sx in (-1, 1):
            wheel = _draw_mask(self.h, self.w, lambda a: cv2.rectangle(
                a, (int(u + sx * w * 0.42 - w * 0.08), int(v - h * 0.15)),
                (int(u + sx * w * 0.42 + w * 0.08), int(v)), 1, -1))
            self.c.paint(wheel, np.array([0.05, 0.05, 0.05], np.float32), CAR)
            light = _draw_mask(self.h, self.w, lambda a: cv2.rectangle(
                a, (int(u + sx * w * 0.4 - w * 0.06), int(v - h * 0.5)),
                (int(u + sx * w * 0.4 + w * 0.06), int(v - h * 0.42)), 1, -1))
            self.c.paint(light, np.array([0.8, 0.1, 0.05], np.float32), CAR)

    def _anomaly(self, family: str, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        size = rng.uniform(0.35, 1.6) * s
        h = int(max(4, size * rng.uniform(0.6, 1.4)))
        w = int(max(4, size * rng.uniform(0.6, 1.4)))
        rgb, mask = make_anomaly(rng, family, h, w)
        self.c.paint(mask, rgb, IGNORE, 1, offset=(int(v - h + h * 0.05), int(u - w / 2)))

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
            m = _draw_mask(self.h, self.w, lambda a: cv2.ellipse(
                a, (int(self.w / 2), int(self.h * 1.25)), (int(self.w * 0.75),
                                                           int(self.h * 1.25 - top)),
                0, 180, 360, 1, -1))
            colour = _jitter(rng, (0.12, 0.12, 0.14), 0.05)
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


def make_scene(seed: int, size: Size = (256, 512), anomaly_family: Optional[str] = None,
               num_anomalies: Tuple[int, int] = (1, 3)) -> Dict[str, np.ndarray]:
    """Make a deterministic road scene: ``image`` HxWx3 uint8 RGB, ``label``/``anomaly`` HxW."""
    if anomaly_family is not None and anomaly_family not in ANOMALY_FAMILIES:
        raise ValueError(f'unknown anomaly family {anomaly_family!r}; use one of '
                         f'{sorted(ANOMALY_FAMILIES)} or None')
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f'scene size must be at least 8 x 8, got {size}')
    rng = np.random.default_rng([int(seed), 1409])
    scene = _Scene(rng, h, w)
    scene.sky()
    scene.ground_plane()
    scene.facades_layer()
    lo, hi = num_anomalies
    count = int(rng.integers(lo, hi + 1)) if anomaly_family else 0
    scene.objects(anomaly_family, count)
    scene.finish(hood=rng.random() < 0.3)
    c = scene.c
    anomaly = c.anomaly.copy()
    return {'image': (c.image * 255).round().astype(np.uint8), 'label': c.label.copy(),
            'anomaly': anomaly}


class SyntheticScenes(Dataset):
    """Scenes for ``seeds`` (a range or sequence) as tensors or arrays.

    Items are dicts: ``image`` 3xHxW float in [0, 1], ``label`` HxW int64, ``anomaly`` HxW
    uint8, ``seed``; with ``transform`` set, the raw numpy dict goes through it instead.
    """

    def __init__(self, seeds: Sequence[int], size: Size = (256, 512),
                 anomaly_family: Optional[str] = None, num_anomalies: Tuple[int, int] = (1, 3),
                 transform: Optional[Callable[[Dict], Dict]] = None) -> None:
        self.seeds = list(seeds)
        self.size = tuple(size)
        self.anomaly_family = anomaly_family
        self.num_anomalies = num_anomalies
        self.transform = transform

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Dict:
        seed = self.seeds[index]
        sample = make_scene(seed, self.size, self.anomaly_family, self.num_anomalies)
        sample['seed'] = seed
        if self.transform is not None:
            return self.transform(sample)
        return to_tensors(sample)


def to_tensors(sample: Dict) -> Dict:
    """Numpy HWC uint8 image and HW labels -> CHW float image and int64 labels."""
    out = dict(sample)
    out['image'] = torch.from_numpy(np.ascontiguousarray(
        sample['image'].transpose(2, 0, 1))).float().div_(255.0)
    out['label'] = torch.from_numpy(np.ascontiguousarray(sample['label'])).long()
    if 'anomaly' in sample:
        out['anomaly'] = torch.from_numpy(np.ascontiguousarray(sample['anomaly']))
    return out


# Seed ranges of the project's synthetic splits: training scenes use seeds below
# CALIB_SEED_START, calibration scenes start there, evaluation scenes at EVAL_SEED_START.
CALIB_SEED_START = 1_000_000
EVAL_SEED_START = 2_000_000


def _scene_job(job: Tuple[int, Size, Optional[str], str]) -> None:
    seed, size, family, path = job
    _write_npz(path, make_scene(seed, size, family))


def _write_npz(path: str, scene: Dict[str, np.ndarray]) -> None:
    tmp = f'{path}.{os.getpid()}.tmp.npz'
    np.savez(tmp, **scene)
    os.replace(tmp, path)


class SceneCache(Dataset):
    """Scenes as raw numpy samples, generated once and kept as ``.npz`` files.

    Files go under ``cache``; with ``cache`` None every item is generated afresh.
    """

    def __init__(self, seeds: Sequence[int], size: Size = (256, 512),
                 anomaly_family: Optional[str] = None, cache: Optional[Path] = None) -> None:
        self.seeds = list(seeds)
        self.size = (int(size[0]), int(size[1]))
        self.family = anomaly_family
        self.cache = Path(cache) if cache is not None else None
        if self.cache is not None:
            self.folder = self.cache / f'{self.size[0]}x{self.size[1]}_{self.family or "clean"}'
            self.folder.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.seeds)

    def path(self, seed: int) -> Path:
        """Cache file of one seed."""
        return self.folder / f'{seed}.npz'

    def prepare(self, workers: int = 1) -> int:
        """Generate every missing scene (in ``workers`` processes); returns how many."""
        if self.cache is None:
            return 0
        jobs = [(s, self.size, self.family, str(self.path(s))) for s in self.seeds
                if not self.path(s).is_file()]
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context('fork').Pool(workers) as pool:
                for _ in pool.imap_unordered(_scene_job, jobs, chunksize=8):
                    pass
        else:
            for job in jobs:
                _scene_job(job)
        return len(jobs)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        seed = self.seeds[index]
        if self.cache is None:
            return make_scene(seed, self.size, self.family)
        path = self.path(seed)
        if path.is_file():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in ('image', 'label', 'anomaly')}
            except (OSError, ValueError, KeyError):
                pass                                       # torn or stale file: regenerate
        scene = make_scene(seed, self.size, self.family)
        _write_npz(str(path), scene)
        return scene
