r"""Export a checkpoint to a deployment runtime: one static graph for one inference size.

The graph holds the whole per-frame computation (model, hybrid score, argmax) and maps
``image`` N x 3 x H x W float32 RGB in [0, 1] to ``labels`` (uint8) and ``score`` (float32).
The output folder also holds meta.json (arch, classes, palette, size, precision, the threshold
for that precision, the checkpoint's SHA-256). Give the folder to the node (parameters
``backend`` and ``artifacts``) or to densehybrid-segment, -eval and -demo (``--backend`` and
``--artifacts``), with the checkpoint it was made from.

examples (the embedded model when no checkpoint is given):
  densehybrid-export --format openvino --size 512 1024 --output out/export/ov
  densehybrid-export model.pt --format onnx --size 512 1024 --output out/export/ort
  densehybrid-export --format openvino --size 512 1024 --precision int8 \
      --calibration out/sample_bag --output out/export/ov_int8
"""

import argparse
import json
import sys
from typing import List, Optional

from ...deploy.artifacts import as_size, export_checkpoint
from ...deploy.runtimes import ExportError
from ...deploy.runtimes import PRECISIONS
from ...core.paths import default_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    parser = argparse.ArgumentParser(prog='densehybrid-export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='densehybrid_ros checkpoint (default: the embedded model)')
    parser.add_argument('--format', required=True, choices=['onnx', 'openvino'],
                        help='runtime the graph is for: onnx (ONNX Runtime) or openvino')
    parser.add_argument('--size', required=True, nargs=2, type=int, metavar=('H', 'W'),
                        help='inference size the graph is made for')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS,
                        help='onnx: fp32, fp16; openvino: fp32, bf16, int8 (default fp32)')
    parser.add_argument('--calibration', metavar='DIR_OR_BAG',
                        help='int8: folder of images or rosbag2 of frames from your cameras')
    parser.add_argument('--calibration-frames', type=int, default=64,
                        help='int8: at most this many calibration frames (default 64)')
    parser.add_argument('--output', required=True, help='artifact folder to write')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        info = export_checkpoint(args.checkpoint or default_checkpoint(), args.format,
                                 as_size(args.size), args.output, args.precision,
                                 args.calibration, calibration_limit=args.calibration_frames)
    except (ExportError, ValueError, OSError) as exc:
        print(f'densehybrid-export: error: {exc}', file=sys.stderr)
        return 2
    keep = ('graph', 'arch', 'input_size', 'precision', 'weights_sha256')
    summary = {k: info[k] for k in keep}
    summary['threshold'] = (info.get('calibration') or {}).get('threshold')
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
