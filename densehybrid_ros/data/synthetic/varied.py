"""The ``varied`` training family: negatives that vary the way natural objects vary.

The paper pastes real ADE20K objects; none are reachable here, so each negative draws, at random:

* a silhouette: smooth (a blurred random polygon), jagged (a many-vertex spiky polygon), thin
  (polylines: sticks, cables, branches), holed (a smooth body with 1-4 holes), articulated
  (a tree of 3-7 capsule limbs), or a part cut from one of the scene generator's own scenes (a
  car, person, pole, sign, tree or facade piece), recoloured and so out of context;
* a texture: 1/f^a spectral noise (a in 1..2.5, the power spectrum of natural images) mapped
  into 2-4 colours drawn from a natural-colour mixture (mostly earth tones and greys, some vivid),
  or one of the ``train`` family's periodic / flat textures;
* relief shading from the silhouette's distance transform (a pseudo-3D bulge, Lambert plus an
  optional specular highlight) and photo-like noise (sensor noise, blur, JPEG compression).

Scale and placement (a few pixels to a third of the image, on the road, partly occluded) belong
to the paster (negatives.py), which sees the scene.
"""

from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from .canvas import BUILDING, CAR, PERSON, POLE, SIGN, VEGETATION
from .colour import hsv, light_direction, lit, Rng
from .scene import paint_scene
from .shapes import radial_polygon
from .textures import tex_bricks, tex_checker, tex_mosaic, tex_plaid, tex_stripes

Anomaly = Tuple[np.ndarray, np.ndarray]
PART_CLASSES = (CAR, PERSON, POLE, SIGN, VEGETATION, BUILDING)
PLAIN_TEXTURES = (tex_stripes, tex_checker, tex_plaid, tex_bricks, tex_mosaic)


def natural_colour(rng: Rng) -> np.ndarray:
    """Draw from a natural-colour mixture: 55 % earth tones, 25 % greys, 20 % any vivid hue."""
    p = rng.random()
    if p < 0.55:
        return hsv(rng.uniform(0.0, 0.17), rng.uniform(0.15, 0.7), rng.uniform(0.15, 0.85))
    if p < 0.8:
        return hsv(rng.random(), rng.uniform(0.0, 0.12), rng.uniform(0.1, 0.95))
    return hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0))


def _polygon(rng: Rng, h: int, w: int, n: int, r_min: float) -> np.ndarray:
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    return radial_polygon(h, w, ang, rng.uniform(r_min, 1.0, n))


def smooth(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make a smooth silhouette: a random polygon blurred and thresholded."""
    m = _polygon(rng, h, w, int(rng.integers(5, 12)), 0.45).astype(np.float32)
    sigma = max(0.5, rng.uniform(0.04, 0.12) * min(h, w))
    return (cv2.GaussianBlur(m, (0, 0), sigma) > 0.5).astype(np.uint8)


def jagged(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make a jagged silhouette: 20-60 vertices at strongly varying radii."""
    return _polygon(rng, h, w, int(rng.integers(20, 61)), rng.uniform(0.2, 0.7))


def thin(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make thin structures: 1-3 polylines of 2-6 points, 1.5-6 % of the box's side thick."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        pts = rng.uniform(0, 1, (int(rng.integers(2, 7)), 2)) * [w - 1, h - 1]
        width = int(max(1, rng.uniform(0.015, 0.06) * min(h, w)))
        cv2.polylines(m, [np.round(pts).astype(np.int32)], False, 1, width)
    return m


def holed(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make a smooth body with 1-4 round holes, each centred where the body is thick enough."""
    m = smooth(rng, h, w)
    for _ in range(int(rng.integers(1, 5))):
        d = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        ys, xs = np.nonzero(d >= 3)
        if not ys.size:
            break
        k = int(rng.integers(ys.size))
        r = max(1, int(d[ys[k], xs[k]] * rng.uniform(0.3, 0.7)))
        cv2.circle(m, (int(xs[k]), int(ys[k])), r, 0, -1)
    return m


def articulated(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make a tree of 3-7 capsule limbs, each starting at an earlier joint."""
    m = np.zeros((h, w), np.uint8)
    joints = [np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])]
    for _ in range(int(rng.integers(3, 8))):
        start = joints[int(rng.integers(len(joints)))]
        ang, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5) * min(h, w)
        end = np.clip(start + length * np.array([np.cos(ang), np.sin(ang)]), 0, [w - 1, h - 1])
        width = int(max(1, rng.uniform(0.06, 0.2) * min(h, w)))
        a, b = tuple(int(v) for v in start), tuple(int(v) for v in end)
        cv2.line(m, a, b, 1, width)
        cv2.circle(m, b, max(1, width // 2 + 1), 1, -1)
        joints.append(end)
    return m


def scene_part(rng: Rng, h: int, w: int) -> Anomaly:
    """Cut one car, person, pole, sign, tree or facade piece from a clean scene; recolour it."""
    scene = paint_scene(int(rng.integers(0, 1_000_000)), (max(64, 2 * h), max(128, 2 * w)))
    label = scene['label']
    for cls in rng.permutation(PART_CLASSES):
        n, comp, stats, _ = cv2.connectedComponentsWithStats((label == cls).astype(np.uint8))
        big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 30]
        if big:
            break
    else:
        return _textured(rng, smooth(rng, h, w).astype(bool), h, w)
    i = big[int(rng.integers(len(big)))]
    x, y, bw, bh = (int(v) for v in stats[i, :4])
    rgb = scene['image'][y:y + bh, x:x + bw].astype(np.float32) / 255.0
    mask = comp[y:y + bh, x:x + bw] == i
    hsv_img = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)              # H in degrees, S and V in 0..1
    hsv_img[..., 0] = (hsv_img[..., 0] + rng.uniform(60, 300)) % 360
    hsv_img[..., 1] = np.clip(hsv_img[..., 1] * rng.uniform(0.5, 2.5) + rng.uniform(0, 0.3), 0, 1)
    rgb = cv2.cvtColor(hsv_img, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        rgb = rgb[..., rng.permutation(3)]
    rgb = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return np.clip(rgb, 0, 1).astype(np.float32), mask


def spectral(rng: Rng, h: int, w: int) -> np.ndarray:
    """Make 1/f^a noise (a in 1..2.5) mapped through a ramp of 2-4 natural colours."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amp = f ** -rng.uniform(1.0, 2.5)
    amp[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field = np.fft.irfft2(amp * np.exp(1j * phase), s=(h, w)).astype(np.float32)
    t = (field - field.min()) / max(float(np.ptp(field)), 1e-9) * 0.999
    stops = np.stack([natural_colour(rng) for _ in range(int(rng.integers(2, 5)))])
    pos = t * (len(stops) - 1)
    i = pos.astype(int)
    frac = (pos - i)[..., None]
    return (stops[i] * (1 - frac) + stops[np.minimum(i + 1, len(stops) - 1)] * frac).astype(
        np.float32)


def _textured(rng: Rng, mask: np.ndarray, h: int, w: int) -> Anomaly:
    if rng.random() < 0.7:
        return spectral(rng, h, w), mask
    texture = PLAIN_TEXTURES[int(rng.integers(len(PLAIN_TEXTURES)))]
    return texture(rng, h, w).astype(np.float32), mask


def relief(rng: Rng, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shade as a bulge whose height grows with the distance to the silhouette's edge."""
    d = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    height = np.sqrt(d / max(float(d.max()), 1.0)) * rng.uniform(0.3, 1.5)
    gy, gx = np.gradient(height * min(mask.shape) / 4)
    normal = np.stack([-gx, -gy, np.ones_like(gx)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    gloss = rng.uniform(0.2, 0.8) if rng.random() < 0.5 else 0.0
    return lit(rgb, normal.astype(np.float32), light_direction(rng), rng.uniform(5, 40), gloss)


def photo_noise(rng: Rng, rgb: np.ndarray) -> np.ndarray:
    """Sensor noise, sometimes blur, sometimes JPEG compression (quality 30..90)."""
    out = rgb + rng.uniform(0.0, 0.04) * rng.standard_normal(rgb.shape).astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2))
    out = np.clip(out, 0, 1)
    if rng.random() < 0.3:
        ok, buf = cv2.imencode('.jpg', (out * 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return out.astype(np.float32)


SHAPES: Dict[str, Callable[[Rng, int, int], np.ndarray]] = {
    'smooth': smooth, 'jagged': jagged, 'thin': thin, 'holed': holed, 'articulated': articulated}


def make_varied(rng: Rng, h: int, w: int) -> Anomaly:
    """Make one varied negative: ``(rgb h x w x 3 float32 in [0, 1], mask h x w bool)``."""
    names = list(SHAPES) + ['scene_part']
    name = names[int(rng.integers(len(names)))]
    if name == 'scene_part':
        rgb, mask = scene_part(rng, h, w)
    else:
        rgb, mask = _textured(rng, SHAPES[name](rng, h, w).astype(bool), h, w)
    if not mask.any():
        mask[h // 2, w // 2] = True
    if name != 'scene_part' and rng.random() < 0.7:
        rgb = relief(rng, rgb, mask)
    return photo_noise(rng, rgb), mask
