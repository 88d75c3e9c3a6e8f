"""Anomaly instances: the obstacles in one frame's score map that a planner should care about.

From one frame's result (H x W float32 anomaly score, higher = more anomalous; H x W uint8
closed-set class ids; the calibrated threshold) ``find_instances`` keeps the connected
components that

1. **hysteresis**: hold a seed pixel above ``threshold + seed_offset`` and grow over the
   8-connected pixels above ``threshold + grow_offset`` (components of the grow mask that
   contain a seed, as in a Canny edge detector); then each is **trimmed** to its pixels above
   ``threshold + peak_fraction * (its peak - threshold)``, so a strong object is cut at a
   higher level than a faint one (its outline follows the object, not the score's halo). The
   trim can leave pieces: each one holding a seed becomes an instance of its own (two far
   obstacles whose halos merged), the ones without a seed are dropped (``split_pieces``);
2. **size**: have at least ``max(min_pixels, min_area_fraction * H * W)`` pixels (or, when
   they peak above ``threshold + small_peak_offset``, at least ``small_area_fraction * H * W``:
   far obstacles) and at most ``max_area_fraction * H * W`` (fractions of the image, so one rule
   holds at every resolution), and fill at least ``min_fill`` of their bounding box (compact,
   not a line);
3. **obstacle**: stand on or touch the drivable area the closed-set head predicts
   (``drivable_classes``, Cityscapes train ids, road = 0 by default; add sidewalk = 1 if the
   robot drives there). The head labels the anomaly's own pixels with some class, so the rule
   looks *around* the component, never inside it: the fraction of drivable pixels in the band
   just below the component (``below_fraction`` of the image height, per column) or in the ring
   around it (``ring_fraction``); anomalous pixels are left out of both. SegmentMeIfYouCan's
   ObstacleTrack likewise only scores what is on the road;
4. **scenery**: are not labelled by the head as ``scenery_classes`` (vegetation = 8 by
   default) in more than ``max_scenery_fraction`` of their own pixels: a far tree line where the
   road ends stands on the road's end but is no obstacle (measured below).

Each kept component becomes an ``Instance`` (id 1..N, bbox, areas, max / mean score,
ground-contact point) and its pixels carry that id in the H x W uint16 ``Instances.ids``. The
ground contact is the component's lowest row, at the centre of the columns its bottom
``contact_band`` (a fraction of its height) spans: the middle of the footprint, where a ground
truth puts an object's position, rather than wherever its lowest pixels happen to be (a foot, a
wheel, the bulge of a rock). On 50 synthetic drives of the held-out families at 288x512 (the
embedded model, the defaults below) the ground-plane lateral error's median fell from 0.100 to
0.071 units against the median column of the lowest row (``contact_band`` 0), range unchanged.

Defaults, measured (issue 21) with the embedded model's stage 10 on the five held-out families
(20 scenes each, 512x1024 scenes, inference at 288x512 and 512x1024), scored per frame with the
SegmentMeIfYouCan component metrics (AnomalyTrack size filters scaled to the frame: 125 px
predicted, 25 px ground truth), pooled over families; the rules were chosen on scenes 0-7. Then
stage 12 (trained with drive frames as well) with the same rules, stage 14 (more small-scale
crops) with ``peak_fraction`` 0.5 and the scenery rule, and the shipped stage 15 (smaller crops
still) with seeds at + 10.5:

==========  ========  ===========================  ===========================
output      model     512x1024: mean F1 / PPV      288x512: mean F1 / PPV
==========  ========  ===========================  ===========================
raw mask    stage 10  0.23 / 0.14                  0.36 / 0.29
            stage 12  0.25 / 0.15                  0.32 / 0.23
            stage 14  0.24 / 0.15                  0.30 / 0.22
            stage 15  0.24 / 0.14                  0.29 / 0.21
instances   stage 10  0.74 / 0.77                  0.58 / 0.79
            stage 12  0.79 / 0.77                  0.68 / 0.78
            stage 14  0.78 / 0.77                  0.71 / 0.79
            stage 15  0.78 / 0.76                  0.74 / 0.79
==========  ========  ===========================  ===========================

With stage 11 the seed level was checked again on 50 drives of held-out families at 288x512
(streets 1000-1009, not the evaluation's; before ``split_pieces``; tracks confirmed in 4 of 5
frames): seeds at threshold + 8 confirm 62 % of the objects early with 1.5 phantom tracks per
100 frames, + 10 give 50 % with 0.6, + 12 give 28 % with 0.3. With stage 12 (``split_pieces``
on, same tracker): + 8 give 72 % with 1.9, + 9 66 % with 1.3, + 10 58 % with 0.9, + 12 38 %
with 0.4. (The id switches of this docstring and of ``core/tracking.py`` were counted as
distinct track ids per object minus one, the figure ``metrics/temporal.py`` now reports as extra
track ids; its id switches are CLEAR MOT's.) ``split_pieces`` on the same drives with stage 11:
id switches 0.18 -> 0.14 per object (two far obstacles no longer share one instance until they
part), confirmed early 50 -> 52 %, flicker 2.0 -> 1.9 %, ground range p90 13.1 -> 12.2 %,
phantom tracks 0.6 -> 0.9 per 100 frames. Tried on those drives with stage 12 and not kept:
cutting a trimmed piece where, at a higher fraction of its peak, it falls into two or more
seeded cores (pixels to the nearest core) raised id switches from 0.16 to 0.20 per object at one
level (0.6 of the peak) and to 0.38 at four (0.5-0.8): it cuts single objects with two score
peaks more often than it parts a pair.
Stage 12, ``peak_fraction`` 0.3 / 0.4 / 0.5: id switches 0.15 / 0.16 / 0.17 per object,
confirmed early 56 / 58 / 58 %, phantom tracks 0.9 / 0.9 / 1.0, ground range p90 17.0 / 14.6 /
12.7 %. Stage 14, whose threshold sits 0.9 lower (it separates better at the same 1.5 %
inlier budget), ``peak_fraction`` 0.4 / 0.5 / 0.55: confirmed early 69 / 71 / 68 %, id switches
0.18 / 0.20 / 0.18, phantom tracks 0.73 each, ground range p90 15.4 / 13.2 / 12.4 %; per frame
on scenes 0-7, F1 / PPV 0.76 / 0.75, 0.78 / 0.78 and 0.79 / 0.82 at 288x512 and 0.82 / 0.73,
0.84 / 0.79 and 0.84 / 0.80 at 512x1024 (0.6: PPV higher, F1 lower at both). 0.5 confirms
earliest; seeds at + 11 instead: 60 % early with 0.33 phantom tracks.

**Scenery rule.** On those drives the phantom tracks were nearly all one thing: a far tree line
where the road ends, which the head labels vegetation (stage 12, seeds at + 10: 213 of 229
phantom track-frames had most of their pixels labelled vegetation, against 175 of 2919 real
ones; stage 14: 109 of 120 against 105 of 3171). Dropping instances labelled vegetation in over
half their pixels, with stage 14: phantom tracks 0.73 -> 0.23 per 100 frames, confirmed early
71.1 -> 70.6 %, id switches and flicker unchanged, ground range p90 13.2 -> 12.9 %; per frame
on the 20 scenes of the families no figure moved (0.001). Over 0.3 instead of 0.5 cost early
detections (stage 12, seeds + 7: 65.7 % against 72.5 %); adding terrain and sky (stage 12,
seeds + 8) gave 68.6 % early with 0.90 phantom tracks against 69.6 % with 1.07. An obstacle
the head labels vegetation (a fallen branch) is dropped too: set ``scenery_classes`` to None
(the node: ``scenery_classes: ''``) where that matters more than a tree line.

**Small strong instances.** At 512x1024 the area floor (126 px) was what kept most of the
late objects late: on the rule-study drives (stage 14, streets 1000-1009, 204 decided objects),
157 of the 165 objects that showed at least 126 pixels before half their first range were
confirmed early, 10 of the 39 that never did (far ones, or half hidden behind a nearer
obstacle). A lower floor for every instance trades phantoms for them: 1.2e-4 confirms 85.3 %
early with 0.73 phantom tracks per 100 frames, 6e-5 86.8 % with 0.93 (2.4e-4: 81.9 % with
0.30). The small phantoms on the road peak lower than those far objects, so a smaller instance
is kept (down to 6e-5) only when it peaks above threshold + 13: 85.3 % early with 0.37 phantom
tracks, id switches 0.103 as before, flicker 1.2 % as before (+ 12: 86.8 % with 0.57, + 14:
83.8 % with 0.33, + 15: 82.8 % with 0.30). At 288x512 the floor (35 px) is not the limit:
70.6 % early either way. Per frame (the families' 20 scenes) nothing moves: those frames are
scored at 512x1024 at either input size, and SegmentMeIfYouCan's scoring drops predicted
components under its size filter there (125 px).

**Seeds at + 10.5 since stage 15** (crops scaled 0.3-1.1, threshold 0.19 lower than stage
14's). With seeds at + 10 its phantom tracks at 288x512 sat at the target's edge on the
rule-study drives of more streets (1010-1029, families eval, fractal and glyph, 240 decided
objects): 64.6 % confirmed early with 1.06 phantom tracks per 100 frames; + 10.5 gives 60.8 %
with 0.89 (streets 1000-1009: 75.5 % with 0.30 -> 74.0 % with 0.20; at 512x1024 nothing moves:
87.3 % with 0.10). Checked afterwards on the evaluation's drives at 288x512: 66.8 % with 1.03
-> 63.2 % with 0.93 (stage 14 with + 10: 59 % with 0.93).

Phantoms peak lower than real objects (at 512x1024: phantoms up to threshold + 11, objects
mostly + 11..26), hence the high seed; at 288x512 objects peak lower too, so recall, not
precision, limits the small input. Sidewalk as drivable adds about 0.01 F1 at 512x1024.
``min_fill`` 0.25 costs nothing there (< 0.002 F1) and drops the lane edge line that the model
flags in the synthetic sequences.

Cost: two thresholds over the image, then one ``cv2.floodFill`` per seeded component (its cost
is the component's size; an image without a seed stops after the thresholds); the size,
obstacle, trim and fill rules run on each component's bounding-box crop only, so no Python loop
touches single pixels. 720x1280 frames from the families (about 11 grown components, 1.8 of
them seeded, 1.4 instances): 2.1-2.5 ms of CPU per frame, one thread, on this 2-core machine
shared with other jobs (labelling the whole image with ``connectedComponentsWithStats``
instead: 3.4-4.4 ms).
"""

from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # x, y, w, h in pixels
# cv2.floodFill: 8-connected, fill the mask only (with 1), pixels equal to the seed's value.
_FILL = 8 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)


@dataclass(frozen=True)
class InstanceConfig:
    """Every rule that turns a score map into instances, with its measured default.

    Score offsets are in the checkpoint's score units above its calibrated threshold; the
    defaults were measured with the embedded model (hybrid score; threshold -6.98 for stage 10,
    -8.17 for the shipped stage 15) on the five held-out families (see the module docstring);
    another checkpoint may want other offsets.
    """

    # Hysteresis: seeds and growth, relative to the calibrated threshold.
    seed_offset: float = 10.5           # seed pixels: score > threshold + seed_offset
    grow_offset: float = 2.0            # grown pixels: score > threshold + grow_offset
    # Trim each instance to score > threshold + peak_fraction x (its peak - threshold); 0 = off.
    peak_fraction: float = 0.5
    # Trimmed pieces that hold a seed become instances of their own, seedless ones are dropped
    # (False: the trimmed pieces stay one instance).
    split_pieces: bool = True
    # Size, as fractions of the image's pixels (resolution independent) with a floor in pixels.
    # 2.4e-4: SegmentMeIfYouCan's 500 px predicted-component floor at 2048 x 1024.
    min_area_fraction: float = 2.4e-4
    min_pixels: int = 1
    # A smaller instance, down to small_area_fraction, is kept when its peak exceeds threshold +
    # small_peak_offset: a far obstacle of a few dozen pixels still peaks as high as a near one,
    # the small phantoms on the road peak lower (measured below); inf = off.
    small_area_fraction: float = 6e-5
    small_peak_offset: float = 13.0
    max_area_fraction: float = 1.0
    # Compactness: pixels / bbox area of the (trimmed) instance; drops thin sprawling structures
    # such as a lane line running to the horizon.
    min_fill: float = 0.25
    # Ground contact: the lowest row, at the centre of the columns spanned by the bottom
    # contact_band x height rows (at least one); 0 = the median column of the lowest row.
    contact_band: float = 0.2
    # Obstacle rule: kept if either fraction of drivable pixels around it is reached.
    # ``None`` drivable_classes (or no semantic map) switches the rule off.
    drivable_classes: Optional[Tuple[int, ...]] = (0,)
    below_fraction: float = 0.02        # band below the component: rows = this x image height
    min_below_drivable: float = 0.35    # fraction of that band that must be drivable
    ring_fraction: float = 0.01         # ring around the component: width = this x image height
    min_ring_drivable: float = 0.4      # fraction of that ring that must be drivable
    # Scenery rule: an instance whose own pixels the head labels as these classes (Cityscapes
    # train ids, vegetation = 8) for more than max_scenery_fraction is dropped: a far tree line
    # at the end of the road, not an object on it. ``None`` (or no semantic map): off.
    scenery_classes: Optional[Tuple[int, ...]] = (8,)
    max_scenery_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.peak_fraction < 1.0:
            raise ValueError('peak_fraction must be in [0, 1): the peak itself must stay in')
        if min(self.min_area_fraction, self.small_area_fraction, self.max_area_fraction,
               self.min_fill, self.below_fraction, self.ring_fraction, self.contact_band) < 0:
            raise ValueError('area, fill and band fractions must be >= 0')
        if not 0.0 <= self.max_scenery_fraction <= 1.0:
            raise ValueError('max_scenery_fraction must be in [0, 1]')


@dataclass
class Instance:
    """One anomaly instance in image pixels (x = column, y = row)."""

    id: int                             # 1..N in ``Instances.ids``
    bbox: Box                           # x, y, w, h (inclusive of the component's pixels)
    pixels: int                         # pixel count (a trimmed instance may be in pieces)
    score_max: float
    score_mean: float
    contact: Tuple[float, int]          # ground contact (x, y): footprint centre, lowest row
    below_drivable: float               # drivable fraction of the band below (nan: empty)
    ring_drivable: float                # ... of the ring around (nan: empty or not needed)
    mask: np.ndarray = field(repr=False, compare=False)  # h x w bool, the bbox crop

    @property
    def area(self) -> int:
        """Area of the bounding box in pixels."""
        return self.bbox[2] * self.bbox[3]


@dataclass
class Instances:
    """One frame's instances: the H x W uint16 id image (0 = none) and the list, ids 1..N."""

    ids: np.ndarray
    instances: List[Instance]

    @property
    def shape(self) -> Tuple[int, int]:
        """Image size (H, W)."""
        return self.ids.shape[:2]

    def __len__(self) -> int:
        return len(self.instances)


def empty_instances(shape: Sequence[int]) -> Instances:
    """Return an ``Instances`` with no instance for an image of size ``shape`` (H, W)."""
    return Instances(np.zeros(tuple(shape[:2]), np.uint16), [])


def find_instances(score: np.ndarray, semantic: Optional[np.ndarray], threshold: float,
                   config: InstanceConfig = InstanceConfig()) -> Instances:
    """Return the anomaly instances of one frame (see the module docstring for the rules)."""
    score = np.asarray(score)
    if score.ndim != 2:
        raise ValueError(f'score must be H x W, got shape {score.shape}')
    if semantic is not None and np.shape(semantic)[:2] != score.shape:
        raise ValueError(f'semantic {np.shape(semantic)} and score {score.shape} differ in size')
    height, width = score.shape
    grow_thr = float(threshold) + config.grow_offset
    seed_thr = float(threshold) + config.seed_offset
    # A seed must also be a grown pixel; NaN compares False: never anomalous.
    seeds = np.flatnonzero(score > max(seed_thr, grow_thr))      # raster order
    if seeds.size == 0:
        return empty_instances(score.shape)
    low = (score > grow_thr).view(np.uint8)
    min_px = max(config.min_pixels, int(np.ceil(config.min_area_fraction * height * width)))
    small_px = min(min_px, max(config.min_pixels,
                               int(np.ceil(config.small_area_fraction * height * width))))
    strong_thr = float(threshold) + config.small_peak_offset
    max_px = config.max_area_fraction * height * width
    drivable = _class_table(semantic, config.drivable_classes)
    scenery = _class_table(semantic, config.scenery_classes)
    below = max(1, round(config.below_fraction * height))
    ring = max(1, round(config.ring_fraction * height))
    pad = max(below, ring)

    ids = np.zeros((height, width), np.uint16)
    found: List[Instance] = []
    # Hysteresis by flood fill from the seeds: each fill marks one 8-connected component of the
    # grow mask (1 while measured, then 2 = done), costs its own size, and retires the seeds
    # it covers (labelling the whole image instead: about 1.5 ms more per 720p frame).
    filled = np.zeros((height + 2, width + 2), np.uint8)
    inner = filled[1:-1, 1:-1]
    while seeds.size:
        row, col = divmod(int(seeds[0]), width)
        pixels, _, _, (x, y, w, h) = cv2.floodFill(low, filled, (col, row), 1, 0, 0, _FILL)
        crop = inner[y:y + h, x:x + w]
        mask = crop == 1
        crop[mask] = 2
        rows, cols = np.divmod(seeds, width)
        seeds = seeds[inner[rows, cols] == 0]
        if not small_px <= pixels <= max_px:
            continue
        values = score[y:y + h, x:x + w][mask]
        score_max = float(values.max())
        if pixels < min_px and not score_max > strong_thr:
            continue
        below_frac = ring_frac = float('nan')
        if drivable is not None:
            below_frac, ring_frac = _drivable_around(mask, low, semantic, drivable, (x, y),
                                                     pad, below, ring, config.min_below_drivable)
            if not (below_frac >= config.min_below_drivable
                    or ring_frac >= config.min_ring_drivable):
                continue
        pieces = [((x, y, w, h), mask)]
        if config.peak_fraction > 0:
            level = float(threshold) + config.peak_fraction * (score_max - float(threshold))
            if level > grow_thr:
                box, mask = _trim(score, (x, y, w, h), mask, level)
                pieces = (_seeded_pieces(score, box, mask, max(seed_thr, grow_thr))
                          if config.split_pieces else [(box, mask)])
        for (x, y, w, h), mask in pieces:
            values = score[y:y + h, x:x + w][mask]
            peak = float(values.max())
            floor = small_px if peak > strong_thr else min_px
            if values.size < floor or values.size < config.min_fill * w * h:
                continue
            if scenery is not None and (np.count_nonzero(scenery[semantic[y:y + h, x:x + w][mask]])
                                        > config.max_scenery_fraction * values.size):
                continue
            contact = (x + _contact_column(mask, config.contact_band), y + h - 1)
            instance_id = len(found) + 1
            ids[y:y + h, x:x + w][mask] = instance_id
            found.append(Instance(instance_id, (x, y, w, h), int(values.size),
                                  peak, float(values.mean()), contact,
                                  below_frac, ring_frac, mask))
    return Instances(ids, found)


def _class_table(semantic: Optional[np.ndarray], classes: Optional[Tuple[int, ...]]
                 ) -> Optional[np.ndarray]:
    """256-entry bool lookup of ``classes`` (None without a semantic map or classes)."""
    if semantic is None or classes is None:
        return None
    return _lookup(tuple(classes))


@lru_cache(maxsize=32)
def _lookup(classes: Tuple[int, ...]) -> np.ndarray:
    """Read-only 256-entry bool table of ``classes``, built once per rule (not per frame)."""
    table = np.zeros(256, bool)
    table[list(classes)] = True
    table.flags.writeable = False
    return table


def _seeded_pieces(score: np.ndarray, box: Box, mask: np.ndarray, seed_level: float
                   ) -> List[Tuple[Box, np.ndarray]]:
    """Return the 8-connected pieces of a trimmed crop that hold a seed, as (box, crop mask)."""
    x, y, w, h = box
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    if count <= 2:                              # one piece: it holds the peak, a seed
        return [(box, mask)]
    seeded = np.zeros(count, bool)
    seeded[labels[score[y:y + h, x:x + w] > seed_level]] = True
    pieces = []
    for j in np.flatnonzero(seeded[1:]) + 1:
        px, py, pw, ph = (int(v) for v in stats[j, :4])
        pieces.append(((x + px, y + py, pw, ph), labels[py:py + ph, px:px + pw] == j))
    return pieces


def _contact_column(mask: np.ndarray, band: float) -> float:
    """Crop column of the ground contact (see ``InstanceConfig.contact_band``)."""
    if band <= 0:
        bottom = np.flatnonzero(mask[-1])       # the lowest row of a bbox holds the component
        return float(bottom[len(bottom) // 2])
    rows = max(1, int(band * mask.shape[0]))
    spanned = np.flatnonzero(mask[-rows:].any(axis=0))
    return (spanned[0] + spanned[-1]) / 2


def _trim(score: np.ndarray, box: Box, mask: np.ndarray, level: float
          ) -> Tuple[Box, np.ndarray]:
    """Keep the component's pixels above ``level`` (its peak is): the new box and crop mask."""
    x, y, w, h = box
    mask = mask & (score[y:y + h, x:x + w] > level)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (x + c0, y + r0, c1 - c0, r1 - r0), mask[r0:r1, c0:c1]


def _drivable_around(mask: np.ndarray, low: np.ndarray, semantic: np.ndarray,
                     drivable: np.ndarray, corner: Tuple[int, int], pad: int, below: int,
                     ring: int, min_below: float) -> Tuple[float, float]:
    """Drivable fractions of the band below and of the ring around one component (nan: empty).

    ``mask`` is the component's bbox crop with its top-left ``corner`` (x, y). The ring is only
    measured (else nan) when the band below falls short of ``min_below``.
    """
    x, y = corner
    h, w = mask.shape
    height, width = low.shape
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
    padded = np.zeros((y1 - y0, x1 - x0), np.uint8)
    padded[y - y0:y - y0 + h, x - x0:x - x0 + w] = mask
    mask = padded
    outside = low[y0:y1, x0:x1] == 0            # not anomalous: the head's label means something
    road = drivable[semantic[y0:y1, x0:x1]]
    # Band below: dilation by a (below + 1) x 1 column anchored at its bottom row moves every
    # pixel down by 0..below rows.
    down = cv2.dilate(mask, np.ones((below + 1, 1), np.uint8), anchor=(0, below)).view(bool)
    below_frac = _fraction(road, down & outside)
    if below_frac >= min_below:
        return below_frac, float('nan')
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * ring + 1, 2 * ring + 1))
    around = cv2.dilate(mask, square).view(bool)
    return below_frac, _fraction(road, around & outside)


def _fraction(road: np.ndarray, where: np.ndarray) -> float:
    """Fraction of ``where`` that is drivable (nan if ``where`` is empty)."""
    total = np.count_nonzero(where)
    return np.count_nonzero(road & where) / total if total else float('nan')
