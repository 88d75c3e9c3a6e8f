"""Temporal obstacle metrics: how early, how steadily and how cleanly tracks find real objects.

:class:`TrackingMetrics` is fed one frame at a time of one sequence (a camera driving through a
world whose obstacles carry stable ground-truth ids) with the *confirmed* tracks the node would
publish, and scores them against the ground truth.

**Association** (per frame). A confirmed track *matched in this frame* (``misses == 0``) owns
the pixels of its instance, ``instance_ids == track.instance.id``. It *detects* ground-truth
object ``k`` when those pixels and ``k``'s pixels (``gt_instances == k``) overlap with
IoU >= ``min_iou`` (0.1) *or* cover >= ``min_cover`` (0.5) of the instance: the IoU test accepts
an instance that covers much of the object, the cover test one that is mostly object but much
smaller or larger (a far object grown by hysteresis into the road around it, a near one only
partly segmented). One track may detect several objects (a blob over two touching ones) and
several tracks one object (a fragmented object). A confirmed track *coasting* in this frame
(``misses > 0``) still detects the objects it detected when it was last matched: the planner
still sees it there.

**Figures** (``compute``), per ground-truth object of every sequence:

- *appearance*: the first frame the object shows at least ``min_pixels`` pixels (or, if
  earlier, is detected); its range then is the *first range*. Objects that never appear are not
  counted anywhere.
- *first confirmed detection*: the first frame a confirmed track detects it; *frames to
  confirm* counts frames from appearance (0: confirmed in the frame it appeared), and the
  *confirm range* is its range then.
- *confirmed early*: confirmed while its range was still >= ``early_fraction`` (0.5) x its
  first range (the obstacle issue's target: >= 90 % of objects). An object is *decided* once it
  was confirmed or its range fell below that fraction unconfirmed (then it counts as late);
  objects still undecided when their sequence ends (far away, never confirmed) are left out of
  the fraction and counted as ``objects_undecided``.
- *by occlusion*: the same fraction for the objects of each occlusion level, as KITTI grades
  objects fully visible, partly or largely occluded (``OCCLUSION_LEVELS``: visible fraction
  >= 0.8, >= 0.5, below). An object's visible fraction is its mean ``pixels / footprint`` over
  the frames in which it could still be confirmed early (from its appearance while its range is
  >= ``early_fraction`` x its first range), ``footprint`` being the pixels it would show with
  nothing in front of it; objects given without a footprint are counted as
  ``objects_occlusion_unknown``. The target is on all objects; the levels say which ones miss
  it (an object mostly behind another obstacle shows as a sliver of that obstacle's blob).
- *by size*: the same fraction for the objects that showed at least ``SIZE_LEVELS``' fraction
  of the image's pixels (the instance rules' default area floor, 2.4e-4: 126 px at 512 x 1024)
  in some frame of that window (``large``) and for those that never did (``small``: far away,
  or hidden but for a sliver, for as long as they could be confirmed early). KITTI grades its
  objects by their height in pixels besides occlusion (and leaves out those under 25 px); here
  every object counts toward the target, and the levels say which ones miss it.
- *late causes*: for every object decided late, what lay on it in most of the frames of its
  early window in which it showed and no confirmed track detected it (``LATE_CAUSES``, the
  first where frames tie): ``no_instance`` (no instance pixel on it: it scored under the seed
  level, or the instance rules dropped its instance), ``merged`` (the instance on most of its
  pixels holds more pixels of another object: a nearer obstacle in front of or beside it, so
  no track can detect it until they part) or ``own_instance`` (that instance is mostly this
  object, yet no confirmed track detected it in time: instances in too few frames for the
  confirmation, or under the detection's IoU and cover). The instances are all of the
  frame's (``instance_ids``), not only the tracked ones.
- *id switches*, counted as CLEAR MOT counts them (Bernardin and Stiefelhagen 2008; MOTChallenge
  and KITTI tracking count the same): in every frame the confirmed tracks and the objects they
  detect are paired one to one. A pair of the previous frames is kept while its track still
  detects its object; the tracks and objects left are paired by the Hungarian method on their
  overlap in pixels (a coasting track on its last overlaps). An object paired with another
  track than the one it was last paired with is one switch. Summed over objects and divided by
  the objects that appeared.
- *extra track ids*: distinct confirmed track ids that ever detected it, minus one, summed and
  per object. Stricter than the switches: a track that covers two far objects as one blob
  detects both, so when they part and the second gets a track of its own, that costs it one
  extra id but no switch (it was never paired with the blob's track, which stayed with the
  first). Before CLEAR MOT's switches were counted, this figure was reported as the id switches.
- *flicker*: of the (object, frame) detections whose next frame still shows the object with at
  least ``min_pixels`` pixels, the fraction not detected in that next frame.
- *phantoms*: confirmed tracks matched in a frame in which they detect no ground-truth object;
  the distinct such track ids per sequence, summed, per 100 frames (and the phantom
  track-frames, for scale).

``update`` returns the frame's association so a caller can score each detection further (the
placement metrics do). Sequences: call ``end_sequence`` between them (object and track ids are
per sequence). ``state_dict`` / ``merge`` keep the per-object records and the counters of the
finished and the running sequence (a restored or merged accumulator carries no running
sequence: its next ``update`` starts a new one).
"""

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.instances import InstanceConfig

__all__ = ['LATE_CAUSES', 'OCCLUSION_LEVELS', 'SIZE_LEVELS', 'TrackingMetrics', 'object_field']

# Per-object record columns (float64, NaN = not applicable).
COLUMNS = ('first_frame', 'first_range', 'confirm_frame', 'confirm_range', 'early', 'tracks',
           'detections', 'flickers', 'switches', 'visibility', 'no_instance_frames',
           'merged_frames', 'own_instance_frames', 'largest_showing')
# KITTI's three occlusion levels (its labels judge them by eye; these bounds on the mean visible
# fraction are ours): (name, lowest fraction), the first that the object reaches.
OCCLUSION_LEVELS = (('visible', 0.8), ('partly_occluded', 0.5), ('largely_occluded', 0.0))
# Size levels: (name, lowest fraction of the image's pixels the object showed in some frame of
# its early window), the first that the object reaches (module docstring, "by size"): the
# instance rules' default area floor.
SIZE_LEVELS = (('large', InstanceConfig.min_area_fraction), ('small', 0.0))
# Why an object was late: what covered it in most frames of its early window, in this order
# where frames tie (the per-frame states of ``_Object.window``).
LATE_CAUSES = ('no_instance', 'merged', 'own_instance')
Overlaps = Dict[int, int]       # object id -> pixels shared with the instance, largest first
Covers = Dict[int, Dict[int, int]]      # object id -> {instance id (0 = none): its pixels}


_REQUIRED = object()              # object_field's default: the field must be there


def object_field(obj: Any, name: str, default: Any = _REQUIRED) -> Any:
    """Return field ``name`` of a ground-truth object given as a mapping or an attribute holder.

    Without ``default`` a missing field raises; with one, the default stands in for it.
    """
    if isinstance(obj, Mapping):
        return obj[name] if default is _REQUIRED else obj.get(name, default)
    return getattr(obj, name) if default is _REQUIRED else getattr(obj, name, default)


class _Object:
    """Running state of one ground-truth object in the running sequence."""

    def __init__(self, frame: int, first_range: float) -> None:
        self.first_frame = frame
        self.first_range = first_range
        self.confirm_frame: Optional[int] = None
        self.confirm_range = math.nan
        self.early: Optional[bool] = None
        self.tracks: Set[int] = set()
        self.detections = 0       # detections with the object still shown in the next frame
        self.flickers = 0
        self.detected_last: Optional[int] = None    # the last frame it was detected in
        self.paired: Optional[int] = None    # the track it was last paired with (CLEAR MOT)
        self.switches = 0
        self.visible_sum = 0.0    # pixels / footprint, summed over the frames it could be early
        self.visible_frames = 0
        self.largest_showing = 0.0    # pixels / image pixels, largest in the early window
        self.window = dict.fromkeys(LATE_CAUSES, 0)     # undetected frames by cause, undecided

    def record(self) -> List[float]:
        """Return the row of :data:`COLUMNS`."""
        confirm = math.nan if self.confirm_frame is None else float(self.confirm_frame)
        early = math.nan if self.early is None else float(self.early)
        visibility = (self.visible_sum / self.visible_frames if self.visible_frames
                      else math.nan)
        causes = [float(self.window[c]) for c in LATE_CAUSES]
        return [float(self.first_frame), self.first_range, confirm, self.confirm_range, early,
                float(len(self.tracks)), float(self.detections), float(self.flickers),
                float(self.switches), visibility, *causes, self.largest_showing]


class TrackingMetrics:
    """Temporal figures of confirmed tracks against ground-truth objects (see the module doc)."""

    def __init__(self, min_iou: float = 0.1, min_cover: float = 0.5, min_pixels: int = 10,
                 early_fraction: float = 0.5) -> None:
        self.min_iou = float(min_iou)
        self.min_cover = float(min_cover)
        self.min_pixels = int(min_pixels)
        self.early_fraction = float(early_fraction)
        self.records = np.zeros((0, len(COLUMNS)), np.float64)   # finished objects
        self.frames = 0
        self.sequences = 0
        self.phantom_tracks = 0            # distinct phantom track ids, finished sequences
        self.phantom_frames = 0            # phantom (track, frame) pairs, all frames
        self._reset_running()

    def _reset_running(self) -> None:
        self._frame = 0                    # frame index within the running sequence
        self._objects: Dict[int, _Object] = {}
        self._last: Dict[int, Overlaps] = {}      # track id -> what it detected when matched
        self._phantoms: Set[int] = set()
        self._pending: Dict[int, _Object] = {}    # detected in the previous frame

    # -------------------------------------------------------------------------- per frame
    def associate(self, gt_instances: np.ndarray, track: Any, instance_ids: np.ndarray,
                  areas: Optional[np.ndarray] = None) -> List[int]:
        """Return the ground-truth ids one matched track detects, largest overlap first.

        ``areas``: ``np.bincount(gt_instances.ravel())`` if the caller has it (one per frame).
        """
        return list(self.overlaps(gt_instances, track, instance_ids, areas))

    def overlaps(self, gt_instances: np.ndarray, track: Any, instance_ids: np.ndarray,
                 areas: Optional[np.ndarray] = None) -> Overlaps:
        """Return ``associate``'s objects with the pixels each shares with the track's instance."""
        mine = instance_ids == track.instance.id
        size = int(np.count_nonzero(mine))
        if size == 0:
            return {}
        under = gt_instances[mine]
        counts = np.bincount(under.ravel(), minlength=1)
        counts[0] = 0
        found = np.flatnonzero(counts)
        if not found.size:
            return {}
        if areas is None or len(areas) <= found.max():
            areas = np.bincount(gt_instances.ravel(), minlength=int(found.max()) + 1)
        inter = counts[found]
        iou = inter / (size + areas[found] - inter)
        cover = inter / size
        keep = (iou >= self.min_iou) | (cover >= self.min_cover)
        order = np.argsort(-inter[keep], kind='stable')
        return {int(v): int(n) for v, n in zip(found[keep][order], inter[keep][order])}

    def update(self, gt_instances: np.ndarray, gt_objects: Iterable[Any],
               tracks: Sequence[Any], instance_ids: np.ndarray) -> Dict[int, List[int]]:
        """Add one frame; return {track id: ground-truth ids it detects} (matched and coasting).

        ``gt_instances`` H x W uint16 object ids (0 none); ``gt_objects`` every object of the
        world with ``id``, ``range``, ``pixels`` and, for the occlusion levels, ``footprint``
        (mappings or attribute holders); ``tracks`` the confirmed tracks of this frame
        (``core.tracking.Track``); ``instance_ids`` H x W uint16 ids of this frame's instances
        (``Instances.ids``).
        """
        gt_instances = np.asarray(gt_instances)
        instance_ids = np.asarray(instance_ids)
        if gt_instances.shape != instance_ids.shape:
            raise ValueError(f'gt_instances {gt_instances.shape} and instance_ids '
                             f'{instance_ids.shape} differ in size')
        frame = self._frame
        areas = np.bincount(gt_instances.ravel())
        overlaps: Dict[int, Overlaps] = {}
        for track in tracks:
            if not track.confirmed:
                continue
            if track.misses == 0:
                found = self.overlaps(gt_instances, track, instance_ids, areas)
                self._last[track.id] = found
                if not found:
                    self._phantoms.add(track.id)
                    self.phantom_frames += 1
            else:
                found = self._last.get(track.id, {})
            overlaps[track.id] = found
        detections = {track_id: list(found) for track_id, found in overlaps.items()}
        live = {t.id for t in tracks}
        self._last = {k: v for k, v in self._last.items() if k in live}
        detected: Dict[int, Set[int]] = {}
        for track_id, found in detections.items():
            for object_id in found:
                detected.setdefault(object_id, set()).add(track_id)

        shown: Dict[int, Any] = {}
        covers: Optional[Covers] = None          # built once, when first needed
        for obj in gt_objects:
            object_id = int(object_field(obj, 'id'))
            pixels = int(object_field(obj, 'pixels'))
            range_ = float(object_field(obj, 'range'))
            state = self._objects.get(object_id)
            if state is None and (pixels >= self.min_pixels or object_id in detected):
                state = self._objects[object_id] = _Object(frame, range_)
            if state is None:
                continue
            if pixels >= self.min_pixels:
                shown[object_id] = state
            if range_ >= self.early_fraction * state.first_range:     # its early window
                state.largest_showing = max(state.largest_showing, pixels / gt_instances.size)
                footprint = object_field(obj, 'footprint', None)
                if footprint:
                    state.visible_sum += pixels / float(footprint)
                    state.visible_frames += 1
            trackers = detected.get(object_id)
            if trackers:
                state.tracks |= trackers
                if state.confirm_frame is None:
                    state.confirm_frame, state.confirm_range = frame, range_
                    if state.early is None:
                        state.early = range_ >= self.early_fraction * state.first_range
            elif state.early is None and range_ < self.early_fraction * state.first_range:
                state.early = False
            elif state.early is None:
                if covers is None:
                    covers = _covers(gt_instances, instance_ids)
                cause = _cause(covers, object_id)
                if cause is not None:
                    state.window[cause] += 1
        for object_id, track_id in self._pair(overlaps).items():
            state = self._objects[object_id]
            state.switches += int(state.paired is not None and state.paired != track_id)
            state.paired = track_id
        # Flicker: last frame's detections whose object is still shown now.
        for object_id, state in self._pending.items():
            if object_id in shown:
                state.detections += 1
                state.flickers += int(object_id not in detected)
        self._pending = {i: self._objects[i] for i in detected if i in self._objects}
        self._frame += 1
        self.frames += 1
        return detections

    def _pair(self, overlaps: Dict[int, Overlaps]) -> Dict[int, int]:
        """Pair this frame's tracks and objects one to one, as CLEAR MOT: {object: track}."""
        pairs: Dict[int, int] = {}
        taken: Set[int] = set()
        for object_id, state in self._objects.items():        # kept while still detected
            track_id = state.paired
            if (track_id is not None and track_id not in taken
                    and object_id in overlaps.get(track_id, {})):
                pairs[object_id] = track_id
                taken.add(track_id)
        tracks = [t for t in overlaps if t not in taken]
        objects = sorted({o for t in tracks for o in overlaps[t]
                          if o not in pairs and o in self._objects})
        if tracks and objects:
            row = {object_id: i for i, object_id in enumerate(objects)}
            weight = np.zeros((len(objects), len(tracks)))
            for j, track_id in enumerate(tracks):
                for object_id, shared in overlaps[track_id].items():
                    if object_id in row:
                        weight[row[object_id], j] = shared
            for i, j in zip(*linear_sum_assignment(weight, maximize=True)):
                if weight[i, j] > 0:
                    pairs[objects[i]] = tracks[j]
        return pairs

    def end_sequence(self) -> None:
        """Close the running sequence (its objects become records); the next frame starts one."""
        if self._frame == 0 and not self._objects:
            return
        self.records = np.concatenate([self.records, self._running_records()])
        self.phantom_tracks += len(self._phantoms)
        self.sequences += 1
        self._reset_running()

    def _running_records(self) -> np.ndarray:
        rows = [state.record() for state in self._objects.values()]
        return np.array(rows, np.float64).reshape(-1, len(COLUMNS))

    # -------------------------------------------------------------------------- results
    def _all(self) -> Dict[str, Any]:
        """Return records and counters of the finished and the running sequence."""
        running = self._frame > 0 or bool(self._objects)
        return {'records': np.concatenate([self.records, self._running_records()]),
                'phantom_tracks': self.phantom_tracks + len(self._phantoms),
                'sequences': self.sequences + int(running)}

    def compute(self) -> Dict[str, Any]:
        """Return the figures (plain floats, ints and lists; JSON-ready; NaN where undefined)."""
        everything = self._all()
        rec = everything['records']
        col = {name: rec[:, i] for i, name in enumerate(COLUMNS)}
        objects = len(rec)
        confirmed = ~np.isnan(col['confirm_frame'])
        decided = ~np.isnan(col['early'])
        to_confirm = (col['confirm_frame'] - col['first_frame'])[confirmed]
        detections, flickers = col['detections'].sum(), col['flickers'].sum()
        extra_ids = np.maximum(col['tracks'] - 1, 0).sum()
        switches = col['switches'].sum()
        phantoms = everything['phantom_tracks']
        cause = np.argmax(np.stack([col[f'{c}_frames'] for c in LATE_CAUSES], axis=1), axis=1)
        late = decided & (col['early'] == 0)

        def late_causes(among: np.ndarray) -> Dict[str, int]:
            return {c: int((late & among & (cause == i)).sum())
                    for i, c in enumerate(LATE_CAUSES)}

        def by_level(values: np.ndarray, levels: Sequence[Tuple[str, float]]
                     ) -> Dict[str, Dict[str, Any]]:
            left = decided & ~np.isnan(values)
            graded = {}
            for level, lowest in levels:
                mine = left & (values >= lowest)
                left &= ~mine
                graded[level] = {'objects_decided': int(mine.sum()),
                                 'confirmed_early': _ratio(col['early'][mine].sum(), mine.sum()),
                                 'late_causes': late_causes(mine)}
            return graded

        graded = decided & ~np.isnan(col['visibility'])
        return {
            'frames': self.frames, 'sequences': everything['sequences'], 'objects': objects,
            'objects_confirmed': int(confirmed.sum()), 'objects_decided': int(decided.sum()),
            'objects_undecided': int(objects - decided.sum()),
            'confirmed_early': _ratio(col['early'][decided].sum(), decided.sum()),
            'confirmed_early_by_occlusion': by_level(col['visibility'], OCCLUSION_LEVELS),
            'confirmed_early_by_size': by_level(col['largest_showing'], SIZE_LEVELS),
            'objects_occlusion_unknown': int((decided & ~graded).sum()),
            'late_causes': late_causes(decided),
            'visibility': _summary(col['visibility'][decided]),
            'frames_to_confirm': _summary(to_confirm),
            'first_range': _summary(col['first_range']),
            'confirm_range': _summary(col['confirm_range'][confirmed]),
            'confirm_range_fraction': _summary(col['confirm_range'][confirmed]
                                               / col['first_range'][confirmed]),
            'id_switches': int(switches),
            'id_switches_per_object': _ratio(switches, objects),
            'extra_track_ids': int(extra_ids),
            'extra_track_ids_per_object': _ratio(extra_ids, objects),
            'flicker': _ratio(flickers, detections), 'flicker_events': int(flickers),
            'detections_followed': int(detections),
            'phantom_tracks': int(phantoms),
            'phantom_tracks_per_100_frames': _ratio(100.0 * phantoms, self.frames),
            'phantom_track_frames': self.phantom_frames,
            'rules': {'min_iou': self.min_iou, 'min_cover': self.min_cover,
                      'min_pixels': self.min_pixels, 'early_fraction': self.early_fraction,
                      'occlusion_levels': dict(OCCLUSION_LEVELS),
                      'size_levels': dict(SIZE_LEVELS)}}

    def per_object(self) -> List[Dict[str, float]]:
        """Return one dict of :data:`COLUMNS` per object (NaN: not applicable), in update order."""
        return [dict(zip(COLUMNS, (float(v) for v in row))) for row in self._all()['records']]

    # -------------------------------------------------------------------------- state
    def _settings(self) -> List[float]:
        return [self.min_iou, self.min_cover, float(self.min_pixels), self.early_fraction]

    def merge(self, other: 'TrackingMetrics') -> 'TrackingMetrics':
        """Add another accumulator's objects and counters (same rules); returns self.

        Both running sequences are closed into records first.
        """
        if other._settings() != self._settings():
            raise ValueError('cannot merge tracking metrics with different rules')
        self.end_sequence()
        theirs = other._all()
        self.records = np.concatenate([self.records, theirs['records']])
        self.frames += other.frames
        self.sequences += theirs['sequences']
        self.phantom_tracks += theirs['phantom_tracks']
        self.phantom_frames += other.phantom_frames
        return self

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Return the state for saving shards (``kind`` plus arrays, like the other metrics)."""
        everything = self._all()
        counters = [self.frames, everything['sequences'], everything['phantom_tracks'],
                    self.phantom_frames]
        return {'kind': np.array(type(self).__name__),
                'settings': np.array(self._settings(), np.float64),
                'counters': np.array(counters, np.int64), 'records': everything['records']}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict` (no running sequence)."""
        if str(state['kind']) != type(self).__name__:
            raise ValueError(f'state is a {state["kind"]}, not a {type(self).__name__}')
        min_iou, min_cover, min_pixels, early = (float(v) for v in state['settings'])
        self.min_iou, self.min_cover = min_iou, min_cover
        self.min_pixels, self.early_fraction = int(min_pixels), early
        self.frames, self.sequences, self.phantom_tracks, self.phantom_frames = (
            int(v) for v in state['counters'])
        records = np.array(state['records'], np.float64)
        if records.ndim != 2 or records.shape[1] != len(COLUMNS):
            raise ValueError(f'state records have {records.shape[-1]} columns, not '
                             f'{len(COLUMNS)}: saved by another version')
        self.records = records
        self._reset_running()

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> 'TrackingMetrics':
        """Build an accumulator from :meth:`state_dict`."""
        metrics = cls()
        metrics.load_state_dict(state)
        return metrics


def _covers(gt_instances: np.ndarray, instance_ids: np.ndarray) -> Covers:
    """Return what lies on each object of one frame: {object id: {instance id: pixels}}."""
    on = gt_instances > 0
    keys = (gt_instances[on].astype(np.int64) << 16) | instance_ids[on].astype(np.int64)
    found, counts = np.unique(keys, return_counts=True)
    covers: Covers = {}
    for key, count in zip(found.tolist(), counts.tolist()):
        covers.setdefault(key >> 16, {})[key & 0xFFFF] = count
    return covers


def _cause(covers: Covers, object_id: int) -> Optional[str]:
    """Return the :data:`LATE_CAUSES` state of one undetected object in a frame; None if unseen.

    ``no_instance``: no instance pixel on it; ``merged``: the instance on most of its pixels
    holds more pixels of another object; ``own_instance``: that instance is mostly this object.
    """
    mine = covers.get(object_id)
    if not mine:
        return None
    on = {i: n for i, n in mine.items() if i}
    if not on:
        return 'no_instance'
    best = max(on, key=lambda i: (on[i], -i))
    if any(other != object_id and best in theirs and theirs[best] > on[best]
           for other, theirs in covers.items()):
        return 'merged'
    return 'own_instance'


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan


def _summary(values: np.ndarray) -> Dict[str, float]:
    """Count, mean, median, p90, min and max of finite values (NaN figures when there are none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return {'count': 0, 'mean': math.nan, 'median': math.nan, 'p90': math.nan,
                'min': math.nan, 'max': math.nan}
    return {'count': int(values.size), 'mean': float(values.mean()),
            'median': float(np.median(values)), 'p90': float(np.percentile(values, 90)),
            'min': float(values.min()), 'max': float(values.max())}
