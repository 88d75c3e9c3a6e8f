"""int8 for OpenVINO: user calibration frames, NNCF quantisation, threshold recalibrated.

Calibration frames come from a folder of images or a rosbag2 (its camera topic, plus the
``anomaly_label`` topic when the bag has one, as the sample bags do). The threshold of the
int8 graph is recalibrated (:func:`densehybrid_ros.metrics.calibration.calibrate`) at the
checkpoint's target TPR when anomaly labels exist; without labels it is set so that the int8
graph flags the same fraction of the calibration pixels as the fp32 model does at the fp32
threshold.
"""

from dataclasses import dataclass
import logging
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..core.images import decode_compressed, ImageError, MAX_PIXELS
from ..models import DenseHybridModel
from .graph import FrameGraph
from .preprocess import to_batch
from .runtimes import ExportError, require
from ..metrics.calibration import calibrate, calibration_rule

# What the one decoder reads (core.images: size checked from the header before decoding).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# OpenVINO op types that stay float in the int8 graph: the full-resolution score and argmax
# after the heads. Left to NNCF's defaults it put an int8 FakeQuantize on the 19 x 512 x 1024
# ``logits - max`` (ldn121: score |d| 1.3e-2 and 28 ms of FakeQuantize); convolutions, where
# int8 pays, are unaffected. Subtract also covers the ImageNet normalisation of the input.
FLOAT_OPS = ('Subtract', 'Exp', 'Log', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'Equal', 'Select',
             'Interpolate')
Size = Tuple[int, int]


@dataclass
class CalibrationFrame:
    """One RGB frame and, from a labelled bag, its anomaly map (0 inlier, 1 anomaly, else void)."""

    image: np.ndarray                       # H x W x 3 uint8
    anomaly: Optional[np.ndarray] = None    # H x W uint8


def calibration_frames(source: Union[str, Path], limit: int = 64) -> List[CalibrationFrame]:
    """Up to ``limit`` frames of a folder of images or a rosbag2, spread over the source."""
    path = Path(source)
    if not path.exists():
        raise ExportError(f'calibration source not found: {path}')
    if path.is_dir() and not (path / 'metadata.yaml').exists():
        frames = list(_folder_frames(path))
    else:
        frames = list(_bag_frames(path))
    if not frames:
        raise ExportError(f'no calibration frames in {path} (images: '
                          f'{", ".join(IMAGE_SUFFIXES)}, or a rosbag2 with an image topic)')
    step = max(1, len(frames) // limit)
    return frames[::step][:limit]


def _folder_frames(path: Path, max_pixels: int = MAX_PIXELS) -> Iterator[CalibrationFrame]:
    for file in sorted(path.iterdir()):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                rgb = decode_compressed(file.read_bytes(), file.suffix.lstrip('.').lower(),
                                        max_pixels)
            except ImageError as exc:
                raise ExportError(f'calibration image {file} refused ({exc.cause}): '
                                  f'{exc}') from None
            except OSError as exc:
                raise ExportError(f'calibration image {file} cannot be read: '
                                  f'{exc.strerror or exc}') from None
            yield CalibrationFrame(rgb)


def _bag_frames(path: Path) -> Iterator[CalibrationFrame]:
    from ..data.bags import ANOMALY_NAMES, BagReader
    with BagReader(path) as bag:
        cameras = bag.camera_topics()          # bags.py: not node results, not label maps
        if len(cameras) != 1:
            raise ExportError(f'{path}: cannot tell the camera topic among {cameras or "none"}')
        roles = {'image': cameras[0]}
        anomaly = bag.label_topic(cameras[0].rsplit('/', 1)[0], ANOMALY_NAMES)
        if anomaly:
            roles['anomaly'] = anomaly
        for frame in bag.frames(roles, partial=True):
            image = frame.arrays.get('image')       # H x W x 3 RGB (bags' camera decoder)
            if image is not None:
                yield CalibrationFrame(image, frame.arrays.get('anomaly'))


def quantize_openvino(model: DenseHybridModel, meta: Dict[str, Any], onnx_path: Path,
                      size: Size, frames: Sequence[CalibrationFrame], output: Path,
                      score: str = 'hybrid') -> Dict[str, Any]:
    """NNCF-quantise the fp32 graph on ``frames``, save the IR; return its calibration."""
    ov = require('openvino', 'int8 export')
    nncf = require('nncf', 'int8 export')
    nncf.set_log_level(logging.ERROR)           # no progress bars in tools' output
    frames = list(frames)
    batches = [to_batch([f.image], size).numpy() for f in frames]    # 1 x 3 x h x w each
    fp32 = ov.convert_model(str(onnx_path))
    int8 = nncf.quantize(fp32, nncf.Dataset(batches), subset_size=len(batches),
                         preset=nncf.QuantizationPreset.MIXED, fast_bias_correction=True,
                         ignored_scope=nncf.IgnoredScope(types=list(FLOAT_OPS), validate=False))
    ov.save_model(int8, str(output), compress_to_fp16=False)
    compiled = ov.Core().compile_model(int8, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    scores = np.stack([compiled(x)['score'][0] for x in batches])     # F x h x w
    graph = FrameGraph(model, score).eval()
    with torch.no_grad():
        reference = np.stack([graph(torch.from_numpy(x))[1][0].numpy() for x in batches])
    anomaly = [f.anomaly for f in frames]
    labels = np.stack([cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
                       for a in anomaly]) if all(a is not None for a in anomaly) else None
    return recalibrate(meta.get('calibration') or {}, scores, reference, labels,
                       f'{len(frames)} calibration frames at {size[0]}x{size[1]}, int8')


def recalibrate(calibration: Dict[str, Any], scores: np.ndarray, reference: np.ndarray,
                anomaly: Optional[np.ndarray], measured_on: str) -> Dict[str, Any]:
    """Threshold of a quantised graph: on labels if any, else matching fp32's flagged fraction."""
    threshold = float(calibration.get('threshold', math.nan))
    if anomaly is not None and ((anomaly == 1).any() and (anomaly == 0).any()):
        rule = calibration_rule(calibration)
        out = calibrate(scores, anomaly, measured_on=measured_on + ', anomaly labels', **rule)
        # The fp32 model's threshold on the same frames, to compare like with like.
        out['fp32_threshold_same_frames'] = calibrate(reference, anomaly, **rule)['threshold']
        out['method'] = next(iter(rule))
        return out
    out = dict(calibration)
    p01, p99 = np.percentile(scores, [1.0, 99.0])
    out.update(score_p01=float(p01), score_p99=float(p99), measured_on=measured_on,
               method='matched_fraction')
    if not math.isnan(threshold):
        flagged = float(np.mean(reference > threshold))
        out['threshold'] = float(np.quantile(scores, 1.0 - flagged)) if flagged > 0 \
            else float(scores.max())
        out['fp32_threshold'] = threshold
        out['flagged_fraction'] = flagged
    return out
