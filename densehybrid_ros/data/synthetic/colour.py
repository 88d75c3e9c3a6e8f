"""Colour and noise primitives shared by the scene painter and the anomaly generators."""

from typing import List, Sequence, Tuple

import cv2
import numpy as np

Size = Tuple[int, int]
Rng = np.random.Generator


def smooth_noise(rng: Rng, size: Size, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish value noise of feature size ``cell`` pixels (H x W float32)."""
    h, w = size
    gh, gw = max(2, int(h / max(cell, 1.0)) + 2), max(2, int(w / max(cell, 1.0)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def jitter(rng: Rng, rgb: Sequence[float], amount: float) -> np.ndarray:
    """Return ``rgb`` moved by up to +-``amount`` per channel, clipped to [0, 1]."""
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """Convert one HSV colour (each in [0, 1]) to float RGB via OpenCV's 8-bit conversion."""
    pixel = np.array([[[h * 179.0, s * 255.0, v * 255.0]]], np.float32).astype(np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def two_colours(rng: Rng) -> Tuple[np.ndarray, np.ndarray]:
    """Draw a saturated colour and a second one of a clearly different hue."""
    h = rng.random()
    a = hsv(h, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
    b = hsv((h + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0))
    return a, b


def train_colours(rng: Rng, n: int) -> List[np.ndarray]:
    """Colours of any saturation and brightness (greys and earth tones included)."""
    return [hsv(rng.random(), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.1, 1.0))
            for _ in range(n)]


def light_direction(rng: Rng) -> np.ndarray:
    """Draw a unit light direction from above left or right, towards the viewer (y down)."""
    v = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.3), rng.uniform(0.4, 1.0)])
    return v / np.linalg.norm(v)


def lit(albedo: np.ndarray, normal: np.ndarray, light: np.ndarray, shine: float,
        gloss: float = 0.6) -> np.ndarray:
    """Ambient + Lambert + ``gloss`` x Phong highlight (viewer along +z); unit normals HxWx3."""
    lam = np.clip(normal @ light, 0, None)[..., None]
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normal @ half, 0, None)[..., None] ** shine
    return np.clip(albedo * (0.25 + 0.75 * lam) + gloss * spec, 0, 1).astype(np.float32)
