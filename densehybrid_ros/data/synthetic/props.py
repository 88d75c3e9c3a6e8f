"""Street props drawn as billboards on the ground: poles, signs, trees, people, cars, anomalies.

Each prop kind is a frozen record of its world-unit sizes and colours (``Pole``, ``Tree``,
``Person``, ``Car``), a ``sample_*`` function drawing one from an rng, and a ``draw_*`` function
painting it on any ``Canvas`` as a billboard whose ground contact projects to pixel ``(u, v)`` at
``s`` pixels per world unit (continuous coordinates: pixel ``i`` spans ``[i, i + 1)``). A scene
samples each prop just before drawing it, far to near (that order of random numbers fixes every
seed's scene); a sequence world (world.py) samples them once and draws them in every frame.

``Props`` is a mixin of ``Scene`` (scene.py): it uses the scene's ``rng``, ``project``, noise
fields and canvas.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Tuple

import cv2
import numpy as np

from .canvas import draw_mask, CAR, IGNORE, PERSON, POLE, SIGN, VEGETATION
from .colour import hsv, jitter, Rng

# One anomaly of a family: (rng, h, w) -> (rgb h x w x 3 float32 in [0, 1], mask h x w bool).
Anomalies = Callable[[Rng, int, int], Tuple[np.ndarray, np.ndarray]]

SIGN_COLOURS = [(0.8, 0.1, 0.1), (0.1, 0.3, 0.75), (0.9, 0.8, 0.1), (0.92, 0.92, 0.92)]
SKIN_COLOURS = [(0.85, 0.7, 0.6), (0.55, 0.4, 0.3), (0.7, 0.55, 0.4)]
CAR_COLOURS = [(0.9, 0.9, 0.9), (0.1, 0.1, 0.12), (0.5, 0.5, 0.52), (0.6, 0.1, 0.1),
               (0.1, 0.2, 0.5), (0.75, 0.75, 0.78), (0.15, 0.3, 0.2)]


class Canvas(Protocol):
    """What the ``draw_*`` functions paint on: ``h`` x ``w`` pixels and a ``paint`` method."""

    h: int
    w: int

    def paint(self, mask: np.ndarray, colour: np.ndarray, label: int, anomaly: int = 0,
              offset: Tuple[int, int] = (0, 0)) -> None:
        """Paint ``colour`` with ``label`` where the h x w bool ``mask`` is set."""


@dataclass(frozen=True)
class Sign:
    """A sign on a pole: radius (world units), centre ``drop`` radii below the pole's top."""

    radius: float
    drop: float
    shape: int                  # 0 disc, 1 square, 2 triangle
    colour: np.ndarray


@dataclass(frozen=True)
class Pole:
    """A pole of ``width`` x ``height`` world units, optionally carrying a sign."""

    width: float
    height: float
    grey: np.ndarray
    sign: Optional[Sign]


@dataclass(frozen=True)
class Tree:
    """A tree: trunk height and thickness, crown radius (world units), bark and leaf colours."""

    trunk: float
    thickness: float
    crown: float
    bark: np.ndarray
    green: np.ndarray


@dataclass(frozen=True)
class Person:
    """A person ``height`` world units tall, ``build`` (width / height) wide, three colours."""

    height: float
    build: float
    skin: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray


@dataclass(frozen=True)
class Car:
    """A car seen from behind: ``width`` x ``height`` world units, paint and glass colours."""

    width: float
    height: float
    paint: np.ndarray
    glass: np.ndarray


def sample_pole(rng: Rng) -> Pole:
    """Draw one pole (and a sign on 60 % of them)."""
    width = rng.uniform(0.1, 0.18)
    height = rng.uniform(3.5, 6.5)
    grey = jitter(rng, (0.5, 0.5, 0.52), 0.1)
    sign = None
    if rng.random() < 0.6:
        radius = rng.uniform(0.3, 0.5)
        drop = rng.uniform(1.0, 2.5)
        shape = int(rng.integers(3))
        colour = jitter(rng, rng.choice(SIGN_COLOURS), 0.08)
        sign = Sign(radius, drop, shape, colour)
    return Pole(width, height, grey, sign)


def draw_pole(canvas: Canvas, pole: Pole, u: float, v: float, s: float) -> None:
    """Paint a pole standing at ``(u, v)``, ``s`` pixels per world unit."""
    width = max(1.0, pole.width * s)
    height = pole.height * s
    x0 = int(round(u - width / 2))
    m = draw_mask(canvas.h, canvas.w, lambda a: cv2.rectangle(
        a, (x0, int(v - height)), (x0 + int(round(width)) - 1, int(v)), 1, -1))
    canvas.paint(m, pole.grey, POLE)
    if pole.sign is None:
        return
    r = pole.sign.radius * s
    cy = v - height + r * pole.sign.drop
    if pole.sign.shape == 0:
        draw = (lambda a: cv2.circle(a, (int(u), int(cy)), max(1, int(r)), 1, -1))
    elif pole.sign.shape == 1:
        draw = (lambda a: cv2.rectangle(a, (int(u - r), int(cy - r)),
                                        (int(u + r), int(cy + r)), 1, -1))
    else:
        tri = np.array([[u - r, cy + r * 0.8], [u + r, cy + r * 0.8], [u, cy - r]])
        draw = (lambda a: cv2.fillPoly(a, [np.round(tri).astype(np.int32)], 1))
    canvas.paint(draw_mask(canvas.h, canvas.w, draw), pole.sign.colour, SIGN)


def sample_tree(rng: Rng) -> Tree:
    """Draw one tree."""
    trunk = rng.uniform(1.5, 3.0)
    thickness = rng.uniform(0.15, 0.3)
    crown = rng.uniform(1.0, 2.5)
    bark = jitter(rng, (0.3, 0.22, 0.15), 0.05)
    green = jitter(rng, (0.25, 0.38, 0.15), 0.06)
    return Tree(trunk, thickness, crown, bark, green)


def tree_box(tree: Tree, u: float, v: float, s: float) -> Tuple[int, int, int, int]:
    """Pixel rows and columns ``(y0, y1, x0, x1)``, ends exclusive, that ``draw_tree`` paints."""
    trunk_h, r = tree.trunk * s, tree.crown * s
    half = max(r, tree.thickness * s) + 2
    return (int(np.floor(v - trunk_h - r * 1.9)) - 2, int(v) + 2,
            int(np.floor(u - half)), int(np.ceil(u + half)) + 1)


def draw_tree(canvas: Canvas, tree: Tree, u: float, v: float, s: float, n2b: np.ndarray,
              n8: np.ndarray) -> None:
    """Paint a tree at ``(u, v)``; ``n2b``, ``n8``: h x w noise fields texturing the crown."""
    trunk_h = tree.trunk * s
    tw = max(1, int(tree.thickness * s))
    r = tree.crown * s
    m = draw_mask(canvas.h, canvas.w, lambda a: cv2.rectangle(
        a, (int(u - tw / 2), int(v - trunk_h - r * 0.3)), (int(u + tw / 2), int(v)), 1, -1))
    crown = draw_mask(canvas.h, canvas.w, lambda a: cv2.ellipse(
        a, (int(u), int(v - trunk_h - r * 0.8)), (max(1, int(r)), max(1, int(r * 1.1))),
        0, 0, 360, 1, -1))
    crown &= n8 > -0.8                                   # ragged foliage
    canvas.paint(m, tree.bark, VEGETATION)
    bx, by, bw, bh = cv2.boundingRect(crown.astype(np.uint8))
    if bw == 0 or bh == 0:
        return
    box = slice(by, by + bh), slice(bx, bx + bw)        # colour only the crown's box
    colour = tree.green * (1 + 0.35 * n2b[box][..., None]) + 0.05 * n8[box][..., None]
    canvas.paint(crown[box], colour, VEGETATION, offset=(by, bx))


def sample_person(rng: Rng) -> Person:
    """Draw one person."""
    height = rng.uniform(1.0, 1.25)
    build = rng.uniform(0.22, 0.3)
    skin = jitter(rng, rng.choice(SKIN_COLOURS), 0.05)
    shirt = hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 0.9))
    trousers = hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.5))
    return Person(height, build, skin, shirt, trousers)


def draw_person(canvas: Canvas, person: Person, u: float, v: float, s: float) -> None:
    """Paint a person standing at ``(u, v)``."""
    height = person.height * s
    w = height * person.build
    head = height * 0.13
    legs = draw_mask(canvas.h, canvas.w, lambda a: cv2.fillPoly(a, [np.round(np.array([
        [u - w * 0.4, v], [u - w * 0.05, v - height * 0.45], [u + w * 0.05, v - height * 0.45],
        [u + w * 0.4, v], [u + w * 0.15, v], [u, v - height * 0.3], [u - w * 0.15, v]])
    ).astype(np.int32)], 1))
    torso = draw_mask(canvas.h, canvas.w, lambda a: cv2.ellipse(
        a, (int(u), int(v - height * 0.62)), (max(1, int(w / 2)), max(1, int(height * 0.2))),
        0, 0, 360, 1, -1))
    face = draw_mask(canvas.h, canvas.w, lambda a: cv2.circle(
        a, (int(u), int(v - height + head)), max(1, int(head)), 1, -1))
    canvas.paint(legs, person.trousers, PERSON)
    canvas.paint(torso, person.shirt, PERSON)
    canvas.paint(face, person.skin, PERSON)


def sample_car(rng: Rng) -> Car:
    """Draw one car."""
    width = rng.uniform(1.1, 1.35)
    height = rng.uniform(0.85, 1.1)
    paint = jitter(rng, rng.choice(CAR_COLOURS), 0.05)
    glass = jitter(rng, (0.15, 0.18, 0.22), 0.04)
    return Car(width, height, paint, glass)


def draw_car(canvas: Canvas, car: Car, u: float, v: float, s: float) -> None:
    """Paint a car standing at ``(u, v)``."""
    w = car.width * s
    h = car.height * s
    body = np.array([[u - w / 2, v - h * 0.1], [u + w / 2, v - h * 0.1],
                     [u + w / 2, v - h * 0.55], [u + w * 0.36, v - h],
                     [u - w * 0.36, v - h], [u - w / 2, v - h * 0.55]])
    m = draw_mask(canvas.h, canvas.w, lambda a: cv2.fillPoly(
        a, [np.round(body).astype(np.int32)], 1))
    canvas.paint(m, car.paint, CAR)
    window = np.array([[u - w * 0.4, v - h * 0.58], [u + w * 0.4, v - h * 0.58],
                       [u + w * 0.32, v - h * 0.93], [u - w * 0.32, v - h * 0.93]])
    m = draw_mask(canvas.h, canvas.w, lambda a: cv2.fillPoly(
        a, [np.round(window).astype(np.int32)], 1))
    canvas.paint(m, car.glass, CAR)
    for sx in (-1, 1):
        wheel = draw_mask(canvas.h, canvas.w, lambda a: cv2.rectangle(
            a, (int(u + sx * w * 0.42 - w * 0.08), int(v - h * 0.15)),
            (int(u + sx * w * 0.42 + w * 0.08), int(v)), 1, -1))
        canvas.paint(wheel, np.array([0.05, 0.05, 0.05], np.float32), CAR)
        light = draw_mask(canvas.h, canvas.w, lambda a: cv2.rectangle(
            a, (int(u + sx * w * 0.4 - w * 0.06), int(v - h * 0.5)),
            (int(u + sx * w * 0.4 + w * 0.06), int(v - h * 0.42)), 1, -1))
        canvas.paint(light, np.array([0.8, 0.1, 0.05], np.float32), CAR)


class Props:
    """Prop drawing for ``Scene``; see the module docstring."""

    def objects(self, anomaly: Optional[Anomalies], count: int) -> None:
        """Poles, signs, trees, cars, people and ``count`` anomalies, drawn far to near."""
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
        if anomaly is not None:
            for _ in range(count):
                z = rng.uniform(3, 30)
                x = rng.uniform(self.road[0] + 0.3, self.road[1] - 0.3)
                items.append((z, lambda x=x, z=z: self._anomaly(anomaly, x, z)))
        for _, draw in sorted(items, key=lambda it: -it[0]):
            draw()

    def _pole(self, x: float, z: float) -> None:
        draw_pole(self.c, sample_pole(self.rng), *self.project(x, z))

    def _tree(self, x: float, z: float) -> None:
        draw_tree(self.c, sample_tree(self.rng), *self.project(x, z), self.n2b, self.n8)

    def _person(self, x: float, z: float) -> None:
        draw_person(self.c, sample_person(self.rng), *self.project(x, z))

    def _car(self, x: float, z: float) -> None:
        draw_car(self.c, sample_car(self.rng), *self.project(x, z))

    def _anomaly(self, anomaly: Anomalies, x: float, z: float) -> None:
        rng = self.rng
        u, v, s = self.project(x, z)
        size = rng.uniform(0.35, 1.6) * s
        h = int(max(4, size * rng.uniform(0.6, 1.4)))
        w = int(max(4, size * rng.uniform(0.6, 1.4)))
        rgb, mask = anomaly(rng, h, w)
        self.c.paint(mask, rgb, IGNORE, 1, offset=(int(v - h + h * 0.05), int(u - w / 2)))
