"""Joint transforms on numpy samples: image HxWx3 uint8 plus HxW label-like maps.

A sample is a dict with ``image`` and any of ``label`` (train ids, 255 ignore), ``anomaly``
(0/1/255) and ``outlier`` (1 where a negative was pasted). Geometric transforms move every map
with the image (nearest neighbour for maps); padding fills maps with 255 (ignore/void) and
``outlier`` with 0.
"""

from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np

Sample = Dict[str, np.ndarray]
MAP_KEYS = ('label', 'anomaly', 'outlier')
PAD_VALUE = {'label': 255, 'anomaly': 255, 'outlier': 0}


class Compose:
    """Apply transforms in order; each is ``t(sample, rng) -> sample``."""

    def __init__(self, transforms: Sequence[Callable[[Sample, np.random.Generator], Sample]]
                 ) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


def resize_sample(sample: Sample, size: Tuple[int, int]) -> Sample:
    """Resize image (bilinear) and maps (nearest) to ``size`` = (H, W)."""
    h, w = int(size[0]), int(size[1])
    out = dict(sample)
    out['image'] = cv2.resize(sample['image'], (w, h), interpolation=cv2.INTER_LINEAR)
    for k in MAP_KEYS:
        if k in sample:
            out[k] = cv2.resize(sample[k], (w, h), interpolation=cv2.INTER_NEAREST)
    return out


class RandomScale:
    """Scale jitter: resize by a factor drawn uniformly from ``scale``."""

    def __init__(self, scale: Tuple[float, float] = (0.75, 1.5)) -> None:
        self.scale = scale

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        f = rng.uniform(*self.scale)
        h, w = sample['image'].shape[:2]
        return resize_sample(sample, (max(1, round(h * f)), max(1, round(w * f))))


class RandomCrop:
    """Crop ``size`` = (H, W) at a random position, padding first if the sample is smaller."""

    def __init__(self, size: Tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        ch, cw = self.size
        h, w = sample['image'].shape[:2]
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        out = dict(sample)
        if ph or pw:
            out['image'] = np.pad(sample['image'], ((0, ph), (0, pw), (0, 0)))
            for k in MAP_KEYS:
                if k in sample:
                    out[k] = np.pad(sample[k], ((0, ph), (0, pw)), constant_values=PAD_VALUE[k])
            h, w = h + ph, w + pw
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        for k in ('image',) + MAP_KEYS:
            if k in out:
                out[k] = np.ascontiguousarray(out[k][y:y + ch, x:x + cw])
        return out


class RandomFlip:
    """Horizontal flip with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        out = dict(sample)
        for k in ('image',) + MAP_KEYS:
            if k in sample:
                out[k] = np.ascontiguousarray(sample[k][:, ::-1])
        return out


def train_transforms(crop: Tuple[int, int], scale: Tuple[float, float] = (0.75, 1.5),
                     flip: bool = True) -> Compose:
    """Build the usual augmentation: scale jitter, random crop, horizontal flip."""
    steps = [RandomScale(scale), RandomCrop(crop)]
    if flip:
        steps.append(RandomFlip())
    return Compose(steps)
