"""Where and how large a pasted negative lands in a training crop.

The default (``Placement()``) is the paper's: a uniform scale and a uniform position. The scene
preset (``Placement.scene()``) draws the scale log-uniformly (so a patch of a few pixels is as
likely as one of a third of the crop per octave of size), stands the patch on a road pixel 60 %
of the time (its bottom edge on the road, as an object lying on it), and 30 % of the time lets
poles, signs, people and vehicles already in the crop stay in front of it (partly occluded).
Patches stood on the road often touch cars and people there.
"""

from dataclasses import dataclass
import math
from typing import Optional, Tuple

import numpy as np

ROAD_ID = 0
# Cityscapes train ids that occlude: pole, traffic light, traffic sign, person, rider, car,
# truck, bus, train, motorcycle, bicycle (the synthetic world uses 5, 7, 11, 13 of them).
OCCLUDERS = (5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18)


@dataclass(frozen=True)
class Placement:
    """Scale law, road probability and occlusion probability of pasted negatives."""

    log_scale: bool = False
    road: float = 0.0
    occlusion: float = 0.0

    @classmethod
    def scene(cls) -> 'Placement':
        """Log-uniform scale, on the road 60 % of the time, behind objects 30 % of the time."""
        return cls(log_scale=True, road=0.6, occlusion=0.3)

    def draw_scale(self, rng: np.random.Generator, scale: Tuple[float, float]) -> float:
        """Patch size as a fraction of the crop's shorter side."""
        if self.log_scale:
            return float(math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1]))))
        return float(rng.uniform(*scale))

    def draw_position(self, rng: np.random.Generator, size: Tuple[int, int],
                      label: Optional[np.ndarray], ph: int, pw: int) -> Tuple[int, int]:
        """Top-left corner (y, x) of a ph x pw patch inside a crop of ``size`` (h, w)."""
        h, w = size
        if label is not None and self.road > 0 and rng.random() < self.road:
            ys, xs = np.nonzero(label == ROAD_ID)
            if ys.size:
                k = int(rng.integers(ys.size))
                sink = int(rng.uniform(0.0, 0.1) * ph)       # the base sits slightly into the road
                y = min(max(int(ys[k]) - ph + 1 + sink, 0), h - ph)
                x = min(max(int(xs[k]) - pw // 2, 0), w - pw)
                return y, x
        return int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
