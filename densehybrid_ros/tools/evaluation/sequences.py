"""Object figures of a sequence bag: the node's obstacle pipeline over its frames, scored.

A bag written by ``densehybrid-make-bag --sequence`` carries, next to the camera, per-pixel
anomaly instance ids and a ground-truth JSON per frame (every object's range, lateral offset,
size and visibility, the camera's intrinsics and mount). :class:`SequenceSink` runs what the node
runs per camera (``core.obstacles.ObstaclePipeline`` with its default rules: instances ->
confirmed tracks -> placement) on each frame's result, as the frames come, and scores it with
``metrics.sequence``: frames and range to first confirmation, objects confirmed before half
their first range, id switches, flicker, phantom tracks per 100 frames, and range / lateral
errors of the placements (ground plane; and depth where the bag has a depth image).
"""

from typing import Any, Dict, Optional

import numpy as np

from ...core.obstacles import Geometry
from ...metrics.sequence import level_geometry, SequenceEvaluator, SequenceMetrics


class SequenceSink:
    """Feeds a sequence bag's frames and results to the sequence metrics."""

    def __init__(self, threshold: float, metrics: Optional[SequenceMetrics] = None) -> None:
        self.height = 1.0                   # camera height of the ground truth's mount
        self.evaluator = SequenceEvaluator(threshold, geometry_factory=self._geometry,
                                           metrics=metrics)
        self.frames = 0

    def _geometry(self, k: np.ndarray, size: Any) -> Geometry:
        return level_geometry(k, size, self.height)

    def add(self, frame: Any, result: Dict[str, np.ndarray]) -> None:
        """Score one frame that has instance ids and ground truth (others are left out)."""
        truth = frame.data.get('truth')
        instances = frame.arrays.get('instances')
        if truth is None or instances is None:
            return
        camera = truth['camera']
        self.height = float(camera['mount']['height'])
        k = np.asarray(camera['k'], np.float64).reshape(3, 3)
        self.evaluator.add(result['score'], result.get('semantic'), instances,
                           truth['objects'], k, frame.arrays.get('depth'))
        self.frames += 1

    @property
    def metrics(self) -> SequenceMetrics:
        """The accumulators (saved with the run's state, merged across shards)."""
        return self.evaluator.metrics

    def summary(self) -> Optional[Dict[str, Any]]:
        """Close the sequence and return its figures; None when no frame had ground truth."""
        if not self.frames:
            return None
        self.evaluator.end()
        return {'frames': self.frames, **self.metrics.compute()}
