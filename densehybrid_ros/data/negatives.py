"""Negative data for DenseHybrid: folders of negative images and pasting them into inlier crops.

As in the paper, every inlier crop gets one negative patch (a random rectangle of a negative
image, or one instance mask when masks are given) at a random position and scale. Pasted pixels
become ignore (255) for the closed-set loss and outliers (``outlier`` = 1) for the dataset head.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from torch.utils.data import Dataset

from .cityscapes import DatasetError, read_image, read_map
from .placement import OCCLUDERS, Placement
from .synthetic import make_negative, TRAINING_FAMILIES

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.webp')


class NegativeFolder(Dataset):
    """Negative images under ``root`` (recursively); optional instance masks under ``masks``.

    A mask file has the image's stem and a ``.png`` suffix; 0 is background and every other
    value one instance. Items: ``{'image' HxWx3 uint8 RGB, 'mask' HxW bool}``; without a mask
    file, a random rectangle of the image is used when pasting (``mask`` is all True).
    """

    def __init__(self, root: Union[str, Path], masks: Optional[Union[str, Path]] = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f'negative image folder not found: {self.root}')
        self.files = sorted(p for p in self.root.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DatasetError(f'negative image folder {self.root} holds no images '
                               f'({", ".join(IMAGE_SUFFIXES)})')
        self.masks = Path(masks) if masks is not None else None
        if self.masks is not None and not self.masks.is_dir():
            raise DatasetError(f'negative mask folder not found: {self.masks}')

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        image = read_image(self.files[index])
        mask = np.ones(image.shape[:2], bool)
        if self.masks is not None:
            path = self.masks / self.files[index].relative_to(self.root).with_suffix('.png')
            if path.is_file():
                inst = read_map(path)
                if inst.shape != image.shape[:2]:
                    raise DatasetError(f'mask {path} is {inst.shape[1]}x{inst.shape[0]} but its '
                                       f'image is {image.shape[1]}x{image.shape[0]}')
                mask = inst > 0
                return {'image': image, 'mask': mask, 'instances': inst}
        return {'image': image, 'mask': mask}


class SyntheticNegatives(Dataset):
    """Procedural negatives of one anomaly family (default the training-only family)."""

    def __init__(self, seeds: Sequence[int], family: str = 'train', size: int = 96) -> None:
        self.seeds = list(seeds)
        self.family = family
        self.size = size

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        return make_negative(self.seeds[index], self.family, self.size)


def _pick_patch(negative: Dict[str, np.ndarray], rng: np.random.Generator
                ) -> Tuple[np.ndarray, np.ndarray]:
    """One object (instance mask) or a random rectangle of a negative image, cropped tight."""
    image, mask = negative['image'], negative['mask'].astype(bool)
    inst = negative.get('instances')
    if inst is not None:
        ids = [i for i in np.unique(inst) if i != 0]
        if ids:
            mask = inst == ids[int(rng.integers(len(ids)))]
    if mask.all():
        h, w = mask.shape
        ph = int(rng.integers(max(1, h // 4), h + 1))
        pw = int(rng.integers(max(1, w // 4), w + 1))
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        return image[y:y + ph, x:x + pw], mask[y:y + ph, x:x + pw]
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return image, np.ones(mask.shape, bool)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def paste_negative(sample: Dict[str, np.ndarray], negative: Dict[str, np.ndarray],
                   rng: np.random.Generator, scale: Tuple[float, float] = (0.1, 0.5),
                   placement: Optional[Placement] = None) -> Dict[str, np.ndarray]:
    """Paste one negative patch; its longer side is ``scale`` x the crop's shorter side.

    Pasted pixels get ``label`` 255 and ``outlier`` 1 (``anomaly`` 1 when present). Without
    ``placement`` the scale is uniform and the position uniform over the crop.
    """
    patch, mask = _pick_patch(negative, rng)
    h, w = sample['image'].shape[:2]
    place = placement or Placement()
    target = place.draw_scale(rng, scale) * min(h, w)
    f = target / max(patch.shape[:2])
    ph, pw = max(2, min(h, round(patch.shape[0] * f))), max(2, min(w, round(patch.shape[1] * f)))
    patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (pw, ph), interpolation=cv2.INTER_NEAREST) > 0
    y, x = place.draw_position(rng, (h, w), sample.get('label'), ph, pw)
    if 'label' in sample and place.occlusion > 0 and rng.random() < place.occlusion:
        mask = mask & ~np.isin(sample['label'][y:y + ph, x:x + pw], OCCLUDERS)   # stays in front
    out = dict(sample)
    out['image'] = sample['image'].copy()
    out['image'][y:y + ph, x:x + pw][mask] = patch[mask]
    outlier = np.zeros((h, w), np.uint8) if 'outlier' not in sample else sample['outlier'].copy()
    outlier[y:y + ph, x:x + pw][mask] = 1
    out['outlier'] = outlier
    if 'label' in sample:
        out['label'] = sample['label'].copy()
        out['label'][outlier == 1] = 255
    if 'anomaly' in sample:
        out['anomaly'] = sample['anomaly'].copy()
        out['anomaly'][outlier == 1] = 1
    return out


def synthetic_paster(family: str, seeds: Sequence[int], scale: Tuple[float, float],
                     probability: float = 1.0) -> 'NegativePaster':
    """Paster of one training family's procedural negatives.

    ``'varied'`` negatives are made at 128 px and placed with ``Placement.scene()``; ``'train'``
    ones at 96 px with the paper's uniform placement (the embedded model's recipe).
    """
    if family not in TRAINING_FAMILIES:
        raise ValueError(f'{family!r} is not a training family; use one of '
                         f'{sorted(TRAINING_FAMILIES)}')
    varied = family == 'varied'
    return NegativePaster(SyntheticNegatives(seeds, family, 128 if varied else 96), scale,
                          probability, Placement.scene() if varied else None)


class NegativePaster:
    """Transform pasting one random negative from ``negatives`` into every sample."""

    def __init__(self, negatives: Dataset, scale: Tuple[float, float] = (0.1, 0.5),
                 probability: float = 1.0, placement: Optional[Placement] = None) -> None:
        if len(negatives) == 0:
            raise DatasetError('the negative data set is empty')
        self.negatives = negatives
        self.scale = scale
        self.probability = probability
        self.placement = placement

    def __call__(self, sample: Dict[str, np.ndarray], rng: np.random.Generator
                 ) -> Dict[str, np.ndarray]:
        if rng.random() >= self.probability:
            out = dict(sample)
            out['outlier'] = np.zeros(sample['image'].shape[:2], np.uint8)
            return out
        negative = self.negatives[int(rng.integers(len(self.negatives)))]
        return paste_negative(sample, negative, rng, self.scale, self.placement)


__all__: List[str] = ['NegativeFolder', 'NegativePaster', 'Placement', 'SyntheticNegatives',
                      'paste_negative', 'synthetic_paster']
