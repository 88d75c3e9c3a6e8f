"""Label ids of the synthetic world and the canvas that paints image, labels and anomalies."""

from typing import Callable, Tuple

import cv2
import numpy as np

from ...core.classes import IGNORE_ID as IGNORE

ROAD, SIDEWALK, BUILDING, POLE, SIGN = 0, 1, 2, 5, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13
SCENE_CLASSES = (ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR)


class SceneCanvas:
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
        self.write((slice(ya, yb), slice(xa, xb)), m, colour, label, anomaly)

    def write(self, region: Tuple[slice, slice], m: np.ndarray, colour: np.ndarray, label: int,
              anomaly: int) -> None:
        """Write one clipped paint: ``m`` (bool) inside ``region``; ``colour`` per pixel or RGB."""
        self.image[region][m] = colour
        self.label[region][m] = label
        self.anomaly[region][m] = anomaly


def draw_mask(h: int, w: int, draw: Callable[[np.ndarray], None]) -> np.ndarray:
    """Return the bool mask that ``draw`` paints into an h x w zero image."""
    m = np.zeros((h, w), np.uint8)
    draw(m)
    return m.astype(bool)
