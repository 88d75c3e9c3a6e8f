"""Colour maps for labels and scores, and overlays (numpy and OpenCV only).

Every function is a table lookup or one OpenCV call over the whole image: no per-pixel Python.
The heatmap range is given, never taken per frame; ``outputs.py`` holds the one rule choosing it.
"""

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .classes import UNKNOWN_ID

UNKNOWN_COLOR = (255, 255, 255)    # open-set 'unknown' (UNKNOWN_ID): white, in no class palette


def label_lut(palette: np.ndarray, unknown_color: Sequence[int] = UNKNOWN_COLOR) -> np.ndarray:
    """256 x 3 uint8 table: palette rows for class ids, ``unknown_color`` at UNKNOWN_ID."""
    palette = np.asarray(palette, dtype=np.uint8)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) > 255:
        raise ValueError(f'palette must be K x 3 with K <= 255, got {palette.shape}')
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:len(palette)] = palette
    lut[UNKNOWN_ID] = unknown_color
    return lut


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """H x W uint8 ids -> H x W x 3 uint8 RGB through a 256 x 3 table from :func:`label_lut`."""
    # cv2.LUT on a 3-channel copy of the ids is several times faster than numpy fancy indexing.
    return cv2.LUT(cv2.merge([labels, labels, labels]), lut.reshape(256, 1, 3))


def _heat_lut(colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB).reshape(256, 3)


HEAT_LUT = _heat_lut()


def score_to_uint8(score: np.ndarray, score_range: Tuple[float, float]) -> np.ndarray:
    """Map scores linearly from the fixed ``(low, high)`` range onto 0..255 (clipped)."""
    low, high = float(score_range[0]), float(score_range[1])
    if not high > low:
        raise ValueError(f'heatmap range must have high > low, got {score_range}')
    scale = 255.0 / (high - low)
    # convertScaleAbs would fold negatives; do the affine map in float32 then saturate.
    scaled = cv2.multiply(cv2.subtract(score.astype(np.float32, copy=False), low), scale)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def heatmap(score: np.ndarray, score_range: Tuple[float, float],
            lut: np.ndarray = HEAT_LUT) -> np.ndarray:
    """H x W float scores -> H x W x 3 uint8 RGB heatmap over a fixed range (inferno)."""
    return colorize(score_to_uint8(score, score_range), lut)


def overlay(image: np.ndarray, color: np.ndarray, alpha: float,
            mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Blend ``color`` over ``image`` with weight ``alpha`` (only where ``mask``, if given)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    blended = cv2.addWeighted(color, alpha, image, 1.0 - alpha, 0.0)
    if mask is None:
        return blended
    out = image.copy()
    out[mask] = blended[mask]
    return out
