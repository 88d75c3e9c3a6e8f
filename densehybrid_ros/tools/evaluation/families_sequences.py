"""Held-out families over time: synthetic drives towards each family's obstacles, scored.

For each family, ``count`` sequences (``data.synthetic.Sequence``: one street seen from a level
camera one unit above the ground, driving ``speed`` units a frame towards 3-5 obstacles of the
family standing on the road 30-60 units ahead) are segmented frame by frame, and one camera's
obstacle pipeline with the node's default rules (``metrics.sequence.SequenceEvaluator``:
instances -> confirmed tracks -> placement) is scored against each sequence's ground truth:
objects confirmed before half the range at which they first appear (also by occlusion level
and by size), frames to confirm, flicker, phantom confirmed tracks per 100 frames, id switches
per object (CLEAR MOT) and extra track ids per object, and the placements' range and lateral
errors on the ground plane and from the sequence's depth image (also by true range).

The same sequence seeds serve every family (from ``seed_start``, by default ``EVAL_SEED_START``:
never a training street), so families differ only in their obstacles. ``predict(frame) ->
(score, semantic)`` is the model on a ``SequenceFrame`` (``segmenter_predict``: a Segmenter on
its image, as the node runs it).
"""

from typing import Any, Callable, Dict, Optional, Sequence as Seq, Tuple

import numpy as np

from ...data.synthetic import EVAL_SEED_START, Sequence, SequenceFrame
from ...deploy.segmenter import Segmenter
from ...metrics.sequence import SequenceEvaluator, SequenceMetrics
from ...metrics.temporal import LATE_CAUSES, SIZE_LEVELS
from .report import EARLY_LEVEL_GROUPS, figure

Size = Tuple[int, int]
Predict = Callable[[SequenceFrame], Tuple[np.ndarray, Optional[np.ndarray]]]


def segmenter_predict(segmenter: Segmenter) -> Predict:
    """Return the Segmenter as a ``predict``: a frame's image -> (score, semantic)."""
    def predict(frame: SequenceFrame) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        result = segmenter([frame.image], outputs=('semantic', 'score'))[0]
        return result.score, result.semantic
    return predict


def evaluate_family_sequences(predict: Predict, threshold: float, families: Seq[str],
                              count: int, size: Size = (288, 512), frames: int = 60,
                              speed: float = 1.2, seed_start: int = EVAL_SEED_START,
                              progress: Optional[Callable[[str, int], None]] = None
                              ) -> Dict[str, Any]:
    """Score ``count`` sequences of every family; ``pooled`` adds all families together."""
    if count < 1 or frames < 1 or speed <= 0:
        raise ValueError(f'need at least 1 sequence of 1 frame and a speed > 0, got {count}, '
                         f'{frames}, {speed}')
    per_family: Dict[str, SequenceMetrics] = {}
    for family in families:
        metrics = per_family[family] = SequenceMetrics()
        for i in range(count):
            evaluator = SequenceEvaluator(threshold, metrics=metrics)
            for frame in Sequence(seed_start + i, size, frames, family, speed=speed):
                score, semantic = predict(frame)
                evaluator.add(score, semantic, frame.instances, frame.objects, frame.camera.k,
                              frame.depth)
            evaluator.end()
            if progress is not None:
                progress(family, i + 1)
    pooled = SequenceMetrics()
    for metrics in per_family.values():
        pooled.merge(metrics)
    return {'sequences': count, 'frames': frames, 'speed': speed, 'size': list(size),
            'seed_start': seed_start, 'threshold': threshold,
            'families': {family: m.compute() for family, m in per_family.items()},
            'pooled': pooled.compute()}


# Table columns: (header, width); a header line of names, then one of units.
COLUMNS = (('objects', 'count', 7), ('early', '%', 6), ('confirm', 'frames', 7),
           ('flicker', '%', 7), ('phantoms', '/100 fr', 8), ('id sw.', '/object', 7),
           ('extra ids', '/object', 9),
           ('ground', 'med %', 6), ('', 'p90 %', 6), ('', 'lat.', 6),
           ('depth', 'med %', 6), ('', 'p90 %', 6), ('', 'lat.', 6))


def format_sequence_tables(result: Dict[str, Any]) -> str:
    """Plain-text tables: tracking and placement per family and pooled, placement by range."""
    h, w = result['size']
    first = result['seed_start']
    lines = [f'\nobjects over time: {result["sequences"]} sequences per family (streets '
             f'{first}-{first + result["sequences"] - 1}), '
             f'{result["frames"]} frames at {h}x{w}, {result["speed"]:g} units per frame '
             "(the node's obstacle pipeline, default rules; early: confirmed before half the "
             'range at which it first appeared; placement errors: range relative, lateral in '
             'units)']
    for row in (0, 1):
        lines.append(f'{"family" if row == 0 else "":9s}'
                     + ''.join(f' {col[row]:>{col[2]}s}' for col in COLUMNS).rstrip())
    rows = list(result['families'].items()) + [('pooled', result['pooled'])]
    for family, figures in rows:
        t = figures['tracking']
        cells = [str(t['objects']), figure(t['confirmed_early'], 100, 1),
                 figure(t['frames_to_confirm']['median'], 1, 1), figure(t['flicker'], 100, 1),
                 figure(t['phantom_tracks_per_100_frames'], 1, 1),
                 figure(t['id_switches_per_object'], 1, 2),
                 figure(t['extra_track_ids_per_object'], 1, 2)]
        for mode in ('ground', 'depth'):
            p = figures[f'placement_{mode}']
            cells += [figure(p['range_error']['median'], 100, 1),
                      figure(p['range_error']['p90'], 100, 1),
                      figure(p['lateral_error']['median'], 1, 2)]
        lines.append(f'{family:9s}' + ''.join(f' {cell:>{col[2]}s}'
                                              for cell, col in zip(cells, COLUMNS)))
    large = dict(SIZE_LEVELS)['large']
    lines.append("\npooled early by occlusion level (KITTI's levels by the mean visible "
                 'fraction while the object could be confirmed early: visible >= 0.8, partly '
                 'occluded >= 0.5, largely occluded below) and by size (large: showed at least '
                 f'{large:g} of the image, the instance area floor, in some frame of that '
                 'window; small: never did): objects decided, early %, and the late ones by '
                 'what lay on them in most frames of their early window: no instance, merged '
                 'into the instance of another object, own instance unconfirmed')
    pooled = result['pooled']['tracking']
    levels = [item for group in EARLY_LEVEL_GROUPS for item in pooled[group].items()]
    for level, b in levels + [('all', pooled)]:
        lines.append(f'  {level:17s} {b["objects_decided"]:6d} '
                     f'{figure(b["confirmed_early"], 100, 1):>6s}   late '
                     + ' / '.join(str(b['late_causes'][c]) for c in LATE_CAUSES))
    lines.append('\npooled placement by true range (units): count, range error median and '
                 'p90 (%), lateral median')
    for mode in ('ground', 'depth'):
        for band, b in result['pooled'][f'placement_{mode}']['by_range'].items():
            lines.append(f'  {mode:6s} {band:6s} {b["count"]:6d} '
                         f'{figure(b["range_error"]["median"], 100, 1):>6s} '
                         f'{figure(b["range_error"]["p90"], 100, 1):>6s} '
                         f'{figure(b["lateral_error"]["median"], 1, 2):>6s}')
    return '\n'.join(lines)
