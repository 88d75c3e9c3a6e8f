"""Data sets of synthetic scenes: generated on the fly, or once into a cache of ``.npz`` files."""

import multiprocessing
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from ..tensors import to_tensors
from .colour import Size
from .families import make_scene


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


def _scene_job(job: Tuple[int, Size, Optional[str], str]) -> None:
    seed, size, family, path = job
    _write_npz(path, make_scene(seed, size, family))


def _write_npz(path: str, scene: Dict[str, np.ndarray]) -> None:
    tmp = f'{path}.{os.getpid()}.tmp.npz'
    np.savez(tmp, **scene)
    os.replace(tmp, path)


class SceneCache(Dataset):
    """Scenes as raw numpy samples, generated once and kept as ``.npz`` files.

    Files go under ``cache``; with ``cache`` None every item is generated afresh.
    """

    def __init__(self, seeds: Sequence[int], size: Size = (256, 512),
                 anomaly_family: Optional[str] = None, cache: Optional[Path] = None) -> None:
        self.seeds = list(seeds)
        self.size = (int(size[0]), int(size[1]))
        self.family = anomaly_family
        self.cache = Path(cache) if cache is not None else None
        if self.cache is not None:
            self.folder = self.cache / f'{self.size[0]}x{self.size[1]}_{self.family or "clean"}'
            self.folder.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.seeds)

    def path(self, seed: int) -> Path:
        """Cache file of one seed."""
        return self.folder / f'{seed}.npz'

    def prepare(self, workers: int = 1) -> int:
        """Generate every missing scene (in ``workers`` processes); returns how many."""
        if self.cache is None:
            return 0
        jobs = [(s, self.size, self.family, str(self.path(s))) for s in self.seeds
                if not self.path(s).is_file()]
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context('fork').Pool(workers) as pool:
                for _ in pool.imap_unordered(_scene_job, jobs, chunksize=8):
                    pass
        else:
            for job in jobs:
                _scene_job(job)
        return len(jobs)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        seed = self.seeds[index]
        if self.cache is None:
            return make_scene(seed, self.size, self.family)
        path = self.path(seed)
        if path.is_file():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in ('image', 'label', 'anomaly')}
            except (OSError, ValueError, KeyError):
                pass                                       # torn or stale file: regenerate
        scene = make_scene(seed, self.size, self.family)
        _write_npz(str(path), scene)
        return scene
