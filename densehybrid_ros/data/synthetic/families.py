"""Anomaly families: named generators ``(rng, h, w) -> (rgb h x w x 3 float32, mask bool)``.

``'train'`` and ``'eval'`` pair a random silhouette from ``shapes`` with a random texture from
``textures`` (``ANOMALY_FAMILIES`` lists both parts, disjoint between the two). Every family is
either for training (``TRAINING_FAMILIES``: pasted as negatives) or held out
(``HELD_OUT_FAMILIES``: only ever in evaluation
scenes), so evaluation measures generalisation to unseen anomaly types.
"""

from functools import partial
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .colour import Rng, Size
from .heldout import FAMILIES as HELD_OUT
from .scene import paint_scene
from .shapes import (shape_blob, shape_box, shape_cluster, shape_ellipse, shape_half_disc,
                     shape_hull, shape_ngon, shape_ring, shape_rounded_box, shape_star)
from .textures import (tex_bricks, tex_checker, tex_dots, tex_gradient, tex_hue_sweep,
                       tex_mosaic, tex_noise, tex_plaid, tex_rings, tex_solid, tex_stripes,
                       tex_zigzag)
from .varied import make_varied

Shape = Callable[[Rng, int, int], np.ndarray]
Generator = Callable[[Rng, int, int], Tuple[np.ndarray, np.ndarray]]
ANOMALY_FAMILIES: Dict[str, Dict[str, Dict[str, Shape]]] = {
    # Training negatives: convex shapes; periodic, flat, tiled or linear-gradient textures.
    'train': {
        'shapes': {'ellipse': shape_ellipse, 'box': shape_box, 'ngon': shape_ngon,
                   'hull': shape_hull, 'half_disc': shape_half_disc,
                   'rounded_box': shape_rounded_box},
        'textures': {'stripes': tex_stripes, 'checker': tex_checker,
                     'gradient': tex_gradient, 'plaid': tex_plaid, 'solid': tex_solid,
                     'zigzag': tex_zigzag, 'bricks': tex_bricks, 'mosaic': tex_mosaic},
    },
    # Evaluation only: concave or holed shapes, dotted, noisy, ringed or hue-sweep textures.
    'eval': {
        'shapes': {'star': shape_star, 'blob': shape_blob, 'ring': shape_ring,
                   'cluster': shape_cluster},
        'textures': {'dots': tex_dots, 'noise': tex_noise, 'rings': tex_rings,
                     'hue_sweep': tex_hue_sweep},
    },
}


def _composite(name: str) -> Generator:
    """Make the family drawing one shape and one texture of ``ANOMALY_FAMILIES[name]``."""
    fam = ANOMALY_FAMILIES[name]

    def generate(rng: Rng, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        shape = list(fam['shapes'].values())[int(rng.integers(len(fam['shapes'])))]
        texture = list(fam['textures'].values())[int(rng.integers(len(fam['textures'])))]
        mask = shape(rng, h, w).astype(bool)
        if not mask.any():
            mask[h // 2, w // 2] = True
        rgb = texture(rng, h, w).astype(np.float32)
        shade = np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]   # lit from above
        return np.clip(rgb * shade, 0, 1), mask
    generate.__name__ = f'composite_{name}'
    return generate


TRAINING_FAMILIES: Dict[str, Generator] = {'train': _composite('train'), 'varied': make_varied}
HELD_OUT_FAMILIES: Dict[str, Generator] = {'eval': _composite('eval'), **HELD_OUT}
FAMILIES: Dict[str, Generator] = {**TRAINING_FAMILIES, **HELD_OUT_FAMILIES}


def check_family(family: str) -> None:
    """Raise ValueError naming the known families unless ``family`` is one."""
    if family not in FAMILIES:
        raise ValueError(f'unknown anomaly family {family!r}; use one of {sorted(FAMILIES)}')


def make_anomaly(rng: Rng, family: str, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``family``: ``(rgb h x w x 3 float32 in [0, 1], mask h x w bool)``."""
    check_family(family)
    h, w = max(int(h), 3), max(int(w), 3)
    return FAMILIES[family](rng, h, w)


def make_negative(seed: int, family: str = 'train', size: int = 96) -> Dict[str, np.ndarray]:
    """Make a standalone negative patch: ``{'image' HxWx3 uint8, 'mask' HxW bool}``."""
    rng = np.random.default_rng([seed, 7919])
    h = int(size * rng.uniform(0.6, 1.0))
    w = int(size * rng.uniform(0.6, 1.0))
    rgb, mask = make_anomaly(rng, family, h, w)
    return {'image': (rgb * 255).round().astype(np.uint8), 'mask': mask}


def make_scene(seed: int, size: Size = (256, 512), anomaly_family: Optional[str] = None,
               num_anomalies: Tuple[int, int] = (1, 3)) -> Dict[str, np.ndarray]:
    """Make a deterministic road scene with anomalies of ``anomaly_family`` (None: clean).

    ``image`` H x W x 3 uint8 RGB, ``label`` and ``anomaly`` H x W (``scene.paint_scene``).
    """
    anomaly = None
    if anomaly_family is not None:
        check_family(anomaly_family)
        anomaly = partial(_family_anomaly, anomaly_family)
    return paint_scene(seed, size, anomaly, num_anomalies)


def _family_anomaly(family: str, rng: Rng, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    return make_anomaly(rng, family, h, w)
