"""Anomaly textures: ``texture(rng, h, w) -> h x w x 3 float32 RGB`` in [0, 1]."""

import cv2
import numpy as np

from .colour import Rng, smooth_noise, train_colours, two_colours


def tex_stripes(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint stripes of two colours at a random angle."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = two_colours(rng)
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(3, 10)
    t = ((xs * np.cos(ang) + ys * np.sin(ang)) / period) % 1.0 < 0.5
    return np.where(t[..., None], a, b)


def tex_checker(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint a checkerboard of two colours."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = two_colours(rng)
    cell = rng.uniform(3, 10)
    t = ((xs // cell + ys // cell) % 2) == 0
    return np.where(t[..., None], a, b)


def tex_gradient(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint a linear gradient between two colours."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = two_colours(rng)
    ang = rng.uniform(0, 2 * np.pi)
    t = xs / max(w, 1) * np.cos(ang) + ys / max(h, 1) * np.sin(ang)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return a * (1 - t[..., None]) + b * t[..., None]


def tex_dots(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint dots on a plain background."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = two_colours(rng)
    period = rng.uniform(4, 10)
    d = np.hypot((xs % period) - period / 2, (ys % period) - period / 2)
    return np.where((d < period * 0.3)[..., None], a, b)


def tex_noise(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint smooth colour noise."""
    cell = rng.uniform(1.5, 5)
    return np.clip(np.stack([0.5 + 0.3 * smooth_noise(rng, (h, w), cell) for _ in range(3)], -1),
                   0, 1)


def tex_rings(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint concentric rings of two colours."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = two_colours(rng)
    period = rng.uniform(3, 8)
    r = np.hypot(xs - w * rng.uniform(0.3, 0.7), ys - h * rng.uniform(0.3, 0.7))
    t = 0.5 + 0.5 * np.sin(2 * np.pi * r / period)
    return a * t[..., None] + b * (1 - t[..., None])


def tex_hue_sweep(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint a sweep through the hues."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    hue = ((np.arctan2(ys - h / 2, xs - w / 2) / (2 * np.pi)) + rng.random()) % 1.0
    hsv = np.stack([hue * 179, np.full_like(hue, 220), np.full_like(hue, 230)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0


def tex_plaid(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint plaid: crossing stripes."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = train_colours(rng, 3)
    p1, p2 = rng.uniform(4, 12, 2)
    u = ((xs / p1) % 1.0 < 0.35)[..., None]
    v = ((ys / p2) % 1.0 < 0.35)[..., None]
    return np.where(u & v, c, np.where(u | v, (a + c) / 2, a)) * 0.5 + b * 0.5 * (u | v)


def tex_solid(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint one plain colour."""
    (a,) = train_colours(rng, 1)
    ys = np.linspace(-0.1, 0.1, h, dtype=np.float32)[:, None, None]
    return np.clip(a + ys + rng.normal(0, 0.03, (h, w, 3)).astype(np.float32), 0, 1)


def tex_zigzag(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint zigzag bands of two colours."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = train_colours(rng, 2)
    period, amp = rng.uniform(4, 12), rng.uniform(2, 6)
    tri = np.abs((xs / period) % 2.0 - 1.0) * amp
    t = (((ys + tri) / period) % 1.0 < 0.5)[..., None]
    return np.where(t, a, b)


def tex_bricks(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint bricks with mortar lines."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    brick, mortar = train_colours(rng, 2)
    bh = rng.uniform(3, 8)
    bw = bh * rng.uniform(1.5, 3.0)
    row = np.floor(ys / bh)
    shifted = xs + (row % 2) * bw / 2
    line = ((ys % bh) < 1.0) | ((shifted % bw) < 1.0)
    return np.where(line[..., None], mortar, brick)


def tex_mosaic(rng: Rng, h: int, w: int) -> np.ndarray:
    """Paint a mosaic of random coloured cells."""
    cell = rng.uniform(4, 12)
    gh, gw = int(h / cell) + 1, int(w / cell) + 1
    tiles = np.stack(train_colours(rng, gh * gw)).reshape(gh, gw, 3).astype(np.float32)
    return cv2.resize(tiles, (w, h), interpolation=cv2.INTER_NEAREST)
