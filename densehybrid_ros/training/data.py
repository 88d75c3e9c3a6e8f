"""Training data of densehybrid-train: seeded crops with a pasted negative, evaluation sets.

``build_data`` turns the command line into the training set (seeded joint transforms plus one
pasted negative per crop, keyed by (epoch, index) so a resumed run sees the same batches; with
``--small-outlier-weight`` each crop also carries its outliers' weights, ``outlier_weights``),
the calibration set and the validation set (a negative pasted per image, anomaly maps 0/1/255).
"""

import argparse
import math
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from ..core.classes import IGNORE_ID as IGNORE
from ..data.cityscapes import CityscapesFolder, DatasetError
from ..data.negatives import NegativeFolder, NegativePaster, synthetic_paster
from ..data.synthetic import (CALIB_SEED_START, EVAL_SEED_START, SceneCache,
                              SequenceFrameCache)
from ..data.tensors import to_tensors
from ..data.transforms import Compose, train_transforms


def outlier_weights(outlier: np.ndarray, ref_area: float, max_weight: float) -> np.ndarray:
    """Per-pixel weights of a crop's outliers: ``sqrt(ref_area / area)`` of their component.

    ``outlier`` is H x W (non-zero = outlier); components are 8-connected; each weight is clipped
    to [1, max_weight], so components of ``ref_area`` pixels or more keep 1 and inliers are 1.
    A far obstacle of 10 x 10 pixels against ``ref_area`` 1024 weighs 3.2.
    """
    _, comp, stats, _ = cv2.connectedComponentsWithStats(
        (outlier != 0).astype(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    per_comp = np.clip(np.sqrt(ref_area / np.maximum(areas, 1.0)), 1.0, max_weight)
    per_comp[0] = 1.0                                 # background
    return per_comp.astype(np.float32)[comp]


class TrainSet(Dataset):
    """Seeded joint transforms (and negative pasting) over a base data set of numpy samples.

    Items are keyed ``(epoch, index)``; each is deterministic given ``seed``. With
    ``small_outlier`` = (ref_area, max_weight) each item also has ``outlier_weight`` (H x W
    float32, :func:`outlier_weights`).
    """

    def __init__(self, base: Dataset, transform: Compose, seed: int,
                 small_outlier: Optional[Tuple[float, float]] = None) -> None:
        self.base, self.transform, self.seed = base, transform, seed
        self.small_outlier = small_outlier
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        sample = self.transform(self.base[index], rng)
        out = to_tensors(sample)
        if self.small_outlier is not None:
            out['outlier_weight'] = torch.from_numpy(
                outlier_weights(out['outlier'].numpy(), *self.small_outlier))
        return out


class EpochSampler(Sampler):
    """Yield ``(epoch, index)`` keys: a seeded permutation per epoch, sharded by rank.

    Starts at global iteration ``start``, so a resumed run sees the same batches.
    """

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, start: int,
                 total: int) -> None:
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.start, self.total = seed, start, total
        self.per_epoch = max(1, n // (batch * world))

    def __len__(self) -> int:
        return max(0, self.total - self.start) * self.batch

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        it = self.start
        while it < self.total:
            epoch, step = divmod(it, self.per_epoch)
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
            if len(order) < self.per_epoch * self.batch * self.world:   # tiny data sets
                order = (order * math.ceil(self.per_epoch * self.batch * self.world /
                                           len(order)))
            for s in range(step, self.per_epoch):
                if it >= self.total:
                    return
                base = (s * self.world + self.rank) * self.batch
                for i in order[base:base + self.batch]:
                    yield epoch, i
                it += 1


class EvalSet(Dataset):
    """Evaluation samples: a base data set, optionally with one seeded negative pasted in."""

    def __init__(self, base: Dataset, paster: Optional[NegativePaster] = None,
                 seed: int = 0) -> None:
        self.base, self.paster, self.seed = base, paster, seed

    def __len__(self) -> int:
        return len(self.base)

    def sample(self, index: int) -> Dict[str, np.ndarray]:
        """Return the numpy sample: uint8 image, label, anomaly (0 inlier, 1 pasted, 255 void)."""
        sample = self.base[index]
        if self.paster is not None:
            sample = self.paster(sample, np.random.default_rng([self.seed, 99991, index]))
            sample['anomaly'] = np.where(sample['label'] == IGNORE, IGNORE, 0).astype(np.uint8)
            sample['anomaly'][sample['outlier'] == 1] = 1
        return sample

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return to_tensors(self.sample(index))


def build_data(args: argparse.Namespace, rank: int) -> Tuple[Dataset, Dataset, Dataset, str]:
    """Training, calibration and validation sets; raises DatasetError for bad folders."""
    if args.negatives == 'synthetic':
        paster = synthetic_paster(args.negative_family, range(args.seed * 1000003,
                                                              args.seed * 1000003 + 20000),
                                  tuple(args.paste_scale))
    else:
        paster = NegativePaster(NegativeFolder(args.negatives, args.negative_masks),
                                scale=tuple(args.paste_scale))
    augment = train_transforms(tuple(args.crop), tuple(args.scale), flip=True)
    transform = Compose([*augment.transforms, paster])
    if args.data == 'synthetic':
        size = tuple(args.scene_size)
        cache = Path(args.cache) if args.cache else None
        train_base = SceneCache(range(args.train_scenes), size, None, cache)
        calib = EvalSet(SceneCache(range(CALIB_SEED_START, CALIB_SEED_START + args.calib_scenes),
                                   tuple(args.val_size), args.calib_family, cache))
        val = EvalSet(SceneCache(range(EVAL_SEED_START, EVAL_SEED_START + args.val_scenes),
                                 tuple(args.val_size), 'eval', cache))
        parts = [train_base]
        drives = ''
        if args.drive_frames > 0:
            parts.append(SequenceFrameCache(args.drive_frames, size, args.negative_family, cache))
            drives = f' + {args.drive_frames} drive frames ({args.negative_family} obstacles)'
        if cache is not None and rank == 0 and not args.no_prepare:
            for ds in (*parts, calib.base, val.base):
                ds.prepare(workers=args.prepare_workers)
        train_base = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        desc = (f'synthetic scenes {size[0]}x{size[1]}: train seeds 0..{args.train_scenes - 1}'
                f'{drives}; '
                f'calibration {args.calib_scenes} scenes ({args.calib_family} family, seeds '
                f'{CALIB_SEED_START}+); validation {args.val_scenes} scenes (eval family, seeds '
                f'{EVAL_SEED_START}+) at {args.val_size[0]}x{args.val_size[1]}')
    else:
        if args.drive_frames > 0:
            raise DatasetError('--drive-frames adds synthetic drive frames: it needs the '
                               "'synthetic' data set, not a folder")
        train_base = CityscapesFolder(args.data, 'train', args.num_classes)
        val_base = CityscapesFolder(args.data, args.val_split, args.num_classes)
        calib = EvalSet(val_base, paster, seed=args.seed + 1)
        val = calib
        desc = (f'{args.data} (train / {args.val_split} with pasted negatives from '
                f'{args.negatives})')
    small = None
    if args.small_outlier_weight is not None:
        small = (args.small_outlier_area, args.small_outlier_weight)
    return TrainSet(train_base, transform, args.seed, small), calib, val, desc


def median_frequency_weights(dataset: Dataset, num_classes: int, samples: int = 200,
                             limit: float = 10.0) -> torch.Tensor:
    """Class weights ``sqrt(median_freq / freq)`` over up to ``samples`` evenly spaced labels.

    Classes never seen get weight 1; weights are clipped to [1 / limit, limit].
    """
    counts = np.zeros(num_classes, np.float64)
    step = max(1, len(dataset) // samples)
    for i in range(0, len(dataset), step):
        label = np.asarray(dataset[i]['label'])
        counts += np.bincount(label[label < num_classes].ravel(), minlength=num_classes)
    seen = counts > 0
    weights = np.ones(num_classes, np.float64)
    if seen.any():
        freq = counts / counts.sum()
        weights[seen] = np.sqrt(np.median(freq[seen]) / freq[seen])
    return torch.tensor(np.clip(weights, 1 / limit, limit), dtype=torch.float32)
