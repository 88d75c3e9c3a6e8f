"""The backend interface and the shared logic of backends that run exported graphs."""

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..artifacts import ensure_artifact, read_artifact, weights_digest
from ..runtimes import ExportError
from ...models import DenseHybridModel

Size = Tuple[int, int]
Batch = Union[torch.Tensor, np.ndarray]
Runner = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


class BackendError(ExportError):
    """A backend that cannot run as asked (missing runtime, precision, wrong artifact)."""


class Backend:
    """``infer(batch N x 3 x h x w float in [0, 1] or uint8) -> (labels, score)`` at h x w.

    ``labels`` is N x h x w uint8 (int32 past 255 classes), ``score`` N x h x w float32, both
    torch tensors on :attr:`device` (the CPU for graph runtimes).
    """

    name = ''
    device = torch.device('cpu')
    calibration: Optional[Dict[str, Any]] = None    # an artifact's own, else the checkpoint's
    sizes: Tuple[Size, ...] = ()    # the only inference sizes it runs (given artifacts); () = any

    def infer(self, batch: Batch,
              need_score: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Labels and score of a batch (``need_score=False`` may skip the score)."""
        raise NotImplementedError


def as_float_batch(batch: Batch) -> np.ndarray:
    """N x 3 x h x w float32 in [0, 1] as a contiguous numpy array (uint8 is divided by 255)."""
    x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    if x.ndim != 4 or x.shape[1] != 3:
        raise BackendError(f'batch must be N x 3 x h x w, got shape {tuple(x.shape)}')
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x, dtype=np.float32)


class GraphBackend(Backend):
    """A runtime over static-size exported graphs: one compiled graph per inference size.

    Graphs come from ``artifacts`` (folders made by densehybrid-export) or are exported on
    the first batch of a new size into the cache
    (:func:`densehybrid_ros.deploy.artifacts.ensure_artifact`)
    when none are given. Both are verified before they run (file digests and input size
    against ``meta.json``): a given artifact that fails is refused, a cached one exported
    again. An artifact of another model, runtime, score or precision is refused, and so is a
    batch of a size that the given artifacts do not cover.
    """

    fmt = ''

    def __init__(self, model: Optional[DenseHybridModel], meta: Dict[str, Any],
                 precision: str = 'fp32', score: str = 'hybrid', device: str = 'cpu',
                 artifacts: Sequence[Union[str, Path]] = (), cache: Optional[str] = None,
                 threads: int = 0, **_: Any) -> None:
        self.model, self.meta, self.precision, self.score = model, meta, precision, score
        self.cache, self.threads, self.device_name = cache, threads, device
        self.digest = weights_digest(model) if model is not None else None
        self.arch = model.arch if model is not None else None
        self._runners: Dict[Size, Runner] = {}
        self._artifacts: Dict[Size, Dict[str, Any]] = {}
        for path in artifacts:
            info = self.check_artifact(read_artifact(path), path)
            self._artifacts[tuple(info['input_size'])] = info
        self.sizes = tuple(self._artifacts)
        if self._artifacts:
            self.calibration = next(iter(self._artifacts.values())).get('calibration') or None

    def check_artifact(self, info: Dict[str, Any], where: Any) -> Dict[str, Any]:
        """Refuse an artifact for another runtime, model, precision or score."""
        if info['runtime_format'] != self.fmt:
            raise BackendError(f'{where}: a {info["runtime_format"]} artifact cannot run on the '
                               f'{self.name} backend (export with --format {self.fmt})')
        if self.digest is not None and info['weights_sha256'] != self.digest:
            raise BackendError(f'{where}: artifact is for another model ({info["arch"]}, '
                               f'weights {info["weights_sha256"]}), not this checkpoint '
                               f'({self.arch}, weights {self.digest}); re-export it')
        if self.arch is None:
            self.arch = info['arch']
        for key, want in (('precision', self.precision), ('score', self.score)):
            if info[key] != want:
                raise BackendError(f'{where}: artifact {key} is {info[key]!r}, asked for {want!r}')
        return info

    def infer(self, batch: Batch,
              need_score: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Run the graph of this batch's size (compiled on first use)."""
        x = as_float_batch(batch)
        size = (int(x.shape[2]), int(x.shape[3]))
        runner = self._runners.get(size)
        if runner is None:
            runner = self._runners[size] = self.load(self._artifact_for(size))
        labels, score = runner(x)
        return torch.from_numpy(np.asarray(labels)), torch.from_numpy(np.asarray(score))

    def _artifact_for(self, size: Size) -> Dict[str, Any]:
        info = self._artifacts.get(size)
        if info is not None:
            return info
        if self.sizes or self.model is None:
            # Artifacts given explicitly are the deployment: never swap in a lazy export
            # (another precision's threshold, or an fp32 graph for an int8 one).
            have = ', '.join(f'{h}x{w}' for h, w in self._artifacts) or 'none'
            raise BackendError(f'no {self.name} artifact for inference size {size[0]}x{size[1]} '
                               f'(artifacts for: {have}); export one for this size or set the '
                               f'inference size to match')
        path = ensure_artifact(self.model, self.meta, self.fmt, size, self.precision,
                               self.score, self.cache, self.digest)      # verified there
        info = self.check_artifact(read_artifact(path, verify=False), path)
        self._artifacts[size] = info
        return info

    def load(self, info: Dict[str, Any]) -> Runner:
        """Compile an artifact's graph into ``f(x N x 3 x h x w float32) -> (labels, score)``."""
        raise NotImplementedError
