"""The node's output contract: output names, encodings, topics and how each one is drawn.

Everything that publishes, records, replays, evaluates or benchmarks the node's outputs imports
this table, so they cannot disagree (pure core: numpy and OpenCV only).

Topics: a camera ``<ns>/<name>`` (``/compressed`` stripped) publishes ``<ns>/densehybrid/<out>``;
cameras that share a namespace (``/camera/left``, ``/camera/right``) publish
``<ns>/densehybrid/<name>/<out>`` so their outputs stay apart.

Heatmap range, the one rule: the checkpoint calibration's ``(score_p01, score_p99)`` when it
has them (``high > low``); otherwise the 1st..99th percentile of the finite scores of the first
frame drawn, frozen from then on (``high = low + 1`` if that frame is flat), so a colour means
the same score in every later frame.
"""

import logging
import math
from typing import (Any, Callable, Collection, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Set, Tuple)

import numpy as np

from . import visualize

LOG = logging.getLogger(__name__)
Range = Tuple[float, float]


class OutputSpec(NamedTuple):
    """One output topic: its name, ROS image encoding and the Segmenter outputs it is made of."""

    name: str
    encoding: str
    needs: Tuple[str, ...]


# In publishing order. ``needs`` are names of ``inference.Segmenter`` outputs.
OUTPUTS: Dict[str, OutputSpec] = {spec.name: spec for spec in (
    OutputSpec('semantic', 'mono8', ('semantic',)),              # class ids
    OutputSpec('semantic_color', 'rgb8', ('semantic',)),         # class colours
    OutputSpec('anomaly_score', '32FC1', ('score',)),            # raw score, higher = anomalous
    OutputSpec('anomaly_heatmap', 'rgb8', ('score',)),           # inferno over the fixed range
    OutputSpec('confidence', 'mono8', ('score',)),               # 0..255 over the fixed range
    OutputSpec('open_set', 'mono8', ('open_set',)),              # class ids, 255 = unknown
    OutputSpec('anomaly_mask', 'mono8', ('anomaly_mask',)),      # 255 where score > threshold
    OutputSpec('overlay', 'rgb8', ('open_set',)),                # open-set colours over camera
)}
# Pictures that are not topics (files written by the offline tools).
PICTURE_NEEDS = {'open_set_color': ('open_set',)}
_NEEDS = {**{name: spec.needs for name, spec in OUTPUTS.items()}, **PICTURE_NEEDS}
COMPRESSED_SUFFIX = '/compressed'


def needs(names: Iterable[str]) -> Set[str]:
    """Return the Segmenter outputs needed to draw ``names`` (output or picture names)."""
    names = list(names)
    unknown = sorted(set(names) - set(_NEEDS))
    if unknown:
        raise ValueError(f'unknown outputs {unknown}; choose from {", ".join(_NEEDS)}')
    return {need for name in names for need in _NEEDS[name]}


# --------------------------------------------------------------------------- topic naming
def camera_base(topic: str) -> str:
    """Return the raw image topic of an input: ``/compressed`` and a trailing ``/`` stripped."""
    topic = topic.rstrip('/')
    return topic[:-len(COMPRESSED_SUFFIX)] if topic.endswith(COMPRESSED_SUFFIX) else topic


def output_namespaces(input_topics: Sequence[str]) -> List[str]:
    """``<ns>/densehybrid`` per resolved input ``<ns>/<name>``; ``.../<name>`` if ns is shared."""
    split = [camera_base(t).rpartition('/')[::2] for t in input_topics]
    namespaces = [ns for ns, _ in split]
    return [f'{ns}/densehybrid' + (f'/{name}' if namespaces.count(ns) > 1 else '')
            for ns, name in split]


def output_topics(input_topics: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """Map each input topic (as given) to ``{output name: topic}`` for every output."""
    return {topic: {name: f'{ns}/{name}' for name in OUTPUTS}
            for topic, ns in zip(input_topics, output_namespaces(input_topics))}


# --------------------------------------------------------------------------- heatmap range
def calibrated_range(calibration: Optional[Mapping[str, Any]]) -> Optional[Range]:
    """``(score_p01, score_p99)`` of a checkpoint calibration; None if absent or not low < high."""
    calibration = calibration or {}
    low, high = calibration.get('score_p01'), calibration.get('score_p99')
    if low is None or high is None or not float(high) > float(low) \
            or not math.isfinite(float(low)) or not math.isfinite(float(high)):
        return None
    return float(low), float(high)


def range_of(score: np.ndarray) -> Range:
    """Fallback range: 1st..99th percentile of the finite scores; ``high = low + 1`` if flat."""
    finite = score[np.isfinite(score)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, (1, 99)))
    return low, high if high > low else low + 1.0


def confidence_image(score: np.ndarray, score_range: Range) -> np.ndarray:
    """H x W uint8: 0 at or below the range's low end, 255 at or above its high end.

    The mono8 confidence Nav2's semantic_segmentation_layer reads beside a mask; NaN is 0.
    """
    low, high = score_range
    scaled = (np.nan_to_num(score, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0.0, 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- rendering
def _field(result: Any, key: str) -> np.ndarray:
    """``result.<key>`` of an ``inference.Result``, or ``result[key]`` of a mapping."""
    value = result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)
    if value is None:
        raise ValueError(f'the result has no {key!r} map (ask the Segmenter for it)')
    return value


class Renderer:
    """Draws every output and picture of one result with one palette and one heatmap range."""

    def __init__(self, palette: np.ndarray, calibration: Optional[Mapping[str, Any]] = None,
                 alpha: float = 0.5) -> None:
        self.lut = visualize.label_lut(palette)                  # 256 x 3, unknown at 255
        self.alpha = float(alpha)                                # overlay weight, settable
        self.score_range: Optional[Range] = calibrated_range(calibration)
        self._draw: Dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
            'semantic': lambda rgb, r: _field(r, 'semantic'),
            'semantic_color': lambda rgb, r: visualize.colorize(_field(r, 'semantic'), self.lut),
            'anomaly_score': lambda rgb, r: _field(r, 'score'),
            'anomaly_heatmap': lambda rgb, r: visualize.heatmap(
                _field(r, 'score'), self.heatmap_range(_field(r, 'score'))),
            'confidence': lambda rgb, r: confidence_image(
                _field(r, 'score'), self.heatmap_range(_field(r, 'score'))),
            'open_set': lambda rgb, r: _field(r, 'open_set'),
            'anomaly_mask': lambda rgb, r: _field(r, 'anomaly_mask').view(np.uint8)
            * np.uint8(255),
            'overlay': lambda rgb, r: visualize.overlay(
                rgb, visualize.colorize(_field(r, 'open_set'), self.lut), self.alpha),
            'open_set_color': lambda rgb, r: visualize.colorize(_field(r, 'open_set'), self.lut),
        }

    def heatmap_range(self, score: np.ndarray) -> Range:
        """Return the calibrated range; without one, freeze :func:`range_of` the first frame."""
        if self.score_range is None:
            self.score_range = range_of(score)
            LOG.warning('checkpoint has no calibrated score range: heatmap range fixed to '
                        '[%.3g, %.3g] from the first frame', *self.score_range)
        return self.score_range

    def render(self, name: str, rgb: np.ndarray, result: Any) -> np.ndarray:
        """Draw output ``name`` of ``result`` (``inference.Result`` or a mapping) for ``rgb``.

        Shapes: label outputs H x W uint8, ``anomaly_score`` H x W float32, colour outputs
        H x W x 3 uint8 RGB; ``anomaly_mask`` is 0/255 uint8.
        """
        draw = self._draw.get(name)
        if draw is None:
            raise ValueError(f'unknown output {name!r}; choose from {", ".join(self._draw)}')
        return draw(rgb, result)

    def render_all(self, names: Collection[str], rgb: np.ndarray, result: Any
                   ) -> Dict[str, np.ndarray]:
        """Draw several outputs of one result: ``{name: array}``."""
        return {name: self.render(name, rgb, result) for name in names}
