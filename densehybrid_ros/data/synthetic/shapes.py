"""Anomaly silhouettes: ``shape(rng, h, w) -> h x w uint8 mask`` (1 inside)."""

import cv2
import numpy as np

from .colour import Rng


def shape_ellipse(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw an ellipse, slightly rotated."""
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)),
                float(rng.uniform(-20, 20)), 0, 360, 1, -1)
    return m


def shape_box(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a rotated box."""
    m = np.zeros((h, w), np.uint8)
    cx, cy = w / 2, h / 2
    box = cv2.boxPoints(((cx, cy), (w * rng.uniform(0.6, 0.95), h * rng.uniform(0.6, 0.95)),
                         float(rng.uniform(-25, 25))))
    cv2.fillPoly(m, [np.round(box).astype(np.int32)], 1)
    return m


def shape_ngon(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a regular polygon of 3 to 7 sides."""
    n = int(rng.integers(3, 8))
    ang = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
    pts = np.stack([w / 2 + (w / 2 - 1) * np.cos(ang), h / 2 + (h / 2 - 1) * np.sin(ang)], 1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def shape_star(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a star."""
    n = int(rng.integers(4, 10))
    inner = rng.uniform(0.3, 0.6)
    ang = rng.uniform(0, 2 * np.pi) + np.arange(2 * n) * np.pi / n
    return radial_polygon(h, w, ang, np.where(np.arange(2 * n) % 2 == 0, 1.0, inner))


def radial_polygon(h: int, w: int, ang: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """Fill the polygon with vertices at angles ``ang`` and radii ``rad`` (1: touches the box)."""
    pts = np.stack([w / 2 + (w / 2 - 1) * rad * np.cos(ang),
                    h / 2 + (h / 2 - 1) * rad * np.sin(ang)], 1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def shape_blob(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a smooth random blob."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2)
    theta, r = np.arctan2(dy, dx), np.hypot(dx, dy)
    edge = 0.7 * np.ones_like(theta)
    for k in range(2, 6):
        edge += rng.uniform(0.0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (r < np.clip(edge, 0.25, 0.98)).astype(np.uint8)


def shape_ring(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a ring (a disc with a hole)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2))
    m = (r < 0.97) & (r > rng.uniform(0.35, 0.6))
    if rng.random() < 0.5:      # a crescent: bite a disc out of one side
        ox, oy = rng.uniform(-0.5, 0.5, 2)
        m &= np.hypot((xs - w / 2) / (w / 2) - ox, (ys - h / 2) / (h / 2) - oy) > 0.6
        m |= (r < 0.97) & (np.hypot((xs - w / 2) / (w / 2) + ox, (ys - h / 2) / (h / 2) + oy)
                           < 0.3)
    return m.astype(np.uint8)


def shape_cluster(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a cluster of overlapping discs."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        r = max(1, int(min(h, w) * rng.uniform(0.15, 0.3)))
        c = (int(rng.uniform(r, max(r + 1, w - r))), int(rng.uniform(r, max(r + 1, h - r))))
        cv2.circle(m, c, r, 1, -1)
    return m


def shape_hull(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw the convex hull of random points."""
    pts = rng.uniform(0, 1, (int(rng.integers(5, 13)), 2)) * [w - 1, h - 1]
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [cv2.convexHull(np.round(pts).astype(np.int32))], 1)
    return m


def shape_half_disc(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a half disc standing on its flat side."""
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h - 1), (max(1, w // 2 - 1), max(1, h - 2)), 0, 180, 360, 1, -1)
    return m


def shape_rounded_box(rng: Rng, h: int, w: int) -> np.ndarray:
    """Draw a box with rounded corners."""
    m = np.zeros((h, w), np.uint8)
    r = max(1, int(min(h, w) * rng.uniform(0.1, 0.3)))
    cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 1, -1)
    return m
