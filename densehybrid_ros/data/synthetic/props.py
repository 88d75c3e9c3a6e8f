"""Street props drawn as billboards on the ground: poles, signs, trees, people, cars, anomalies.

A mixin of ``_Scene`` (scene.py): it uses the scene's ``rng``, ``project``, noise fields and
canvas, and draws in the order the random numbers are drawn (that order fixes every seed's scene).
"""

from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from .canvas import _draw_mask, CAR, IGNORE, PERSON, POLE, SIGN, VEGETATION
from .colour import hsv, jitter
from .families import make_anomaly


class _Props:
    """Prop drawing for ``_Scene``; see the module docstring."""

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
        grey = jitter(rng, (0.5, 0.5, 0.52), 0.1)
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
            self.c.paint(m, jitter(rng, colour, 0.08), SIGN)

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
        self.c.paint(m, jitter(rng, (0.3, 0.22, 0.15), 0.05), VEGETATION)
        self._vegetation(crown)

    def _person(self, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        height = rng.uniform(1.0, 1.25) * s
        w = height * rng.uniform(0.22, 0.3)
        head = height * 0.13
        skin = jitter(rng, rng.choice([(0.85, 0.7, 0.6), (0.55, 0.4, 0.3), (0.7, 0.55, 0.4)]),
                      0.05)
        shirt = hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 0.9))
        trousers = hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.5))
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
        paint = jitter(rng, rng.choice([(0.9, 0.9, 0.9), (0.1, 0.1, 0.12), (0.5, 0.5, 0.52),
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
        self.c.paint(m, jitter(rng, (0.15, 0.18, 0.22), 0.04), CAR)
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
