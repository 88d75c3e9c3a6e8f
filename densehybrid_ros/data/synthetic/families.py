"""Anomaly families: named generators ``(rng, h, w) -> (rgb h x w x 3 float32, mask bool)``.

``'train'`` and ``'eval'`` pair a random silhouette from ``shapes`` with a random texture from
``textures`` (``ANOMALY_FAMILIES`` lists both parts, disjoint between the two). Every family is
either for training (``TRAINING_FAMILIES``: pasted as negatives) or held out
(``HELD_OUT_FAMILIES``: only ever in evaluation
scenes), so evaluation measures generalisation to unseen anomaly types.
"""

from typing import Callable, Dict, Tuple

import numpy as np

from .colour import Rng
from .heldout import FAMILIES as HELD_OUT
from .shapes import (_shape_blob, _shape_box, _shape_cluster, _shape_ellipse, _shape_half_disc,
                     _shape_hull, _shape_ngon, _shape_ring, _shape_rounded_box, _shape_star)
from .textures import (_tex_bricks, _tex_checker, _tex_dots, _tex_gradient, _tex_hue_sweep,
                       _tex_mosaic, _tex_noise, _tex_plaid, _tex_rings, _tex_solid, _tex_stripes,
                       _tex_zigzag)
from .varied import make_varied

Shape = Callable[[Rng, int, int], np.ndarray]
Generator = Callable[[Rng, int, int], Tuple[np.ndarray, np.ndarray]]
ANOMALY_FAMILIES: Dict[str, Dict[str, Dict[str, Shape]]] = {
    # Training negatives: convex shapes; periodic, flat, tiled or linear-gradient textures.
    'train': {
        'shapes': {'ellipse': _shape_ellipse, 'box': _shape_box, 'ngon': _shape_ngon,
                   'hull': _shape_hull, 'half_disc': _shape_half_disc,
                   'rounded_box': _shape_rounded_box},
        'textures': {'stripes': _tex_stripes, 'checker': _tex_checker,
                     'gradient': _tex_gradient, 'plaid': _tex_plaid, 'solid': _tex_solid,
                     'zigzag': _tex_zigzag, 'bricks': _tex_bricks, 'mosaic': _tex_mosaic},
    },
    # Evaluation only: concave or holed shapes, dotted, noisy, ringed or hue-sweep textures.
    'eval': {
        'shapes': {'star': _shape_star, 'blob': _shape_blob, 'ring': _shape_ring,
                   'cluster': _shape_cluster},
        'textures': {'dots': _tex_dots, 'noise': _tex_noise, 'rings': _tex_rings,
                     'hue_sweep': _tex_hue_sweep},
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
