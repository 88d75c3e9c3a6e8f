"""densehybrid-eval: evaluate DenseHybrid on a rosbag2 or a benchmark folder.

Input: a rosbag2 (folder with metadata.yaml, or one .mcap / .db3 file; raw or compressed
images; labels joined to images by header stamp), a bag of the node's recorded outputs
(--recorded: <ns>/densehybrid/anomaly_score [+ open_set, semantic] and the label topics), or a
benchmark folder (Fishyscapes Lost&Found, SegmentMeIfYouCan anomaly / obstacle track,
StreetHazards). Output folder: metrics.json, pr_curve.png, roc_curve.png,
score_histogram.png, frames/*.png (overlay, heatmap, open-set), frames.csv (one row per frame:
score mean/max, rejected fraction, anomaly pixels caught and inliers rejected) and state.npz
(for merging shards); optionally a bag with the node's result topics for RViz / Foxglove.

This module is the run loop, the shard merge and the CLI (about 470 lines: one command's
whole flow, read top to bottom); where frames come from is eval_sources, frames.csv is
eval_table, the metric state is densehybrid_ros.evaluation, the printed summary is report.
"""

import argparse
import math
from pathlib import Path
import sys
import time
from typing import Any, Dict, Generator, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .benchmarks import BenchmarkError, LAYOUTS, STREETHAZARDS_CLASSES
from .eval_sources import EvalError, open_source, RECORDED_PICTURES, Source
from .eval_table import FrameTable, merge_tables
from .model_options import add_model_options, segmenter_from_args
from .report import plot_curves, plot_histogram, print_summary, write_json
from ..bags import BagError, BagWriter, Frame, STORAGES
from ..evaluation import Evaluation
from ..outputs import needs, OUTPUTS, output_topics, Renderer
from ..pictures import write_pictures
from ..prefetch import prefetch
from ..staging import staged_folder

EXAMPLE = '''examples:
  densehybrid-eval out/sample_bag --output out/eval                  # sample bag, embedded model
  densehybrid-eval drive.mcap --image-topic /front/image_raw --output out/drive \\
      --output-bag out/drive_results                                 # no labels: bag + stats
  densehybrid-eval dataset_AnomalyTrack --checkpoint ldn121.pt --device cuda --output out/smiyc
  densehybrid-eval calib_bag --threshold-from-tpr 0.95 --output out/calib   # writes a copy of
                                                                     # the checkpoint
  densehybrid-eval recorded_bag --recorded --output out/live         # the live node's outputs
  densehybrid-eval big_bag --shard 0/4 --output out/s0   # ... on 4 machines, then:
  densehybrid-eval merge out/s0 out/s1 out/s2 out/s3 --output out/all
'''
CITYSCAPES_FALLBACK = 19


# ------------------------------------------------------------------------------ evaluation
def _check_sizes(frame: Frame, shape: Tuple[int, int], base: str) -> None:
    for role in ('label', 'anomaly', 'open_set', 'semantic', 'score'):
        arr = frame.arrays.get(role)
        if arr is not None and arr.shape[:2] != shape:
            raise EvalError(
                f'frame {frame.index} ({frame.frame_id or "no frame_id"}, stamp '
                f'{frame.stamp / 1e9:.3f}): {role} is {arr.shape[1]}x{arr.shape[0]} but the '
                f'{base} is {shape[1]}x{shape[0]}; labels must have the image size')
        if arr is not None and role in ('label', 'anomaly', 'open_set', 'semantic') \
                and arr.dtype != np.uint8:
            raise EvalError(f'frame {frame.index}: {role} must be mono8, got {arr.dtype}')


class Runner:
    """Runs the model (or reads recorded results) over a source and writes the outputs."""

    def __init__(self, args: argparse.Namespace, output: Path) -> None:
        self.args = args
        self.output = output                # the staging folder (see evaluate)
        self.segmenter = None
        self.class_names: List[str] = []
        self.palette: Optional[np.ndarray] = None
        self.threshold = math.nan
        self.threshold_source = 'none'
        self.renderer: Optional[Renderer] = None      # draws pictures as the node does
        self.checkpoint: Optional[str] = None

    def load_model(self, recorded: bool) -> int:
        """Create the Segmenter (or read class names only, for recorded results)."""
        args = self.args
        if recorded:
            meta: Dict[str, Any] = {}
            from ..paths import default_checkpoint
            path = args.checkpoint or (default_checkpoint() if not args.num_classes
                                       and default_checkpoint().is_file() else None)
            if path:                   # class names and palette of the model the node ran
                from ..checkpoint import read_checkpoint
                meta = read_checkpoint(path)
                self.checkpoint = str(path)
            k = int(meta.get('num_classes', args.num_classes or CITYSCAPES_FALLBACK))
            from ..classes import default_class_names, default_palette
            self.class_names = list(meta.get('class_names') or default_class_names(k))
            self.palette = np.asarray(meta['palette'], np.uint8) if 'palette' in meta \
                else default_palette(k)
            self.renderer = Renderer(self.palette, meta.get('calibration'), args.alpha)
            self.threshold_source = 'applied by the node (recorded open_set)'
            return k
        self.segmenter = seg = segmenter_from_args(args)
        self.checkpoint = str(seg.meta.get('path', args.checkpoint))
        self.class_names, self.palette = seg.class_names, seg.palette
        if args.threshold is not None:
            seg.threshold = args.threshold
            self.threshold_source = '--threshold'
        elif not math.isnan(seg.threshold):
            self.threshold_source = 'checkpoint calibration'
        self.threshold = seg.threshold
        self.renderer = Renderer(seg.palette, seg.calibration, args.alpha)
        return int(seg.model.num_classes)

    def results(self, frames: List[Frame]) -> List[Dict[str, np.ndarray]]:
        """Per frame: score, semantic, open_set (model or recorded topics)."""
        if self.segmenter is None:
            out = []
            for f in frames:
                score = f.arrays['score']
                if score.dtype != np.float32 or score.ndim != 2:
                    raise EvalError(f'frame {f.index}: recorded anomaly_score must be 32FC1, '
                                    f'got {score.dtype} {score.shape}')
                out.append({k: f.arrays[k] for k in ('score', 'semantic', 'open_set')
                            if k in f.arrays})
            return out
        images = []
        for f in frames:
            image = f.arrays.get('image')       # bags and benchmarks decode cameras to RGB
            if image is None or image.ndim != 3 or image.dtype != np.uint8:
                raise EvalError(f'frame {f.index}: camera image must be 8-bit colour, '
                                f'got {None if image is None else (image.dtype, image.shape)}')
            images.append(image)
        return [{'score': r.score, 'semantic': r.semantic, 'open_set': r.open_set,
                 'anomaly_mask': r.anomaly_mask} for r in self.segmenter(images)]

    def pictures(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Write the frame's PNGs as frames/INDEX_PICTURE.png, named as by densehybrid-segment."""
        rendered = self.render(frame, result)
        rendered.update({k: frame.arrays[k] for k in RECORDED_PICTURES if k in frame.arrays})
        write_pictures(self.output / 'frames', f'{frame.index:06d}', rendered)

    def render(self, frame: Frame, result: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Colour pictures drawn as the node draws them (``outputs.Renderer``)."""
        image = frame.arrays.get('image')
        names = [name for name in ('anomaly_heatmap', 'semantic_color', 'open_set_color',
                                   'overlay') if self._drawable(name, result, image)]
        out = self.renderer.render_all(names, image, result)
        if image is not None and image.ndim == 3:
            out['image'] = image
        return out

    @staticmethod
    def _drawable(name: str, result: Dict[str, np.ndarray], image: Optional[np.ndarray]
                  ) -> bool:
        """Whether ``result`` (and the camera image, for the overlay) has what ``name`` needs."""
        have = {key for key, value in result.items() if value is not None}
        return needs([name]) <= have and (name != 'overlay'
                                          or (image is not None and image.ndim == 3))

    def write_bag(self, bag: BagWriter, source: Source, frame: Frame,
                  result: Dict[str, np.ndarray]) -> None:
        """Write the node's result topics for one frame, and copy its label messages."""
        base = f'{source.namespace}/image'          # one camera: <ns>/densehybrid/<output>
        topics = output_topics([base])[base]
        image = frame.arrays.get('image')
        for name, spec in OUTPUTS.items():
            if self._drawable(name, result, image):
                bag.write_image(topics[name], self.renderer.render(name, image, result),
                                spec.encoding, frame.stamp, frame.frame_id)
        for role, (msgtype, raw) in frame.raw.items():
            bag.write_raw(source.topics[role], msgtype, raw, frame.stamp)


def _batches(frames: Iterator[Frame], size: int) -> Iterator[List[Frame]]:
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


def evaluate(args: argparse.Namespace) -> Dict[str, Any]:
    """Run one evaluation; returns the metrics.json content.

    Results are written to a temporary folder and moved into ``--output`` only when the run
    produced them: a failed run leaves an earlier good result there untouched (issue 15).
    """
    with staged_folder(args.output) as staging:
        summary, broken = _evaluate(args, staging)
    if broken is not None:            # the frames before a broken message were evaluated
        raise EvalError(f'{broken}; the metrics of the {summary["frames"]} frames before it '
                        f'are in {Path(args.output) / "metrics.json"}')
    return summary


def _evaluate(args: argparse.Namespace, output: Path
              ) -> Tuple[Dict[str, Any], Optional[BagError]]:
    """Evaluate into ``output``; returns the summary and the error that cut the input short."""
    started = time.monotonic()
    stats: Dict[str, int] = {}
    source = open_source(args, stats)
    runner = Runner(args, output)
    interrupted = False
    broken: Optional[BagError] = None
    frames: Optional[Generator[Frame, None, None]] = None
    out_bag: Optional[BagWriter] = None
    try:
        k = runner.load_model(source.kind == 'recorded bag')
        if threshold_rule(args) and not runner.checkpoint:
            raise EvalError('--threshold-from-tpr/-fpr on recorded results needs --checkpoint '
                            '(the model to write the calibrated copy of)')
        run = Evaluation(k)
        use_labels = source.kind != 'streethazards' or k == STREETHAZARDS_CLASSES
        if args.output_bag:
            out_bag = BagWriter(args.output_bag, storage=args.bag_storage,
                                overwrite=args.overwrite)
        limit = args.frames if args.frames and args.frames > 0 else None
        total = min(x for x in (source.total, limit) if x is not None) \
            if (source.total or limit) else None
        bar = tqdm(total=total, desc='eval', unit='frame', disable=args.quiet)
        pictures = 0
        table = FrameTable(output / 'frames.csv')
        try:
            frames = prefetch(source.frames, args.prefetch)
            for batch in _batches(frames, max(1, args.batch)):
                if limit is not None:
                    batch = batch[:limit - run.frames]
                if not batch:
                    break
                for frame in batch:
                    key = frame.arrays.get('image', frame.arrays.get('score'))
                    _check_sizes(frame, key.shape[:2], 'image' if 'image' in frame.arrays
                                 else 'anomaly_score')
                for frame, result in zip(batch, runner.results(batch)):
                    label = frame.arrays.get('label') if use_labels else None
                    if label is not None and label.ndim != 2:
                        raise EvalError(f'frame {frame.index}: label must be mono8')
                    run.add(result['score'], frame.arrays.get('anomaly'), label,
                            result.get('open_set'), result.get('semantic'))
                    table.add(frame, result)
                    if pictures < args.pictures:
                        runner.pictures(frame, result)
                        pictures += 1
                    if out_bag is not None:
                        runner.write_bag(out_bag, source, frame, result)
                bar.update(len(batch))
                if limit is not None and run.frames >= limit:
                    break
        except KeyboardInterrupt:
            interrupted = True
            print(f'\ninterrupted: keeping the metrics of {run.frames} finished frames',
                  file=sys.stderr)
        except BagError as exc:       # broken or truncated after some frames: keep those
            if not run.frames:
                raise
            broken = exc
        finally:
            bar.close()
            table.close()
    finally:
        if frames is not None:
            frames.close()             # stops the reading thread before the bag closes
        source.close()
        if out_bag is not None:
            out_bag.close()
    if run.frames == 0 and not interrupted:
        raise EvalError(f'no frames to evaluate in {args.input} (shard {args.shard or "0/1"}; '
                        f'unmatched messages: {stats.get("unmatched", 0)})')
    summary = {
        'input': str(args.input), 'source': source.kind, 'topics': source.topics,
        'checkpoint': runner.checkpoint, 'shard': args.shard or '0/1',
        'interrupted': interrupted, 'num_classes': k,
        'threshold': {'value': runner.threshold, 'source': runner.threshold_source},
        **run.summary(runner.class_names),
        'unmatched_messages': stats.get('unmatched', 0),
        'frames_without_labels': stats.get('partial', 0),
        'seconds': round(time.monotonic() - started, 3),
    }
    if args.output_bag:
        summary['output_bag'] = str(args.output_bag)
    if broken is not None:
        summary['error'] = str(broken)
    run.save(output / 'state.npz')
    finish(args, run, summary, runner.class_names, output)
    return summary, broken


def finish(args: argparse.Namespace, run: Evaluation, summary: Dict[str, Any],
           class_names: Sequence[str], output: Path) -> None:
    """Calibrate (optionally), write plots, metrics.json into ``output`` and --json."""
    current = (summary.get('threshold') or {}).get('value')
    anomaly = summary.get('anomaly') or {}
    if current is not None and math.isfinite(current) and anomaly.get('anomaly_pixels') \
            and anomaly.get('inlier_pixels'):
        anomaly['at_threshold'] = run.anomaly.rates_at(current)
    rule = threshold_rule(args)
    if rule:
        summary['calibration'] = calibration = run.anomaly.threshold_at_tpr(**rule)
        calibration['measured_on'] = f'densehybrid-eval {summary["input"]}, ' \
            f'{run.anomaly_frames} frames'
        if run.semantic_frames:
            summary['open_set']['note'] = (
                'open-set figures use the threshold in effect during this run; evaluate with '
                'the calibrated checkpoint for open-mIoU at the new threshold')
        name = Path(summary['checkpoint']).stem + '_calibrated.pt'
        if args.calibrated_checkpoint:
            target = write_calibrated(summary['checkpoint'], Path(args.calibrated_checkpoint),
                                      calibration)
        else:                          # into the staging folder, reported where it will be
            write_calibrated(summary['checkpoint'], output / name, calibration)
            target = Path(args.output) / name
        summary['calibrated_checkpoint'] = str(target)
    plot_curves(run.anomaly, output)
    threshold = summary.get('calibration', {}).get('threshold', summary['threshold']['value'])
    plot_histogram(output, run.anomaly if run.anomaly_frames else None, run.scores,
                   threshold if threshold is not None else math.nan)
    write_json(output / 'metrics.json', summary)
    if args.json:
        write_json(Path(args.json), summary)


def write_calibrated(checkpoint: str, target: Path, calibration: Dict[str, Any]) -> Path:
    """Copy ``checkpoint`` to ``target`` with a new calibration block."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    model, meta = load_checkpoint(checkpoint)
    old = meta.get('calibration') or {}
    meta['calibration'] = {**calibration, 'previous_threshold': old.get('threshold')}
    meta['train'] = meta.get('train') or {}
    return save_checkpoint(target, model, meta)


# ------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-eval."""
    p = argparse.ArgumentParser(prog='densehybrid-eval', description=__doc__, epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('input', help='rosbag2 (folder, .mcap, .db3) or benchmark folder; or '
                                 '"merge" to merge shard outputs (densehybrid-eval merge -h)')
    p.add_argument('--output', default='out/eval', help='results folder (default out/eval)')
    p.add_argument('--json', help='also write metrics.json here')
    src = p.add_argument_group('input')
    src.add_argument('--dataset', default='auto', choices=('auto', 'bag') + LAYOUTS,
                     help='input kind (default: auto-detect)')
    src.add_argument('--image-topic', help='camera topic (default: the only camera topic)')
    src.add_argument('--label-topic', help='semantic label topic, mono8 train ids (default: '
                                           '<ns>/semantic_label if present)')
    src.add_argument('--anomaly-topic', help='anomaly label topic, mono8 0/1/255 (default: '
                                             '<ns>/anomaly_label if present)')
    src.add_argument('--no-labels', action='store_true', help='ignore label topics')
    src.add_argument('--recorded', action='store_true',
                     help='input holds the live node outputs: evaluate its anomaly_score '
                          '(and open_set, semantic) topics instead of running the model')
    src.add_argument('--score-topic', help='recorded score topic (default '
                                           '<ns>/densehybrid/anomaly_score)')
    src.add_argument('--num-classes', type=int, help='classes of recorded results without '
                                                     '--checkpoint (default 19)')
    src.add_argument('--frames', type=int, default=0, help='evaluate at most N frames')
    src.add_argument('--shard', help='evaluate frames i, i+n, ... of this input ("i/n")')
    src.add_argument('--seed', type=int, default=0, help='unused: evaluation is deterministic')
    model = p.add_argument_group('model')
    add_model_options(model)
    model.add_argument('--batch', type=int, default=1, help='frames per forward pass')
    model.add_argument('--prefetch', type=int, default=2,
                       help='frames read ahead in a background thread (0: none)')
    model.add_argument('--threshold', type=float,
                       help='anomaly threshold for open-set figures (default: checkpoint)')
    add_threshold_rule(model, 'calibrate the threshold and write it into a copy of the '
                              'checkpoint')
    model.add_argument('--calibrated-checkpoint', help='where to write that copy (default '
                                                       '<output>/<name>_calibrated.pt)')
    out = p.add_argument_group('output')
    out.add_argument('--output-bag', help='write the node result topics to this bag')
    out.add_argument('--bag-storage', default='mcap', choices=STORAGES)
    out.add_argument('--copy-images', action='store_true',
                     help='also copy the camera topic into the output bag')
    out.add_argument('--overwrite', action='store_true', help='replace an existing output bag')
    out.add_argument('--pictures', type=int, default=3, help='frames to save as PNGs')
    out.add_argument('--alpha', type=float, default=0.5, help='overlay opacity')
    out.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def add_threshold_rule(group: Any, what: str) -> None:
    """Add the two calibration rules as exclusive options (``metrics.calibrate_counts``)."""
    rule = group.add_mutually_exclusive_group()
    rule.add_argument('--threshold-from-tpr', type=float, metavar='TPR',
                      help=f'{what}: the threshold flagging this fraction of anomaly pixels '
                           '(e.g. 0.95)')
    rule.add_argument('--threshold-from-fpr', type=float, metavar='FPR',
                      help=f'{what}: the threshold flagging the most anomaly pixels while '
                           'flagging at most this fraction of inlier pixels (e.g. 0.01)')


def threshold_rule(args: argparse.Namespace) -> Dict[str, float]:
    """Keyword arguments of ``threshold_at_tpr`` for the rule asked for; empty for none."""
    if args.threshold_from_fpr is not None:
        return {'target_fpr': args.threshold_from_fpr}
    return {'target_tpr': args.threshold_from_tpr} if args.threshold_from_tpr else {}


def build_merge_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-eval merge."""
    p = argparse.ArgumentParser(
        prog='densehybrid-eval merge', description='Merge the outputs of densehybrid-eval '
        '--shard runs into one result, as if evaluated in one run.',
        epilog='example:\n  densehybrid-eval merge out/s0 out/s1 --output out/all',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('shards', nargs='+', help='output folders of the shard runs')
    p.add_argument('--output', default='out/eval', help='results folder (default out/eval)')
    p.add_argument('--json', help='also write metrics.json here')
    add_threshold_rule(p, 'calibrate on all shards together and write a checkpoint copy')
    p.add_argument('--calibrated-checkpoint', help='where to write that copy')
    p.add_argument('--checkpoint', help='the checkpoint to copy, if its path on this machine '
                                        'differs from the one in the shards')
    return p


def merge(args: argparse.Namespace) -> Dict[str, Any]:
    """Merge shard folders into one result."""
    import json
    runs, summaries = [], []
    for folder in args.shards:
        folder = Path(folder)
        meta_path, state_path = folder / 'metrics.json', folder / 'state.npz'
        if not meta_path.is_file() or not state_path.is_file():
            raise EvalError(f'{folder} is not a densehybrid-eval output (needs metrics.json '
                            f'and state.npz)')
        summary = json.loads(meta_path.read_text())
        summaries.append(summary)
        runs.append(Evaluation.load(state_path, summary))
    first = summaries[0]
    for s in summaries[1:]:            # paths may differ between machines: compare names
        for key in ('input', 'checkpoint', 'num_classes'):
            a, b = first.get(key), s.get(key)
            if key != 'num_classes':
                a, b = (Path(v).name if v else v for v in (a, b))
            if a != b:
                raise EvalError(f'shards differ in {key}: {a!r} vs {b!r}')
    shards = sorted(s.get('shard', '0/1') for s in summaries)
    if len(set(shards)) != len(shards):
        raise EvalError(f'the same shard appears twice: {shards}')
    total = runs[0]
    for other in runs[1:]:
        total.merge(other)
    names = list((first.get('open_set') or {}).get('per_class_iou', {}).keys())
    summary = {**{k: first.get(k) for k in ('input', 'source', 'topics', 'checkpoint',
                                            'num_classes', 'threshold')},
               'shard': 'merged ' + ', '.join(shards),
               'interrupted': any(s.get('interrupted') for s in summaries),
               **total.summary(names or [str(i) for i in range(total.num_classes)]),
               'unmatched_messages': sum(s.get('unmatched_messages', 0) for s in summaries),
               'frames_without_labels': sum(s.get('frames_without_labels', 0)
                                            for s in summaries)}
    if args.checkpoint:
        summary['checkpoint'] = args.checkpoint
    with staged_folder(args.output) as output:
        total.save(output / 'state.npz')
        merge_tables([Path(folder) / 'frames.csv' for folder in args.shards],
                     output / 'frames.csv')
        finish(args, total, summary, names, output)
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    merging = bool(argv) and argv[0] == 'merge'
    args = build_merge_parser().parse_args(argv[1:]) if merging \
        else build_parser().parse_args(argv)
    try:
        tpr, fpr = args.threshold_from_tpr, args.threshold_from_fpr
        if tpr is not None and not 0 < tpr <= 1:
            raise EvalError(f'--threshold-from-tpr must be in (0, 1], got {tpr}')
        if fpr is not None and not 0 <= fpr < 1:
            raise EvalError(f'--threshold-from-fpr must be in [0, 1), got {fpr}')
        summary = merge(args) if merging else evaluate(args)
    except (EvalError, BagError, BenchmarkError, ValueError, OSError) as exc:
        print(f'densehybrid-eval: error: {exc}', file=sys.stderr)
        return 2
    print_summary(summary, args.output)
    return 130 if summary.get('interrupted') else 0


if __name__ == '__main__':
    sys.exit(main())
