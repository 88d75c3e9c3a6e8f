"""A random street world: the street, its props and its obstacles, laid out from a seed.

``sample_world`` lays out what ``world.World`` renders: scene.py's street (road, sidewalks,
terrain, fronts) along ``Z``, props per block of street as scene.py places them, and
``count`` anomaly obstacles of a family standing on the road (``off_road`` more beside it),
each with a fixed look drawn once.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .colour import jitter, Rng
from .families import check_family, make_anomaly
from .props import sample_car, sample_person, sample_pole, sample_tree
from .scene import WALLS
from .world import (BLOCK, Fronts, noise_tile, Obstacle, OBSTACLE_MAX_PX, OBSTACLE_PPU, Prop,
                    Spec, Street, TILE_FEATURES, World)


def _fronts(rng: Rng, x: float, start: float, end: float) -> Fronts:
    """Draw one side's fronts from ``start`` to ``end`` along Z, as scene.py draws them."""
    edges = [start]
    while edges[-1] < end:
        edges.append(edges[-1] + rng.uniform(4, 25))
    n = len(edges) - 1
    kind = rng.random(n)
    height = np.where(kind > 0.35, rng.uniform(2.0, 14.0, n), rng.uniform(1.0, 3.5, n))
    walls = np.stack([jitter(rng, WALLS[i], 0.07) for i in rng.integers(len(WALLS), size=n)])
    greens = np.stack([jitter(rng, (0.25, 0.38, 0.15), 0.06) for _ in range(n)])
    spacing = np.stack([rng.uniform(1.5, 3.0, n), rng.uniform(1.8, 2.6, n),
                        rng.uniform(0.35, 0.6, n)], 1)
    return Fronts(x, np.array(edges), kind, height, walls.astype(np.float32),
                  greens.astype(np.float32), spacing)


def sample_street(rng: Rng, start: float, end: float) -> Street:
    """Draw a street (layout and colours, as scene.py draws them) from ``start`` to ``end``."""
    road = (-rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
    walk = (rng.uniform(0.8, 2.5), rng.uniform(0.8, 2.5))
    terrain = tuple(rng.uniform(0.5, 5.0) if rng.random() < 0.45 else 0.0 for _ in range(2))
    top = jitter(rng, (0.35, 0.55, 0.85) if rng.random() < 0.7 else (0.7, 0.72, 0.75), 0.1)
    bottom = jitter(rng, (0.75, 0.82, 0.9), 0.08)
    asphalt = jitter(rng, (0.33, 0.33, 0.35), 0.06)
    width = rng.uniform(0.1, 0.16)
    lanes = [0.0] if rng.random() < 0.7 else []
    lanes += [road[0] + 0.3, road[1] - 0.3] if rng.random() < 0.6 else []
    dash = rng.uniform(2.0, 5.0)
    phase = rng.uniform(0, dash)
    marking = jitter(rng, (0.85, 0.85, 0.8), 0.08)
    slab = rng.uniform(0.5, 1.2)
    paving = jitter(rng, (0.6, 0.55, 0.58), 0.08)
    grass = jitter(rng, (0.5, 0.58, 0.3), 0.08)
    left = road[0] - walk[0] - terrain[0]
    right = road[1] + walk[1] + terrain[1]
    fronts = tuple(_fronts(rng, x, start - 20, end + 600) for x in (left, right))
    shadow = (rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.5)) if rng.random() < 0.5 else None
    return Street(road, walk, terrain, asphalt, marking, width, tuple(lanes), dash, phase, paving,
                  slab, grass, (top, bottom), fronts, shadow)


class _Layout:
    """Footprints placed so far: where a new object may stand."""

    def __init__(self, path: Tuple[np.ndarray, np.ndarray]) -> None:
        self.path = path
        self.taken: List[Tuple[float, float, float]] = []      # x, z, half width
        self.obstacles: List[Tuple[float, float, float]] = []

    def clear(self, x: float, z: float, half: float, clearance: Optional[float] = None,
              obstacle: bool = False, band: bool = True) -> bool:
        """Whether ``(x, z)`` is free, ``clearance`` off the path, hiding no obstacle.

        A prop hides an obstacle when it stands nearer the start within the obstacle's lateral
        band (give or take 0.3 units); the camera then sees the obstacle only from the side.
        With ``band``, a new obstacle shares no other obstacle's band, nearer or farther.
        """
        if clearance is not None:
            px = float(np.interp(z, self.path[0], self.path[1]))
            if abs(x - px) - half < clearance:
                return False
        margin = 0.0 if obstacle else 0.3
        if band and any(abs(x - ox) < half + oh + margin and (z < oz or obstacle)
                        for ox, oz, oh in self.obstacles):
            return False
        return all(abs(x - ox) >= half + oh + 0.2 or abs(z - oz) >= 1.5
                   for ox, oz, oh in self.taken)

    def take(self, x: float, z: float, half: float, obstacle: bool = False) -> None:
        """Reserve a footprint."""
        self.taken.append((x, z, half))
        if obstacle:
            self.obstacles.append((x, z, half))


def _obstacle_look(seed: int, index: int, family: str, height: float,
                   width: float) -> Tuple[np.ndarray, np.ndarray, float]:
    """Draw an obstacle's texture (own rng per obstacle), cropped to its mask; px per unit."""
    ppu = min(OBSTACLE_PPU, OBSTACLE_MAX_PX / max(height, width))
    rng = np.random.default_rng([seed, 1410, 1, index])
    rgb, mask = make_anomaly(rng, family, max(8, int(round(height * ppu))),
                             max(8, int(round(width * ppu))))
    ys, xs = np.nonzero(mask)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    return np.ascontiguousarray(rgb[box], np.float32), mask[box].copy(), ppu


def sample_world(seed: int, path: Tuple[Sequence[float], Sequence[float]],
                 family: Optional[str] = None, count: int = 0,
                 ranges: Tuple[float, float] = (30.0, 60.0), off_road: int = 0,
                 clearance: float = 0.4) -> World:
    """Draw a world along the camera path ``(z, x)`` (z increasing), deterministic per seed.

    ``count`` obstacles of ``family`` stand on the road, their Z spread evenly over ``ranges``
    ahead of the path's start, at least ``clearance`` beside the path (so the camera passes
    them), each in a lateral band of its own where it finds one in 50 tries (so none hides
    another), else anywhere free; one that finds no free place in 100 tries is left out.
    ``off_road`` more stand on the sidewalks or terrain where free. Props are placed per
    80-unit block as scene.py places them; cars and people on the road keep off the path, and
    no prop stands in front of an obstacle in its lateral band.
    """
    if family is not None:
        check_family(family)
    pz, px = np.asarray(path[0], float), np.asarray(path[1], float)
    start, end = float(pz[0]), float(pz[-1])
    rng = np.random.default_rng([int(seed), 1410])
    st = sample_street(rng, start, end)
    layout = _Layout((pz, px))
    places = []                                             # x, z, width, height, on road
    lo, hi = ranges
    for k in range(count if family is not None else 0):
        z = start + lo + (hi - lo) * (k + rng.uniform(0.1, 0.9)) / count
        for attempt in range(100):               # in a band of its own if it can be
            size = rng.uniform(0.35, 1.6)
            hgt, wid = size * rng.uniform(0.6, 1.4), size * rng.uniform(0.6, 1.4)
            x = rng.uniform(st.road[0] + 0.2, st.road[1] - 0.2)
            if layout.clear(x, z, wid / 2, clearance, obstacle=True, band=attempt < 50):
                layout.take(x, z, wid / 2, obstacle=True)
                places.append((x, z, wid, hgt, True))
                break
    for _ in range(off_road if family is not None else 0):
        side = int(rng.integers(2))
        room = st.walk[side] + st.terrain[side]
        z = start + rng.uniform(lo, hi)
        size = rng.uniform(0.35, 1.6)
        hgt, wid = size * rng.uniform(0.6, 1.4), size * rng.uniform(0.6, 1.4)
        x = st.road[side] + (1 if side else -1) * rng.uniform(0.2, max(room - 0.2, 0.3))
        if layout.clear(x, z, wid / 2, obstacle=True):
            layout.take(x, z, wid / 2, obstacle=True)
            places.append((x, z, wid, hgt, False))
    obstacles = []
    for i, (x, z, wid, hgt, on_road) in enumerate(places):
        rgb, mask, ppu = _obstacle_look(seed, i, family, hgt, wid)
        obstacles.append(Obstacle(i + 1, x, z, mask.shape[1] / ppu, mask.shape[0] / ppu,
                                  on_road, rgb, mask))
    props = _props(rng, st, layout, start, end)
    tiles = {name: noise_tile(rng, 3.0) for name in TILE_FEATURES}
    return World(st, tuple(props), tuple(obstacles), tiles)


def _props(rng: Rng, st: Street, layout: _Layout, start: float, end: float) -> List[Prop]:
    """Poles, trees and people beside the road, cars and a few people on it, per block."""
    props: List[Prop] = []

    def put(spec: Spec, x: float, z: float) -> None:
        props.append(Prop(spec, x, z, (float(rng.uniform(0, 100)), float(rng.uniform(0, 100)))))

    b0 = start + 3
    while b0 < end + BLOCK:
        for side in (0, 1):
            sign = 1 if side else -1
            edge = st.road[side] + sign * 0.3
            for _ in range(int(rng.integers(1, 5))):
                pole, z = sample_pole(rng), b0 + rng.uniform(0, BLOCK)
                if layout.clear(edge, z, 0.1):
                    put(pole, edge, z)
            for _ in range(int(rng.integers(0, 4))):
                z = b0 + rng.uniform(1, BLOCK)
                x = edge + sign * rng.uniform(0.2, st.walk[side])
                tree = sample_tree(rng)
                if layout.clear(x, z, tree.thickness / 2):
                    put(tree, x, z)
            for _ in range(int(rng.integers(0, 4))):
                z = b0 + rng.uniform(0, BLOCK)
                x = st.road[side] + sign * rng.uniform(0.3, st.walk[side])
                person = sample_person(rng)
                if layout.clear(x, z, 0.2):
                    put(person, x, z)
        for _ in range(int(rng.integers(0, 6))):
            car = sample_car(rng)
            for _ in range(10):
                z = b0 + rng.uniform(1, BLOCK)
                x = rng.uniform(st.road[0] + 0.7, st.road[1] - 0.7)
                if layout.clear(x, z, car.width / 2, 0.6):
                    layout.take(x, z, car.width / 2)
                    put(car, x, z)
                    break
        if rng.random() < 0.15:
            person = sample_person(rng)
            z = b0 + rng.uniform(0, BLOCK)
            x = rng.uniform(st.road[0], st.road[1])
            if layout.clear(x, z, 0.2, 0.6):
                layout.take(x, z, 0.2)
                put(person, x, z)
        b0 += BLOCK
    return props
