"""densehybrid-eval: evaluate DenseHybrid on a rosbag2 or a benchmark folder.

Input: a rosbag2 (folder with metadata.yaml, or one .mcap / .db3 file; raw or compressed
images; labels joined to images by header stamp), a bag of the node's recorded outputs
(--recorded: <ns>/densehybrid/anomaly_score [+ open_set, semantic] and the label topics), or a
benchmark folder (Fishyscapes Lost&Found, SegmentMeIfYouCan anomaly / obstacle track,
StreetHazards). Output folder: metrics.json (pixel figures: AP, AUROC, FPR95, rates at the
threshold, open-set IoU; object figures as SegmentMeIfYouCan scores them: mean F1, sIoU and
PPV of the connected components of the thresholded anomaly mask and of the anomaly
instances), pr_curve.png, roc_curve.png, score_histogram.png, frames/*.png (overlay, heatmap,
open-set), frames.csv (one row per frame: score mean/max, rejected fraction, anomaly pixels
caught and inliers rejected) and state.npz (for merging shards); optionally a bag with the
node's result topics for RViz / Foxglove.
"""

import argparse
import sys
from typing import List, Optional

from .calibrate import add_threshold_rule, check_threshold_rule
from .datasets import BenchmarkError, LAYOUTS
from .merge import build_merge_parser, merge
from .report import print_summary
from .run import evaluate
from .sources import EvalError
from ..model.options import add_model_options
from ...data.bag_writer import STORAGES
from ...data.bags import BagError
from ...metrics.components import SMIYC_MIN_SIZES

EXAMPLE = '''examples:
  densehybrid-eval out/sample_bag --output out/eval                  # sample bag, embedded model
  densehybrid-eval drive.mcap --image-topic /front/image_raw --output out/drive \\
      --output-bag out/drive_results                                 # no labels: bag + stats
  densehybrid-eval dataset_AnomalyTrack --checkpoint ldn121.pt --device cuda --output out/smiyc
  densehybrid-eval calib_bag --threshold-from-tpr 0.95 --output out/calib   # labelled anomalies:
                                      # writes out/calib/<checkpoint>_calibrated.pt
  densehybrid-eval my_drive --no-labels --threshold-from-fpr 0.01 --checkpoint ldn121.pt \\
      --output out/calib_drive --calibrated-checkpoint models/ldn121_my_camera.pt
                                      # normal driving without labels: every pixel an inlier,
                                      # at most 1 % of them flagged; heatmap range from them
  densehybrid-eval recorded_bag --recorded --output out/live         # the live node's outputs
  densehybrid-eval recorded_bag --recorded --no-labels --threshold-from-fpr 0.01 \\
      --checkpoint ldn121.pt --output out/calib_live --calibrated-checkpoint models/live.pt
  densehybrid-eval big_bag --shard 0/4 --output out/s0   # ... on 4 machines, then:
  densehybrid-eval merge out/s0 out/s1 out/s2 out/s3 --output out/all

Give each run its own --output: results replace the same files of an earlier run there (a
calibration run next to labelled results would replace their metrics.json). A run that fails
leaves --output, --output-bag and --calibrated-checkpoint as they were; when a broken message
cuts the input short, the results of the frames before it go to <output>.partial (and
<output-bag>.partial) and the run exits 2. An output that is an input, holds one or lies
inside one is refused.
'''


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
    src.add_argument('--no-labels', action='store_true',
                     help='ignore label topics: score statistics only, or with '
                          '--threshold-from-fpr a calibration on normal driving (every pixel '
                          'an inlier)')
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
                       help='anomaly threshold for open-set and object figures (default: '
                            'checkpoint; with --recorded: for the instances, and the mask of '
                            'a recording without open_set)')
    add_threshold_rule(model, 'calibrate the threshold and write it into a copy of the '
                              'checkpoint')
    model.add_argument('--calibrated-checkpoint', help='where to write that copy (default '
                                                       '<output>/<name>_calibrated.pt)')
    model.add_argument('--component-track', default='auto',
                       choices=('auto',) + tuple(SMIYC_MIN_SIZES),
                       help='SegmentMeIfYouCan track whose size filters (scaled to the image) '
                            'the object figures use (default: obstacle for ObstacleTrack and '
                            'LostAndFound folders, else anomaly)')
    out = p.add_argument_group('output')
    out.add_argument('--output-bag', help='write the node result topics to this bag')
    out.add_argument('--bag-storage', default='mcap', choices=STORAGES,
                     help='storage of --output-bag: mcap (default) or sqlite3')
    out.add_argument('--copy-images', action='store_true',
                     help='also copy the camera topic into the output bag')
    out.add_argument('--overwrite', action='store_true',
                     help='replace an existing output bag (only when the run succeeds)')
    out.add_argument('--pictures', type=int, default=3, help='frames to save as PNGs')
    out.add_argument('--alpha', type=float, default=0.5, help='overlay opacity')
    out.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    merging = bool(argv) and argv[0] == 'merge'
    args = build_merge_parser().parse_args(argv[1:]) if merging \
        else build_parser().parse_args(argv)
    try:
        check_threshold_rule(args)
        summary = merge(args) if merging else evaluate(args)
    except (EvalError, BagError, BenchmarkError, ValueError, OSError) as exc:
        print(f'densehybrid-eval: error: {exc}', file=sys.stderr)
        return 2
    print_summary(summary, args.output)
    return 130 if summary.get('interrupted') else 0


if __name__ == '__main__':
    sys.exit(main())
