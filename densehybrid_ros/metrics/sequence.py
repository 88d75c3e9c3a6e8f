"""Score the obstacle pipeline over a sequence: tracks against ground-truth objects, placements.

``evaluate_sequence`` runs one camera's ``core.obstacles.ObstaclePipeline`` (instances ->
tracks -> 3-D placement) over the frames of one sequence, as the node does, and feeds

- :class:`~densehybrid_ros.metrics.temporal.TrackingMetrics` with the confirmed tracks;
- two :class:`~densehybrid_ros.metrics.placement.PlacementMetrics`, ``ground`` (the ground
  contact intersected with the ground plane) and ``depth`` (frames that carry a depth image),
  with the placement of every confirmed track matched in the frame against the ground-truth
  object it detects (the one it overlaps most). Ground: ``ObstaclePipeline.place`` as the node
  calls it; depth: ``core.projection.place_with_depth`` on the matched instance's pixels (what
  the pipeline does with a depth image). A track whose depth placement fails (no valid depth
  under it) is left out of the depth figures.

The caller brings the model's outputs (score and semantic maps, e.g. from the Segmenter), so
this module needs only ``core``: it never runs a model, reads a bag or touches ROS.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from ..core.camera import CameraModel, MountPose
from ..core.obstacles import Geometry, ObstacleFrame, ObstaclePipeline
from ..core.projection import GridSpec, Placement, place_with_depth
from .placement import PlacementMetrics
from .temporal import object_field, TrackingMetrics

__all__ = ['SequenceEvaluator', 'SequenceMetrics', 'evaluate_sequence', 'level_geometry']

# One frame: score H x W float32, semantic H x W uint8 (or None), ground-truth instance ids
# H x W uint16, ground-truth objects (id, range, lateral, pixels), K 3 x 3, depth H x W float32
# world units / metres along the optical axis (or None).
FrameInput = Tuple[np.ndarray, Optional[np.ndarray], np.ndarray, Sequence[Any], np.ndarray,
                   Optional[np.ndarray]]
GeometryFactory = Callable[[np.ndarray, Tuple[int, int]], Geometry]


def level_geometry(k: np.ndarray, size: Tuple[int, int], height: float = 1.0) -> Geometry:
    """Geometry of a level pinhole camera ``height`` above the base origin (the generator's).

    ``k`` the 3 x 3 intrinsics, ``size`` the image (H, W). Base frame: x forward = the camera's
    range, y left = -lateral, z up; one unit is the camera height of the synthetic sequences.
    """
    k = np.asarray(k, np.float64).reshape(3, 3)
    camera = CameraModel(int(size[1]), int(size[0]), float(k[0, 0]), float(k[1, 1]),
                         float(k[0, 2]), float(k[1, 2]))
    return Geometry(camera, MountPose.from_mount(camera_height=height), GridSpec())


@dataclass
class SequenceMetrics:
    """The accumulators of sequence evaluation: tracking and both placement modes."""

    tracking: TrackingMetrics = field(default_factory=TrackingMetrics)
    ground: PlacementMetrics = field(default_factory=lambda: PlacementMetrics('ground'))
    depth: PlacementMetrics = field(default_factory=lambda: PlacementMetrics('depth'))

    def parts(self) -> Dict[str, Any]:
        """Return name -> accumulator (keyword arguments of ``metrics.anomaly.save_state``)."""
        return {'tracking': self.tracking, 'placement_ground': self.ground,
                'placement_depth': self.depth}

    def compute(self) -> Dict[str, Any]:
        """Return every figure by part name (JSON-ready)."""
        return {name: part.compute() for name, part in self.parts().items()}

    def merge(self, other: 'SequenceMetrics') -> 'SequenceMetrics':
        """Add another evaluation's accumulators; returns self."""
        self.tracking.merge(other.tracking)
        self.ground.merge(other.ground)
        self.depth.merge(other.depth)
        return self


class SequenceEvaluator:
    """Frame by frame: one camera's fresh pipeline over one sequence, fed to the accumulators.

    ``add`` takes one frame (the parts of :data:`FrameInput`), ``end`` closes the sequence
    (objects still running are recorded); ``metrics.compute()`` gives the figures.
    """

    def __init__(self, threshold: float,
                 pipeline_factory: Callable[[], ObstaclePipeline] = ObstaclePipeline,
                 geometry_factory: GeometryFactory = level_geometry,
                 metrics: Optional[SequenceMetrics] = None) -> None:
        self.threshold = threshold
        self.metrics = SequenceMetrics() if metrics is None else metrics
        self.pipeline = pipeline_factory()
        self.geometry_factory = geometry_factory
        self._geometries: Dict[Tuple[bytes, Tuple[int, int]], Geometry] = {}
        self._index = 0

    def add(self, score: np.ndarray, semantic: Optional[np.ndarray], gt_instances: np.ndarray,
            gt_objects: Sequence[Any], k: np.ndarray, depth: Optional[np.ndarray] = None
            ) -> None:
        """Run the pipeline on one frame and score its tracks and placements."""
        metrics, pipeline = self.metrics, self.pipeline
        frame = pipeline.update(score, semantic, self.threshold, stamp=float(self._index))
        self._index += 1
        detections = metrics.tracking.update(gt_instances, gt_objects, frame.tracks,
                                             frame.instances.ids)
        size = frame.instances.shape
        key = (np.asarray(k, np.float64).tobytes(), size)
        geometry = self._geometries.get(key)
        if geometry is None:
            geometry = self._geometries[key] = self.geometry_factory(
                np.asarray(k, np.float64), size)
        placed = {'ground': dict(pipeline.place(frame, geometry))}
        if depth is not None:
            placed['depth'] = _depth_placements(frame, geometry, depth)
        objects = {int(object_field(o, 'id')): o for o in gt_objects}
        for track_id in frame.matched:
            found = detections.get(track_id)
            if not found or found[0] not in objects:
                continue
            truth = objects[found[0]]
            gt_range = float(object_field(truth, 'range'))
            if not gt_range > 0:
                continue
            gt_lateral = float(object_field(truth, 'lateral'))
            for mode, placements in placed.items():
                placement = placements.get(track_id)
                if placement is not None:
                    getattr(metrics, mode).update(placement.position, gt_range, gt_lateral)

    def end(self) -> None:
        """Close the sequence: objects still followed are recorded."""
        self.metrics.tracking.end_sequence()


def evaluate_sequence(frames: Iterable[FrameInput], threshold: float,
                      pipeline_factory: Callable[[], ObstaclePipeline] = ObstaclePipeline,
                      geometry_factory: GeometryFactory = level_geometry,
                      metrics: Optional[SequenceMetrics] = None) -> Dict[str, Any]:
    """Run a fresh pipeline over one sequence's frames; return the figures (``compute``).

    ``frames`` yields ``(score, semantic, gt_instances, gt_objects, K, depth or None)``
    (:data:`FrameInput`); ``threshold`` the calibrated score threshold; ``pipeline_factory``
    builds the per-camera pipeline (its instance and tracker rules); ``geometry_factory(K,
    (H, W))`` the camera geometry (default: :func:`level_geometry`). With ``metrics`` the
    sequence is added to those accumulators (evaluate several sequences, then ``compute``);
    the returned figures are then those of everything accumulated.
    """
    evaluator = SequenceEvaluator(threshold, pipeline_factory, geometry_factory, metrics)
    for frame in frames:
        evaluator.add(*frame)
    evaluator.end()
    return evaluator.metrics.compute()


def _depth_placements(frame: ObstacleFrame, geometry: Geometry,
                      depth: np.ndarray) -> Dict[int, Placement]:
    """Depth placement of each confirmed track matched in the frame (None-placements left out).

    The call ``ObstaclePipeline.place`` makes with a depth image, on the matched instance's own
    pixels; made here so a failed depth placement never falls back to another mode's.
    """
    by_id = {inst.id: inst for inst in frame.instances.instances}
    out: Dict[int, Placement] = {}
    for track_id, instance_id in frame.matched.items():
        inst = by_id.get(instance_id)
        placed = None if inst is None else place_with_depth(geometry.table, inst.bbox, depth,
                                                            inst.mask)
        if placed is not None:
            out[track_id] = placed
    return out
