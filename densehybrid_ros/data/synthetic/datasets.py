"""Data sets of synthetic scenes and drive frames: made on the fly, or once into ``.npz`` files."""

import multiprocessing
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from ..tensors import to_tensors
from .colour import Size
from .families import make_scene, TRAINING_FAMILIES
from .sequence import Sequence as DriveSequence


class SyntheticScenes(Dataset):
    """Scenes for ``seeds`` (a range or sequence) as tensors or arrays.

    Items are dicts: ``image`` 3xHxW float in [0, 1], ``label`` HxW int64, ``anomaly`` HxW
    uint8, ``seed``; with ``transform`` set, the raw numpy dict goes through it instead.
    """

    def __init__(self, seeds: Sequence[int], size: Size = (256, 512),
                 anomaly_family: Optional[str] = None, num_anomalies: Tuple[int, int] = (1, 3),
                 transform: Optional[Callable[[Dict], Dict]] = None) -> None:
        self.seeds = list(seeds)
        self.size = tuple(size)
        self.anomaly_family = anomaly_family
        self.num_anomalies = num_anomalies
        self.transform = transform

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Dict:
        seed = self.seeds[index]
        sample = make_scene(seed, self.size, self.anomaly_family, self.num_anomalies)
        sample['seed'] = seed
        if self.transform is not None:
            return self.transform(sample)
        return to_tensors(sample)


# Seed ranges of the project's synthetic splits: training scenes use seeds below
# CALIB_SEED_START, calibration scenes start there, evaluation scenes at EVAL_SEED_START.
CALIB_SEED_START = 1_000_000
EVAL_SEED_START = 2_000_000


def _cache_job(job: Tuple['NpzCache', int]) -> None:
    dataset, index = job
    _write_npz(str(dataset.path(index)), dataset.make(index))


def _write_npz(path: str, sample: Dict[str, np.ndarray]) -> None:
    tmp = f'{path}.{os.getpid()}.tmp.npz'
    np.savez(tmp, **sample)
    os.replace(tmp, path)


class NpzCache(Dataset):
    """Generated raw numpy samples, made once and kept as ``.npz`` files under ``cache``.

    A subclass names its sub-folder, its files and the arrays it keeps, and makes item
    ``index``; with ``cache`` None every item is made afresh.
    """

    KEYS: Tuple[str, ...] = ('image', 'label', 'anomaly')

    def __init__(self, folder: str, cache: Optional[Path]) -> None:
        self.cache = Path(cache) if cache is not None else None
        if self.cache is not None:
            self.folder = self.cache / folder
            self.folder.mkdir(parents=True, exist_ok=True)

    def key(self, index: int) -> str:
        """File stem of item ``index``."""
        raise NotImplementedError

    def make(self, index: int) -> Dict[str, np.ndarray]:
        """Generate item ``index`` (arrays named by ``KEYS``)."""
        raise NotImplementedError

    def path(self, index: int) -> Path:
        """Cache file of item ``index``."""
        return self.folder / f'{self.key(index)}.npz'

    def prepare(self, workers: int = 1) -> int:
        """Generate every missing item (in ``workers`` processes); returns how many."""
        if self.cache is None:
            return 0
        jobs = [(self, i) for i in range(len(self)) if not self.path(i).is_file()]
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context('fork').Pool(workers) as pool:
                for _ in pool.imap_unordered(_cache_job, jobs, chunksize=8):
                    pass
        else:
            for job in jobs:
                _cache_job(job)
        return len(jobs)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        if self.cache is None:
            return self.make(index)
        path = self.path(index)
        if path.is_file():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in self.KEYS}
            except (OSError, ValueError, KeyError):
                pass                                       # torn or stale file: regenerate
        sample = self.make(index)
        _write_npz(str(path), sample)
        return sample


class SceneCache(NpzCache):
    """Scenes for ``seeds`` as raw numpy samples (``make_scene``), cached as ``.npz`` files."""

    def __init__(self, seeds: Sequence[int], size: Size = (256, 512),
                 anomaly_family: Optional[str] = None, cache: Optional[Path] = None) -> None:
        self.seeds = list(seeds)
        self.size = (int(size[0]), int(size[1]))
        self.family = anomaly_family
        super().__init__(f'{self.size[0]}x{self.size[1]}_{self.family or "clean"}', cache)

    def __len__(self) -> int:
        return len(self.seeds)

    def key(self, index: int) -> str:
        """File stem: the scene's seed."""
        return str(self.seeds[index])

    def make(self, index: int) -> Dict[str, np.ndarray]:
        """Paint the scene of seed ``seeds[index]``."""
        return make_scene(self.seeds[index], self.size, self.family)


class SequenceFrameCache(NpzCache):
    """Frames of driving sequences (``sequence.Sequence``) as training samples.

    ``count`` frames, ``per_sequence`` from each world (seeds ``seed_start``, ``seed_start`` + 1,
    ...), each a seeded random one of the sequence's ``frames``: the street as the evaluation's
    drives show it (its far end, obstacles from 60 units away down to the bumper), which the
    single-frame scenes do not. Obstacles are of ``family`` (a training family); their pixels are
    ``outlier`` 1 (label 255), as a pasted negative's are, so a crop may hold both; ``outlier``
    is derived from ``anomaly`` when an item is read, not stored.
    """

    def __init__(self, count: int, size: Size = (512, 1024), family: str = 'varied',
                 cache: Optional[Path] = None, per_sequence: int = 4, frames: int = 60,
                 speed: float = 1.2, seed_start: int = 0) -> None:
        if family not in TRAINING_FAMILIES:
            raise ValueError(f'sequence frames for training take a training family '
                             f'({sorted(TRAINING_FAMILIES)}), got {family!r}')
        self.count, self.per_sequence = int(count), max(1, int(per_sequence))
        self.size = (int(size[0]), int(size[1]))
        self.family, self.frames, self.speed = family, int(frames), float(speed)
        self.seed_start = int(seed_start)
        super().__init__(f'{self.size[0]}x{self.size[1]}_drive_{family}_{self.frames}_'
                         f'{self.speed:g}', cache)

    def __len__(self) -> int:
        return self.count

    def where(self, index: int) -> Tuple[int, int]:
        """(sequence seed, frame index) of item ``index``."""
        seed = self.seed_start + index // self.per_sequence
        order = np.random.default_rng([seed, 1417]).permutation(self.frames)
        return seed, int(order[index % self.per_sequence % self.frames])

    def key(self, index: int) -> str:
        """File stem: sequence seed and frame."""
        seed, k = self.where(index)
        return f'{seed}_{k}'

    def make(self, index: int) -> Dict[str, np.ndarray]:
        """Render item ``index``: image, label and anomaly maps."""
        seed, k = self.where(index)
        frame = DriveSequence(seed, self.size, self.frames, self.family, self.speed)[k]
        return {'image': frame.image, 'label': frame.label, 'anomaly': frame.anomaly}

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        sample = super().__getitem__(index)
        sample['outlier'] = (sample['anomaly'] == 1).astype(np.uint8)
        return sample
