"""Segmenter: images in, semantic / anomaly score / open-set maps out, at each image's own size.

Pipeline:
    list of H_i x W_i x 3 uint8 RGB
    -> group by inference size -> one N x 3 x h x w float batch per group (on the device)
    -> model -> logits N x K x h x w, ood_logits N x 2 x h x w
    -> score (hybrid by default) and argmax at h x w
    -> back to H_i x W_i (labels nearest, scores bilinear) -> threshold -> numpy
"""

from dataclasses import dataclass
import logging
import math
import os
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .classes import default_class_names, default_palette
from .models import DenseHybridModel
from .models.fusion import fuse_for_inference
from .paths import default_checkpoint
from .scoring import compute_score, open_set_from_labels, score_and_labels, UNKNOWN_ID

LOG = logging.getLogger(__name__)
OUTPUTS = ('semantic', 'score', 'open_set', 'anomaly_mask')
PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
Size = Tuple[int, int]


@dataclass
class Result:
    """Per-image outputs at the input image's size; fields not asked for are ``None``."""

    semantic: Optional[np.ndarray] = None       # H x W uint8 class ids
    score: Optional[np.ndarray] = None          # H x W float32, higher = more anomalous
    open_set: Optional[np.ndarray] = None       # H x W uint8, unknown = 255
    anomaly_mask: Optional[np.ndarray] = None   # H x W bool, score > threshold


def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' -> CUDA when available, else CPU; an explicit CUDA device must exist."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f'invalid device {device!r}: {exc}') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available '
                             f'(use device "cpu" or "auto")')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r} does not exist '
                             f'({torch.cuda.device_count()} CUDA devices)')
    elif dev.type != 'cpu':
        raise ValueError(f'unsupported device {device!r}: use auto, cpu, cuda or cuda:N')
    return dev


def inference_shape(image_shape: Sequence[int],
                    inference_size: Union[None, int, Size]) -> Size:
    """(h, w) the model sees for an H x W image: native, a width keeping aspect, or fixed."""
    h, w = int(image_shape[0]), int(image_shape[1])
    if inference_size is None or inference_size == 0:
        return h, w
    if isinstance(inference_size, int):
        return max(1, round(h * inference_size / w)), inference_size
    return int(inference_size[0]), int(inference_size[1])


class Segmenter:
    """Runs a DenseHybrid checkpoint on batches of RGB images."""

    def __init__(self, checkpoint_path: Union[None, str, os.PathLike] = None,
                 device: str = 'auto', precision: str = 'fp32',
                 inference_size: Union[None, int, Size] = None, score: str = 'hybrid',
                 channels_last: bool = True, fuse: bool = True) -> None:
        path = checkpoint_path if checkpoint_path else default_checkpoint()
        dev = resolve_device(device)
        model, meta = load_checkpoint(path, device='cpu')
        if fuse:
            model = fuse_for_inference(model)
        self._setup(model, meta, dev, precision, inference_size, score, channels_last)

    @classmethod
    def from_model(cls, model: DenseHybridModel, meta: Optional[Dict[str, Any]] = None,
                   device: str = 'auto', precision: str = 'fp32',
                   inference_size: Union[None, int, Size] = None, score: str = 'hybrid',
                   channels_last: bool = True) -> 'Segmenter':
        """Wrap an in-memory model as it is (training-time evaluation, tests); no folding."""
        self = cls.__new__(cls)
        self._setup(model, dict(meta or {}), resolve_device(device), precision, inference_size,
                    score, channels_last)
        return self

    def _setup(self, model: DenseHybridModel, meta: Dict[str, Any], device: torch.device,
               precision: str, inference_size: Union[None, int, Size], score: str,
               channels_last: bool) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {precision!r}')
        if precision == 'fp16' and device.type != 'cuda':
            raise ValueError('fp16 needs a CUDA device; use bf16 on the CPU')
        if isinstance(inference_size, int) and inference_size < 0:
            raise ValueError(f'inference width must be >= 0, got {inference_size}')
        compute_score(score, torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1))  # validates name
        self.device, self.precision, self.score_kind = device, precision, score
        self.inference_size = inference_size
        self.meta = meta
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(device, memory_format=self.memory_format)
        calibration = meta.get('calibration') or {}
        self._threshold = float(calibration.get('threshold', math.nan))
        low, high = calibration.get('score_p01'), calibration.get('score_p99')
        self.score_range = (float(low), float(high)) if low is not None and high is not None \
            and high > low else None
        if math.isnan(self._threshold):
            LOG.warning('checkpoint has no calibrated threshold: no pixel is flagged anomalous '
                        'until one is set (densehybrid-eval --threshold-from-tpr 0.95)')
        LOG.info('Segmenter: %s on %s (%s)', model.arch, device, precision)

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
            _check_image(i, image)
            groups.setdefault(inference_shape(image.shape, self.inference_size), []).append(i)
        results: List[Result] = [Result() for _ in images]
        for size, indices in groups.items():
            for i, result in zip(indices, self._run([images[i] for i in indices], size, wanted)):
                results[i] = result
        return results

    @torch.inference_mode()
    def _run(self, images: List[np.ndarray], size: Size, wanted: set) -> List[Result]:
        x = self._preprocess(images, size)                               # N x 3 x h x w
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits, ood_logits = self.model(x)                           # N x K|2 x h x w
        need_score = bool(wanted & {'score', 'open_set', 'anomaly_mask'})
        need_labels = bool(wanted & {'semantic', 'open_set'})
        score = labels = None
        if need_score:     # one pass gives both; the logits are scratch space afterwards
            score, labels = score_and_labels(self.score_kind, logits.float(),
                                             ood_logits.float(), overwrite_logits=True)
        elif need_labels:
            labels = logits.argmax(1)
        labels = labels.to(torch.uint8) if need_labels else None        # N x h x w
        # Back to each image's size: on the CPU with OpenCV on the final uint8/float32 maps
        # (no float detour for labels), on a GPU on the device before the one copy to the host.
        on_cpu = self.device.type == 'cpu'
        results = []
        for n, image in enumerate(images):
            out_size = image.shape[:2]
            s = lab = None
            if score is not None:
                s = _resize_np(score[n].numpy(), out_size, cv2.INTER_LINEAR) if on_cpu else \
                    _resize(score[n], out_size, 'bilinear').cpu().numpy()
            if labels is not None:
                lab = _resize_np(labels[n].numpy(), out_size, cv2.INTER_NEAREST) if on_cpu else \
                    _resize(labels[n], out_size, 'nearest').cpu().numpy()
            results.append(Result(
                semantic=lab if 'semantic' in wanted else None,
                score=s if 'score' in wanted else None,
                open_set=open_set_from_labels(lab, s, self._threshold, UNKNOWN_ID)
                if 'open_set' in wanted else None,
                anomaly_mask=(s > self._threshold) if 'anomaly_mask' in wanted else None))
        return results

    def _preprocess(self, images: List[np.ndarray], size: Size) -> torch.Tensor:
        """Stack uint8 HWC images of any sizes into one float batch at ``size`` on the device."""
        if all(image.shape == images[0].shape for image in images):
            chunks = [np.stack(images)]
        else:
            chunks = [image[None] for image in images]
        batches = []
        for chunk in chunks:
            if self.device.type == 'cpu' and chunk.shape[1:3] != size:
                # On the CPU, resize the uint8 image with OpenCV (area averaging when shrinking):
                # several times cheaper than a float antialiased resize in torch.
                chunk = np.stack([_resize_np(im, size, cv2.INTER_AREA if size[0] < im.shape[0]
                                             else cv2.INTER_LINEAR) for im in chunk])
            x = torch.from_numpy(chunk).to(self.device, non_blocking=True)  # n x H x W x 3
            x = x.permute(0, 3, 1, 2).float().div_(255.0)                   # n x 3 x H x W
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=False,
                                  antialias=size[0] < x.shape[-2])
            batches.append(x)
        x = batches[0] if len(batches) == 1 else torch.cat(batches)
        return x.contiguous(memory_format=self.memory_format)


def _resize_np(x: np.ndarray, size: Sequence[int], interpolation: int) -> np.ndarray:
    """Resize an H x W (x C) array to ``size`` (H, W) with OpenCV (half-pixel centres)."""
    if tuple(x.shape[:2]) == tuple(size):
        return x
    return cv2.resize(x, (int(size[1]), int(size[0])), interpolation=interpolation)


def _resize(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize one h x w map to ``size``; labels with nearest, scores bilinear."""
    if tuple(x.shape) == tuple(size):
        return x
    if mode == 'nearest':
        return F.interpolate(x[None, None].float(), size=tuple(size),
                             mode='nearest')[0, 0].to(x.dtype)
    return F.interpolate(x[None, None], size=tuple(size), mode='bilinear',
                         align_corners=False)[0, 0]


def _check_image(index: int, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        desc = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f'image {index} must be a non-empty H x W x 3 uint8 RGB array, '
                         f'got {desc}')
