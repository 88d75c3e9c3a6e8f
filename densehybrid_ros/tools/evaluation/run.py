"""One densehybrid-eval run: frames in, results per frame, every accumulator fed, folder written.

Phases (:func:`evaluate_into`): open the source and the results (model or recording); read the
frames in batches (:func:`read_frames`), handing each frame and its result to
:class:`FrameSinks`, the one place where a frame is consumed (metrics, frames.csv, pictures,
output bag); then the summary (:func:`summarize`) and the results folder
(``report.write_results``). Ctrl-C or a broken message after some frames keeps the frames
before it.
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from .calibrate import threshold_rule
from .datasets import STREETHAZARDS_CLASSES
from .destinations import partial_path, staged_outputs
from .rendering import ResultWriter
from .report import write_results
from .results import open_results, Results
from .sequences import SequenceSink
from .sources import EvalError, open_source, Source
from .table import FrameTable
from ...core.prefetch import prefetch
from ...data.bags import BagError, Frame
from ...metrics.evaluation import ComponentScores, Evaluation

MAP_ROLES = ('label', 'anomaly', 'open_set', 'semantic')      # mono8 maps
SIZED_ROLES = MAP_ROLES + ('score',)                          # must have the image's size


@dataclass
class Outcome:
    """How the frame loop ended."""

    interrupted: bool = False            # Ctrl-C: the finished frames are kept
    broken: Optional[BagError] = None    # a message that cut the input short


class FrameSinks:
    """Everything a frame's result feeds: the metrics, frames.csv, pictures and output bag."""

    def __init__(self, run: Evaluation, results: Results, table: FrameTable,
                 writer: ResultWriter, use_labels: bool, sequence: SequenceSink) -> None:
        self.run = run
        self.results = results
        self.table = table
        self.writer = writer
        self.use_labels = use_labels
        self.sequence = sequence

    def add(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Consume one frame and its result."""
        label = frame.arrays.get('label') if self.use_labels else None
        if label is not None and label.ndim != 2:
            raise EvalError(f'frame {frame.index}: label must be mono8')
        anomaly = frame.arrays.get('anomaly')
        components = self.results.components(result) if anomaly is not None else None
        self.run.add(result['score'], anomaly, label, result.get('open_set'),
                     result.get('semantic'), components)
        self.table.add(frame, result)
        self.writer.add(frame, result)
        if self.use_labels:
            self.sequence.add(frame, result)

    def close(self) -> None:
        """Close frames.csv and the output bag."""
        try:
            self.table.close()
        finally:
            self.writer.close()


def check_sizes(frame: Frame) -> None:
    """Refuse label and result maps that do not have the frame's size, or are not mono8."""
    base = 'image' if 'image' in frame.arrays else 'anomaly_score'
    shape = frame.arrays.get('image', frame.arrays.get('score')).shape[:2]
    for role in SIZED_ROLES:
        arr = frame.arrays.get(role)
        if arr is not None and arr.shape[:2] != shape:
            raise EvalError(
                f'frame {frame.index} ({frame.frame_id or "no frame_id"}, stamp '
                f'{frame.stamp / 1e9:.3f}): {role} is {arr.shape[1]}x{arr.shape[0]} but the '
                f'{base} is {shape[1]}x{shape[0]}; labels must have the image size')
        if arr is not None and role in MAP_ROLES and arr.dtype != np.uint8:
            raise EvalError(f'frame {frame.index}: {role} must be mono8, got {arr.dtype}')


def batches(frames: Iterator[Frame], size: int) -> Iterator[List[Frame]]:
    """Group frames into batches of at most ``size`` frames of one image size."""
    batch: List[Frame] = []
    for frame in frames:
        if batch and frame.arrays.get('image', frame.arrays.get('score')).shape != \
                batch[0].arrays.get('image', batch[0].arrays.get('score')).shape:
            yield batch
            batch = []
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_frames(args: argparse.Namespace, source: Source, results: Results,
                sinks: FrameSinks) -> Outcome:
    """Run the results over the source's frames (at most --frames) into ``sinks``."""
    run = sinks.run
    limit = args.frames if args.frames and args.frames > 0 else None
    total = min(x for x in (source.total, limit) if x is not None) \
        if (source.total or limit) else None
    bar = tqdm(total=total, desc='eval', unit='frame', disable=args.quiet)
    outcome = Outcome()
    frames = prefetch(source.frames, args.prefetch)
    try:
        for batch in batches(frames, max(1, args.batch)):
            if limit is not None:
                batch = batch[:limit - run.frames]
            if not batch:
                break
            for frame in batch:
                check_sizes(frame)
            for frame, result in zip(batch, results.results(batch)):
                sinks.add(frame, result)
            bar.update(len(batch))
            if limit is not None and run.frames >= limit:
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
        print(f'\ninterrupted: keeping the metrics of {run.frames} finished frames',
              file=sys.stderr)
    except BagError as exc:       # broken or truncated after some frames: keep those
        if not run.frames:
            raise
        outcome.broken = exc
    finally:
        bar.close()
        frames.close()             # stops the reading thread before the bag closes
    return outcome


def component_track(args: argparse.Namespace, source: Source) -> str:
    """SMIYC track whose size filters score components: --component-track, else the source's."""
    return source.track if args.component_track == 'auto' else args.component_track


def summarize(args: argparse.Namespace, source: Source, results: Results, run: Evaluation,
              stats: Dict[str, int], outcome: Outcome, seconds: float) -> Dict[str, Any]:
    """Return the metrics.json content of one run (``report.write_results`` completes it)."""
    summary = {
        'input': str(args.input), 'source': source.kind, 'topics': source.topics,
        'checkpoint': results.checkpoint, 'shard': args.shard or '0/1',
        'interrupted': outcome.interrupted, 'num_classes': results.num_classes,
        'threshold': {'value': results.threshold, 'source': results.threshold_source,
                      **({'node': results.prediction_threshold}     # a recording's, if known
                         if math.isnan(results.threshold)
                         and math.isfinite(results.prediction_threshold) else {})},
        **run.summary(results.class_names),
        'unmatched_messages': stats.get('unmatched', 0),
        'frames_without_labels': stats.get('partial', 0),
        'seconds': round(seconds, 3),
    }
    if args.output_bag:
        summary['output_bag'] = str(args.output_bag if outcome.broken is None
                                    else partial_path(args.output_bag))
    if outcome.broken is not None:
        summary['error'] = str(outcome.broken)
    return summary


def evaluate_into(args: argparse.Namespace, output: Path, bag: Optional[Path] = None
                  ) -> Tuple[Dict[str, Any], Optional[BagError]]:
    """Evaluate into ``output`` (and ``bag``); returns the summary and what cut the input short."""
    started = time.monotonic()
    stats: Dict[str, int] = {}
    source = open_source(args, stats)
    try:
        results = open_results(args, source.kind == 'recorded bag')
        if threshold_rule(args) and not results.checkpoint:
            raise EvalError('--threshold-from-tpr/-fpr on recorded results needs --checkpoint '
                            '(the model to write the calibrated copy of)')
        run = Evaluation(results.num_classes,
                         components=ComponentScores(component_track(args, source)))
        use_labels = source.kind != 'streethazards' or run.num_classes == STREETHAZARDS_CLASSES
        writer = ResultWriter(args, output, results, source, bag)
        sinks = FrameSinks(run, results, FrameTable(output / 'frames.csv'), writer, use_labels,
                           SequenceSink(results.prediction_threshold))
        try:
            outcome = read_frames(args, source, results, sinks)
        finally:
            sinks.close()
    finally:
        source.close()
    if run.frames == 0 and not outcome.interrupted:
        raise EvalError(f'no frames to evaluate in {args.input} (shard {args.shard or "0/1"}; '
                        f'unmatched messages: {stats.get("unmatched", 0)})')
    summary = summarize(args, source, results, run, stats, outcome,
                        time.monotonic() - started)
    sequence = sinks.sequence.summary()
    if sequence is not None:
        summary['sequence'] = sequence
    write_results(args, run, summary, output)
    return summary, outcome.broken


def evaluate(args: argparse.Namespace) -> Dict[str, Any]:
    """Run one evaluation; returns the metrics.json content.

    Results are staged and moved into ``--output`` (and ``--output-bag``) only when the run
    succeeds: a failed run leaves earlier results there untouched; the results of the frames
    before a broken message go to ``<output>.partial`` (``destinations``).
    """
    with staged_outputs(args) as staged:
        summary, broken = evaluate_into(args, staged.folder, staged.bag)
        if broken is not None:        # the frames before a broken message were evaluated
            partial = staged.keep_partial()
            raise EvalError(f'{broken}; the metrics of the {summary["frames"]} frames before it '
                            f'are in {partial / "metrics.json"} ({args.output} is untouched)')
    return summary
