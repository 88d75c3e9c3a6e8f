"""Where densehybrid-eval's results come from: the model run on each frame, or a recording.

Both kinds have one interface: the model's class names, palette, calibration and threshold, and
``results(frames)`` giving per frame ``score`` (H x W float32) and, where available,
``semantic`` and ``open_set`` (H x W uint8) and ``anomaly_mask`` (H x W bool). ``components``
gives the object-level predictions that the component metrics score: ``mask`` (the thresholded
anomaly mask, as SegmentMeIfYouCan scores it) and ``instances`` (the instance-id image of
:func:`instance_ids`, the one place a result becomes instances).
"""

import argparse
import math
from typing import Any, Dict, List, Optional, Protocol

import numpy as np

from .sources import EvalError
from ..model.options import segmenter_from_args
from ...core.classes import default_class_names, default_palette, UNKNOWN_ID
from ...core.instances import find_instances
from ...core.paths import default_checkpoint
from ...data.bags import Frame

CITYSCAPES_FALLBACK = 19
Result = Dict[str, np.ndarray]


def instance_ids(score: np.ndarray, semantic: Optional[np.ndarray], threshold: float
                 ) -> np.ndarray:
    """H x W uint16 instance ids (0 = none) of one frame, as ``core.instances`` finds them."""
    return find_instances(score, semantic, threshold).ids


def predictions_at(score: np.ndarray, semantic: Optional[np.ndarray], threshold: float
                   ) -> Dict[str, np.ndarray]:
    """Return ``mask`` (``score > threshold``) and ``instances`` of one frame; {} without one."""
    if not math.isfinite(threshold):
        return {}
    return {'mask': score > threshold, 'instances': instance_ids(score, semantic, threshold)}


class Results(Protocol):
    """What both kinds of results offer (``ModelResults``, ``RecordedResults``)."""

    checkpoint: Optional[str]
    num_classes: int
    class_names: List[str]
    palette: np.ndarray
    calibration: Optional[Dict[str, Any]]
    threshold: float                 # the threshold in effect (NaN: none, or unknown)
    prediction_threshold: float      # the one instances (and a missing mask) are made at
    threshold_source: str

    def results(self, frames: List[Frame]) -> List[Result]:
        """Per frame: score and what else the results hold."""

    def components(self, result: Result) -> Dict[str, np.ndarray]:
        """Object-level predictions of one result, by name."""


class ModelResults:
    """Results of the Segmenter run on each frame's camera image."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.segmenter = seg = segmenter_from_args(args)
        self.checkpoint: Optional[str] = str(seg.meta.get('path', args.checkpoint))
        self.num_classes = int(seg.model.num_classes)
        self.class_names: List[str] = list(seg.class_names)
        self.palette: np.ndarray = seg.palette
        self.calibration: Optional[Dict[str, Any]] = seg.calibration
        self.threshold_source = 'none'
        if args.threshold is not None:
            seg.threshold = args.threshold
            self.threshold_source = '--threshold'
        elif not math.isnan(seg.threshold):
            self.threshold_source = 'checkpoint calibration'
        self.threshold = float(seg.threshold)

    def results(self, frames: List[Frame]) -> List[Result]:
        """Per frame: score, semantic, open_set and anomaly_mask from the model."""
        images = []
        for f in frames:
            image = f.arrays.get('image')       # bags and benchmarks decode cameras to RGB
            if image is None or image.ndim != 3 or image.dtype != np.uint8:
                raise EvalError(f'frame {f.index}: camera image must be 8-bit colour, '
                                f'got {None if image is None else (image.dtype, image.shape)}')
            images.append(image)
        return [{'score': r.score, 'semantic': r.semantic, 'open_set': r.open_set,
                 'anomaly_mask': r.anomaly_mask} for r in self.segmenter(images)]

    @property
    def prediction_threshold(self) -> float:
        """The threshold in effect: the model's own predictions are made at it."""
        return self.threshold

    def components(self, result: Result) -> Dict[str, np.ndarray]:
        """Mask and instances at the threshold in effect (none when it is NaN)."""
        return predictions_at(result['score'], result.get('semantic'), self.threshold)


class RecordedResults:
    """Results the live node published, read from a bag (--recorded).

    The figures use the node's own mask (the recorded ``open_set``), so the threshold in
    effect is the node's and stays unknown here (NaN). Where a prediction needs a threshold
    (instances; the mask of a recording without ``open_set``), ``prediction_threshold`` stands in:
    ``--threshold``, else the calibration of the checkpoint the node ran.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        meta: Dict[str, Any] = {}
        self.checkpoint: Optional[str] = None
        path = args.checkpoint or (default_checkpoint() if not args.num_classes
                                   and default_checkpoint().is_file() else None)
        if path:                   # class names and palette of the model the node ran
            from ...models.checkpoint import read_checkpoint    # torch: --help stays fast
            meta = read_checkpoint(path)
            self.checkpoint = str(path)
        self.num_classes = int(meta.get('num_classes', args.num_classes or CITYSCAPES_FALLBACK))
        self.class_names = list(meta.get('class_names') or default_class_names(self.num_classes))
        self.palette = np.asarray(meta['palette'], np.uint8) if 'palette' in meta \
            else default_palette(self.num_classes)
        self.calibration = meta.get('calibration')
        self.threshold = math.nan
        self.threshold_source = 'applied by the node (recorded open_set)'
        calibrated = (self.calibration or {}).get('threshold')
        self.prediction_threshold = float(
            args.threshold if args.threshold is not None
            else calibrated if calibrated is not None else math.nan)

    def results(self, frames: List[Frame]) -> List[Result]:
        """Per frame: the recorded score and, where recorded, semantic and open_set."""
        out = []
        for f in frames:
            score = f.arrays['score']
            if score.dtype != np.float32 or score.ndim != 2:
                raise EvalError(f'frame {f.index}: recorded anomaly_score must be 32FC1, '
                                f'got {score.dtype} {score.shape}')
            out.append({k: f.arrays[k] for k in ('score', 'semantic', 'open_set')
                        if k in f.arrays})
        return out

    def components(self, result: Result) -> Dict[str, np.ndarray]:
        """Return the node's mask (recorded open_set) and the instances at the node's threshold."""
        found = predictions_at(result['score'], result.get('semantic'), self.prediction_threshold)
        if 'open_set' in result:
            found['mask'] = result['open_set'] == UNKNOWN_ID
        return found


def open_results(args: argparse.Namespace, recorded: bool) -> Results:
    """Open the results of the model (``recorded`` False) or of the node's recorded topics."""
    return RecordedResults(args) if recorded else ModelResults(args)
