"""Segmenter: images in, semantic / anomaly score / open-set maps out, at each image's own size.

Pipeline:
    list of H_i x W_i x 3 uint8 RGB
    -> group by inference size (at most MAX_INFERENCE_PIXELS) -> one N x 3 x h x w float batch
       per group (on the backend's device)
    -> backend (torch eager, onnxruntime, openvino: densehybrid_ros.backends): model, score
       (hybrid by default) and argmax -> labels, score N x h x w
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

from .backends import Backend, check_backend, make_backend
from .checkpoint import CheckpointError, load_checkpoint
from .classes import default_class_names, default_palette
from .models import DenseHybridModel
from .models.fusion import fuse_for_inference
from .outputs import calibrated_range
from .paths import default_checkpoint
from .scoring import compute_score, open_set_from_labels, UNKNOWN_ID

LOG = logging.getLogger(__name__)
OUTPUTS = ('semantic', 'score', 'open_set', 'anomaly_mask')
Size = Tuple[int, int]
# Default bound on the pixels the model sees per image (the outputs keep the camera size):
# 2 MiP = 1024 x 2048, Cityscapes' native size. Without a bound one 8000 x 8000 frame took the
# node past 6.7 GB RSS in 17 s (issue 15).
MAX_INFERENCE_PIXELS = 2048 * 1024


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


def inference_shape(image_shape: Sequence[int], inference_size: Union[None, int, Size],
                    max_pixels: int = MAX_INFERENCE_PIXELS, max_native_width: int = 0) -> Size:
    """(h, w) the model sees for an H x W image: native, a width keeping aspect, or fixed.

    Native (``inference_size`` None or 0) wider than ``max_native_width`` (0 = no bound: the
    checkpoint's ``max_inference_width``) shrinks to that width; larger than ``max_pixels``
    (0 = no bound), the size shrinks keeping the aspect ratio.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    if not inference_size and 0 < max_native_width < w:
        inference_size = max_native_width                   # downscale only, never up
    if isinstance(inference_size, int) and inference_size > 0:
        h, w = max(1, round(h * inference_size / w)), inference_size
    elif inference_size is not None and not isinstance(inference_size, int):
        h, w = int(inference_size[0]), int(inference_size[1])
    if max_pixels and h * w > max_pixels:
        scale = math.sqrt(max_pixels / (h * w))
        h, w = max(1, int(h * scale)), max(1, int(w * scale))
    return h, w


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
        # Graph runtimes take host arrays: 'auto' is the CPU for them (ORT's CUDA provider only
        # when asked for explicitly).
        dev = resolve_device('cpu' if backend != 'torch' and device == 'auto' else device)
        self.precision, self.score_kind, self.backend_name = precision, score, backend
        self.inference_size, self.max_inference_pixels = inference_size, max_inference_pixels
        # The widest native input the model is meant for (measured per model, model card).
        self.max_native_width = int(meta.get('max_inference_width') or 0)
        self.meta = meta
        self.model = model.eval()
        self.backend: Backend = make_backend(
            backend, model=model, meta=meta, precision=precision, score=score, device=str(dev),
            channels_last=channels_last, artifacts=artifacts)
        self.device = self.backend.device            # where preprocessing puts the batch
        self.memory_format = torch.channels_last if channels_last and backend == 'torch' \
            else torch.contiguous_format
        calibration = self.backend.calibration or meta.get('calibration') or {}
        self.calibration: Dict[str, Any] = dict(calibration)     # in effect for this backend
        self._threshold = float(calibration.get('threshold', math.nan))
        self.score_range = calibrated_range(calibration)         # the heatmap range rule
        if math.isnan(self._threshold):
            LOG.warning('checkpoint has no calibrated threshold: no pixel is flagged anomalous '
                        'until one is set (densehybrid-eval --threshold-from-tpr 0.95)')
        LOG.info('Segmenter: %s on %s, %s backend (%s)', model.arch, dev, backend, precision)

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
        x = self._preprocess(images, size)                               # N x 3 x h x w
        need_score = bool(wanted & {'score', 'open_set', 'anomaly_mask'})
        need_labels = bool(wanted & {'semantic', 'open_set'})
        labels, score = self.backend.infer(x, need_score)                 # N x h x w each
        labels = labels if need_labels else None
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
        return to_batch(images, size, self.device, self.memory_format)


def to_batch(images: Sequence[np.ndarray], size: Size, device: torch.device = torch.device('cpu'),
             memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Stack uint8 HWC images of any sizes into one float batch at ``size`` on the device."""
    if all(image.shape == images[0].shape for image in images):
        chunks = [np.stack(images)]
    else:
        chunks = [image[None] for image in images]
    batches = []
    for chunk in chunks:
        if device.type == 'cpu' and chunk.shape[1:3] != size:
            # On the CPU, resize the uint8 image with OpenCV (area averaging when shrinking):
            # several times cheaper than a float antialiased resize in torch.
            chunk = np.stack([_resize_np(im, size, cv2.INTER_AREA if size[0] < im.shape[0]
                                         else cv2.INTER_LINEAR) for im in chunk])
        x = torch.from_numpy(chunk).to(device, non_blocking=True)  # n x H x W x 3
        x = x.permute(0, 3, 1, 2).float().div_(255.0)                   # n x 3 x H x W
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False,
                              antialias=size[0] < x.shape[-2])
        batches.append(x)
    x = batches[0] if len(batches) == 1 else torch.cat(batches)
    return x.contiguous(memory_format=memory_format)


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


@torch.inference_mode()
def check_finite(model: DenseHybridModel, source: Any, size: Size = (64, 128)) -> None:
    """Refuse a model whose outputs are not finite (NaN weights): one pass on a grey ramp."""
    ramp = torch.linspace(0.0, 1.0, size[0] * size[1]).view(1, 1, *size).expand(1, 3, *size)
    outputs = model.eval()(ramp.contiguous())
    for name, out in zip(('logits', 'ood_logits'), outputs):
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise CheckpointError(f'{source}: the model gives non-finite {name} ({bad} of '
                                  f'{out.numel()} values NaN or inf on a test image); its '
                                  f'weights are broken')


def _check_image(index: int, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        desc = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f'image {index} must be a non-empty H x W x 3 uint8 RGB array, '
                         f'got {desc}')
