"""Segmenter: images in, semantic / anomaly score / open-set maps out, at each image's own size.

Pipeline:
    list of H_i x W_i x 3 uint8 RGB
    -> group by inference size (at most MAX_INFERENCE_PIXELS) -> one N x 3 x h x w float batch
       per group (on the backend's device)
    -> backend (torch eager, onnxruntime, openvino: densehybrid_ros.deploy.backends; 'auto'
       picks one, auto_backend, and on the CPU at fp32 times it against torch eager once per
       inference size, auto_timing): model, score (hybrid by default) and argmax
       -> labels, score N x h x w
    -> back to H_i x W_i (labels nearest, scores bilinear) -> threshold -> numpy
"""

from dataclasses import dataclass
import logging
import math
import os
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union, cast

import cv2
import numpy as np
import torch

from .artifacts import cache_dir
from .auto_timing import AutoDecision, measure, read_record, record_key, record_path, \
    write_record
from .backends import auto_backend, Backend, check_backend, make_backend
from .backends.base import GraphBackend
from .preprocess import (check_image, inference_shape, MAX_INFERENCE_PIXELS, resize_map, resize_np,
                         resolve_device, Size, to_batch)
from ..models.checkpoint import check_finite, load_checkpoint
from ..core.classes import default_class_names, default_palette
from ..models import DenseHybridModel
from ..models.fusion import fuse_for_inference
from ..core.outputs import calibrated_range
from ..core.paths import default_checkpoint
from ..core.scoring import compute_score, open_set_from_labels, UNKNOWN_ID
from .runtimes import AUTO, AutoChoice

LOG = logging.getLogger(__name__)
OUTPUTS = ('semantic', 'score', 'open_set', 'anomaly_mask')


@dataclass
class Result:
    """Per-image outputs at the input image's size; fields not asked for are ``None``."""

    semantic: Optional[np.ndarray] = None       # H x W uint8 class ids
    score: Optional[np.ndarray] = None          # H x W float32, higher = more anomalous
    open_set: Optional[np.ndarray] = None       # H x W uint8, unknown = 255
    anomaly_mask: Optional[np.ndarray] = None   # H x W bool, score > threshold


class Segmenter:
    """Runs a DenseHybrid checkpoint on batches of RGB images."""

    def __init__(self, checkpoint_path: Union[None, str, os.PathLike] = None,
                 device: str = 'auto', precision: str = 'fp32',
                 inference_size: Union[None, int, Size] = None, score: str = 'hybrid',
                 channels_last: bool = True, fuse: bool = True, backend: str = 'torch',
                 artifacts: Sequence[Union[str, os.PathLike]] = (),
                 max_inference_pixels: int = MAX_INFERENCE_PIXELS) -> None:
        path = checkpoint_path if checkpoint_path else default_checkpoint()
        check_backend(backend, precision)
        model, meta = load_checkpoint(path, device='cpu')
        check_finite(model, path)
        if fuse:
            model = fuse_for_inference(model)
        self._setup(model, meta, device, precision, inference_size, score, channels_last,
                    backend, artifacts, max_inference_pixels)

    @classmethod
    def from_model(cls, model: DenseHybridModel, meta: Optional[Dict[str, Any]] = None,
                   device: str = 'auto', precision: str = 'fp32',
                   inference_size: Union[None, int, Size] = None, score: str = 'hybrid',
                   channels_last: bool = True, backend: str = 'torch',
                   artifacts: Sequence[Union[str, os.PathLike]] = (),
                   max_inference_pixels: int = MAX_INFERENCE_PIXELS) -> 'Segmenter':
        """Wrap an in-memory model as it is (training-time evaluation, tests); no folding."""
        self = cls.__new__(cls)
        self._setup(model, dict(meta or {}), device, precision, inference_size, score,
                    channels_last, backend, artifacts, max_inference_pixels)
        return self

    def _setup(self, model: DenseHybridModel, meta: Dict[str, Any], device: str,
               precision: str, inference_size: Union[None, int, Size], score: str,
               channels_last: bool, backend: str, artifacts: Sequence[Any],
               max_inference_pixels: int) -> None:
        check_backend(backend, precision)
        if isinstance(inference_size, int) and inference_size < 0:
            raise ValueError(f'inference width must be >= 0, got {inference_size}')
        if max_inference_pixels < 0:
            raise ValueError(f'max_inference_pixels must be >= 0, got {max_inference_pixels}')
        compute_score(score, torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1))  # validates name
        # 'auto': the runtime this machine runs fastest with torch fp32's scores, said in one
        # line (a WARN where it fell back to torch); a failed export falls back too (_run).
        self.auto: Optional[AutoChoice] = None
        if backend == AUTO:
            self.auto = auto_backend(precision, device, artifacts)
            backend = self.auto.backend
            (LOG.warning if self.auto.fallback else LOG.info)(
                'backend auto: %s %s (%s)', backend, precision, self.auto.reason)
        self._device_asked, self._channels_last = device, channels_last
        # Graph runtimes take host arrays: 'auto' is the CPU for them (ORT's CUDA provider only
        # when asked for explicitly).
        dev = resolve_device('cpu' if backend != 'torch' and device == 'auto' else device)
        self.precision, self.score_kind, self.backend_name = precision, score, backend
        self.inference_size, self.max_inference_pixels = inference_size, max_inference_pixels
        # The widest native input the model is meant for (measured per model, model card).
        self.max_native_width = int(meta.get('max_inference_width') or 0)
        self.meta = meta
        self.model = model.eval()
        # An auto-chosen graph runtime exporting lazily may fall back to torch (given
        # artifacts are the deployment: their errors are the user's to see).
        self._may_fall_back = self.auto is not None and backend != 'torch' and not artifacts
        # ... and at fp32 it runs only where it is faster than torch eager: timed once per
        # inference size (auto_timing); torch wins a size -> the graph is not run there.
        self._timing = self._may_fall_back and precision == 'fp32'
        self._torch: Optional[Backend] = None      # torch eager, made when first needed
        self.auto_decisions: Dict[Size, AutoDecision] = {}
        try:
            self.backend: Backend = make_backend(
                backend, model=model, meta=meta, precision=precision, score=score,
                device=str(dev), channels_last=channels_last, artifacts=artifacts)
        except Exception as exc:  # the runtime installed but broken: torch, with one WARN
            if not self._may_fall_back:
                raise
            self._fall_back(exc)
        self._candidate = self.backend
        self._timing = self._timing and isinstance(self.backend, GraphBackend)
        self.device = self.backend.device            # where preprocessing puts the batch
        self.memory_format = self._memory_format(self.backend_name)
        calibration = self.backend.calibration or meta.get('calibration') or {}
        self.calibration: Dict[str, Any] = dict(calibration)     # in effect for this backend
        self._threshold = float(calibration.get('threshold', math.nan))
        self.score_range = calibrated_range(calibration)         # the heatmap range rule
        if math.isnan(self._threshold):
            LOG.warning('checkpoint has no calibrated threshold: no pixel is flagged anomalous '
                        'until one is set (densehybrid-eval --threshold-from-tpr 0.95)')
        LOG.info('Segmenter: %s on %s, %s backend (%s)', model.arch, self.device,
                 self.backend_name, precision)

    def _fall_back(self, exc: BaseException) -> None:
        """Run torch eager from now on, after the auto-chosen runtime failed (one WARN)."""
        LOG.warning('backend auto: %s failed (%s: %s); falling back to torch eager %s',
                    self.backend_name, type(exc).__name__, ' '.join(str(exc).split())[:300],
                    self.precision)
        self._may_fall_back = self._timing = False
        self._use('torch')
        self.device = self.backend.device

    def _use(self, name: str) -> None:
        """Run ``name`` from now on: torch eager (made on first use) or the graph runtime."""
        if name == 'torch':
            if self._torch is None:
                self._torch = make_backend(
                    'torch', model=self.model, meta=self.meta, precision=self.precision,
                    score=self.score_kind, device=str(resolve_device(self._device_asked)),
                    channels_last=self._channels_last)
            self.backend = self._torch
        else:
            self.backend = self._candidate
        self.backend_name = name
        self.memory_format = self._memory_format(name)

    def _memory_format(self, backend: str) -> torch.memory_format:
        """Layout the batch is prepared in: channels-last only for torch eager, when asked."""
        return torch.channels_last if self._channels_last and backend == 'torch' \
            else torch.contiguous_format

    @property
    def threshold(self) -> float:
        """Score above which a pixel is anomalous (NaN: uncalibrated, nothing flagged)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        value = float(value)
        if math.isinf(value):
            raise ValueError(f'threshold must be finite or NaN, got {value}')
        self._threshold = value

    @property
    def palette(self) -> np.ndarray:
        """K x 3 uint8 class colours (from the checkpoint, else the defaults)."""
        palette = self.meta.get('palette')
        if palette is None:
            return default_palette(self.model.num_classes)
        return np.asarray(palette, dtype=np.uint8)

    @property
    def class_names(self) -> List[str]:
        """K class names (from the checkpoint, else the defaults)."""
        return list(self.meta.get('class_names') or default_class_names(self.model.num_classes))

    @property
    def arch(self) -> str:
        """The model's architecture name."""
        return self.model.arch

    def warmup(self, size: Size = (256, 512), batch: int = 1) -> None:
        """Run once on a blank batch so the first real frame does not pay for allocation."""
        blank = np.zeros((size[0], size[1], 3), dtype=np.uint8)
        self([blank] * batch)

    def __call__(self, images: Sequence[np.ndarray],
                 outputs: Collection[str] = OUTPUTS) -> List[Result]:
        """Segment RGB uint8 images (any sizes); compute only the requested ``outputs``."""
        wanted = set(outputs)
        unknown = wanted.difference(OUTPUTS)
        if unknown:
            raise ValueError(f'unknown outputs {sorted(unknown)}; choose from {OUTPUTS}')
        groups: Dict[Size, List[int]] = {}
        for i, image in enumerate(images):
            check_image(i, image)
            size = inference_shape(image.shape, self.inference_size, self.max_inference_pixels,
                                   self.max_native_width)
            groups.setdefault(size, []).append(i)
        results: List[Result] = [Result() for _ in images]
        for size, indices in groups.items():
            for i, result in zip(indices, self._run([images[i] for i in indices], size, wanted)):
                results[i] = result
        return results

    @torch.inference_mode()
    def _run(self, images: List[np.ndarray], size: Size, wanted: set) -> List[Result]:
        need_score = bool(wanted & {'score', 'open_set', 'anomaly_mask'})
        need_labels = bool(wanted & {'semantic', 'open_set'})
        labels, score = self._infer(images, size, need_score)            # N x h x w each
        labels = labels if need_labels else None
        # Back to each image's size: on the CPU with OpenCV on the final uint8/float32 maps
        # (no float detour for labels), on a GPU on the device before the one copy to the host.
        on_cpu = self.device.type == 'cpu'
        results = []
        for n, image in enumerate(images):
            out_size = image.shape[:2]
            s = lab = None
            if score is not None:
                s = resize_np(score[n].numpy(), out_size, cv2.INTER_LINEAR) if on_cpu else \
                    resize_map(score[n], out_size, 'bilinear').cpu().numpy()
            if labels is not None:
                lab = resize_np(labels[n].numpy(), out_size, cv2.INTER_NEAREST) if on_cpu else \
                    resize_map(labels[n], out_size, 'nearest').cpu().numpy()
            results.append(Result(
                semantic=lab if 'semantic' in wanted else None,
                score=s if 'score' in wanted else None,
                open_set=open_set_from_labels(lab, s, self._threshold, UNKNOWN_ID)
                if 'open_set' in wanted else None,
                anomaly_mask=(s > self._threshold) if 'anomaly_mask' in wanted else None))
        return results

    def _infer(self, images: List[np.ndarray], size: Size,
               need_score: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Labels and score at ``size`` from the runtime that runs it (auto: decided here)."""
        try:
            if self._timing:
                decision = self.auto_decisions.get(size)
                if decision is None:
                    return self._decide(images, size)
                if decision.backend != self.backend_name:    # only when the size changes
                    self._use(decision.backend)
            return self.backend.infer(self._preprocess(images, size), need_score)
        except Exception as exc:  # an auto-chosen graph that would not export or compile
            if not self._may_fall_back:
                raise
            self._fall_back(exc)
        return self.backend.infer(self._preprocess(images, size), need_score)

    def _decide(self, images: List[np.ndarray],
                size: Size) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Pick torch or the graph runtime for ``size`` (recorded, else timed on ``images``)."""
        graph = cast(GraphBackend, self._candidate)     # exports lazily: it has the digest
        key = record_key(str(graph.digest), size, self.precision, self.score_kind, graph.name)
        path = record_path(Path(graph.cache) if graph.cache else cache_dir(), key)
        decision = read_record(path, key)
        outputs = None
        if decision is None:
            self._use(graph.name)
            x = self._preprocess(images, size)                           # N x 3 x h x w
            warm = graph.infer(x)                     # exports and compiles a new size
            self._use('torch')
            decision, outputs = measure(size, self.backend, x.contiguous(
                memory_format=self.memory_format), graph, x, warm)
            write_record(path, key, decision)
        self.auto_decisions[size] = decision
        (LOG.warning if decision.scores_differ else LOG.info)(decision.line(self.precision))
        self._use(decision.backend)
        if outputs is None:                       # recorded: no timing, one run of the winner
            outputs = self.backend.infer(self._preprocess(images, size))
        return outputs

    def _preprocess(self, images: List[np.ndarray], size: Size) -> torch.Tensor:
        return to_batch(images, size, self.device, self.memory_format)
