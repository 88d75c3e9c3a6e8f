"""Held-out anomaly families: each from its own generating principle, never used in training.

* ``voronoi``: cellular objects. A Voronoi diagram of random sites; the object is the union of
  the cells whose site lies inside an ellipse (a polygonal outline), each cell a flat colour with
  dark cell walls (stained glass, giraffe hide, cobbles).
* ``fractal``: fractal-noise blobs. The outline is a level set of 4-6 octaves of value noise minus
  a radial falloff (ragged, cloud-like), the colour a ramp through 3 colours indexed by another
  noise field (lichen, camouflage, rock).
* ``glyph``: letters, digits and symbols drawn with OpenCV's Hershey fonts, thick strokes with an
  outline of another colour, slanted (signage, graffiti, a sign face lying on the road).
* ``solids``: geometric solids lit by one directional light (Lambert plus a Phong highlight):
  spheres (plain, or a beach ball of 4-8 coloured gores), upright cylinders, boxes in perspective.

All return ``(rgb h x w x 3 float32 in [0, 1], mask h x w bool)`` with at least one pixel set.
"""

import string
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from .colour import hsv, light_direction, lit, Rng, smooth_noise

Anomaly = Tuple[np.ndarray, np.ndarray]
GLYPHS = string.ascii_letters + string.digits + '#&%@?!$*+='
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


def _vivid(rng: Rng) -> np.ndarray:
    """One colour of any hue, mostly saturated (held-out families are meant to stand out)."""
    return hsv(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.35, 1.0))


def _nonempty(mask: np.ndarray) -> np.ndarray:
    """Ensure at least the centre pixel is set."""
    if not mask.any():
        mask[mask.shape[0] // 2, mask.shape[1] // 2] = True
    return mask


def voronoi(rng: Rng, h: int, w: int) -> Anomaly:
    """Make a cellular object: Voronoi cells inside an ellipse, flat colours, dark walls."""
    n = int(rng.integers(8, 40))
    sites = rng.uniform(0, 1, (n, 2)) * [h, w]                               # n x (y, x)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d1 = np.full((h, w), np.inf, np.float32)           # nearest and second-nearest distance
    d2 = np.full((h, w), np.inf, np.float32)
    nearest = np.zeros((h, w), np.int64)
    for i, (sy, sx) in enumerate(sites):                # n passes: memory stays h x w
        d = np.hypot(ys - np.float32(sy), xs - np.float32(sx))
        closer = d < d1
        d2 = np.where(closer, d1, np.minimum(d2, d))
        d1 = np.where(closer, d, d1)
        nearest[closer] = i
    ry, rx = rng.uniform(0.3, 0.5) * h, rng.uniform(0.3, 0.5) * w
    inside = ((sites[:, 0] - h / 2) / ry) ** 2 + ((sites[:, 1] - w / 2) / rx) ** 2 < 1
    mask = _nonempty(inside[nearest])
    base = _vivid(rng)
    palette = np.stack([np.clip(base + rng.normal(0, 0.18, 3), 0, 1) for _ in range(n)])
    rgb = palette[nearest].astype(np.float32)
    wall = (d2 - d1) < rng.uniform(0.8, 2.5)                     # pixels near two sites
    rgb[wall] = rgb[wall] * rng.uniform(0.1, 0.4)
    return rgb, mask


def _fbm(rng: Rng, h: int, w: int, octaves: int) -> np.ndarray:
    """Fractal (1/f-like) value noise: octaves of halving cell size and halving amplitude."""
    total = np.zeros((h, w), np.float32)
    cell, amp = max(h, w) / 2.0, 1.0
    for _ in range(octaves):
        total += amp * smooth_noise(rng, (h, w), cell)
        cell, amp = cell / 2, amp / 2
    return total


def fractal(rng: Rng, h: int, w: int) -> Anomaly:
    """Make a fractal-noise blob: a ragged level set coloured by a 3-colour noise ramp."""
    octaves = int(rng.integers(4, 7))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((ys - h / 2) / (h / 2), (xs - w / 2) / (w / 2))
    mask = _nonempty(_fbm(rng, h, w, octaves) * 0.6 + 0.7 - r ** 2 > 0)
    t = _fbm(rng, h, w, octaves)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)                         # 0..1
    stops = np.stack([_vivid(rng) for _ in range(3)])
    lo = np.clip(t * 2, 0, 1)[..., None]
    hi = np.clip(t * 2 - 1, 0, 1)[..., None]
    rgb = np.where(t[..., None] < 0.5, stops[0] * (1 - lo) + stops[1] * lo,
                   stops[1] * (1 - hi) + stops[2] * hi)
    return rgb.astype(np.float32), mask


def glyph(rng: Rng, h: int, w: int) -> Anomaly:
    """Make 1-3 glyphs filling the box: thick strokes, an outline of another colour, slanted."""
    text = ''.join(GLYPHS[int(i)] for i in rng.integers(len(GLYPHS), size=int(rng.integers(1, 4))))
    font = FONTS[int(rng.integers(len(FONTS)))]
    thick = int(rng.integers(2, 6))
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thick)
    pad = 2 * thick + 2
    canvas = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + th), font, 1.0, 1, thick, cv2.LINE_AA)
    outline = cv2.dilate(canvas, np.ones((3, 3), np.uint8), iterations=max(1, thick // 2))
    shear = np.float32([[1, rng.uniform(-0.3, 0.3), 0], [0, 1, 0]])
    ch, cw = canvas.shape
    shear[0, 2] = -shear[0, 1] * ch / 2
    fill = cv2.resize(cv2.warpAffine(canvas, shear, (cw, ch)), (w, h),
                      interpolation=cv2.INTER_NEAREST) > 0
    edge = cv2.resize(cv2.warpAffine(outline, shear, (cw, ch)), (w, h),
                      interpolation=cv2.INTER_NEAREST) > 0
    mask = _nonempty(fill | edge)
    ink, rim = _vivid(rng), _vivid(rng)
    rgb = np.where(fill[..., None], ink, rim).astype(np.float32)
    return rgb, mask


def solids(rng: Rng, h: int, w: int) -> Anomaly:
    """Make one lit solid: a sphere (plain or a beach ball), an upright cylinder or a box."""
    light, shine = light_direction(rng), rng.uniform(8, 60)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xs + 0.5 - w / 2) / (w / 2), (ys + 0.5 - h / 2) / (h / 2)      # -1..1
    kind = int(rng.integers(3))
    if kind == 0:                                         # sphere: normal (u, v, sqrt(1-r^2))
        r2 = u ** 2 + v ** 2
        mask = r2 < 1
        normal = np.stack([u, v, np.sqrt(np.clip(1 - r2, 0, 1))], -1)
        gores = int(rng.integers(4, 9)) if rng.random() < 0.6 else 1
        phase = rng.uniform(0, 2 * np.pi)
        lon = (np.arctan2(normal[..., 0], normal[..., 2] + 1e-6) + phase) % (2 * np.pi)
        colours = np.stack([_vivid(rng) for _ in range(gores)])
        albedo = colours[(lon / (2 * np.pi) * gores).astype(int) % gores]
    elif kind == 1:                                       # cylinder: normal (u, 0, sqrt(1-u^2))
        mask = np.abs(u) < 1
        normal = np.stack([u, np.zeros_like(u), np.sqrt(np.clip(1 - u ** 2, 0, 1))], -1)
        albedo = np.broadcast_to(_vivid(rng), (h, w, 3))
        bands = rng.random() < 0.5                        # hoops around a barrel
        if bands:
            albedo = np.where((np.abs(v) % 0.5 < 0.08)[..., None], _vivid(rng), albedo)
    else:                                                 # box: front, side and top faces
        split = rng.uniform(-0.4, 0.4)
        top = v < -0.45 + 0.2 * np.abs(u - split)
        side = ~top & (u > split)
        mask = np.ones((h, w), bool)
        normal = np.where(top[..., None], [0.0, -1.0, 0.3],
                          np.where(side[..., None], [0.8, 0.0, 0.6], [-0.3, 0.0, 0.95]))
        normal = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
        albedo = np.broadcast_to(_vivid(rng), (h, w, 3))
    return lit(np.asarray(albedo, np.float32), normal, light, shine), _nonempty(mask)


FAMILIES: Dict[str, Callable[[Rng, int, int], Anomaly]] = {
    'voronoi': voronoi, 'fractal': fractal, 'glyph': glyph, 'solids': solids}
