"""The model options every tool that runs the Segmenter takes, and the Segmenter they make.

One place for --checkpoint, --device, --precision, --backend and --inference-width, so eval and
segment (and any new tool) spell and mean them the same way.
"""

import argparse
import sys
from typing import Any


def add_model_options(parser: Any) -> None:
    """Add the model options to ``parser`` (an ArgumentParser or an argument group)."""
    parser.add_argument('--checkpoint', help='model checkpoint (default: the embedded model)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--precision', default='fp32',
                        help='fp32, fp16 (CUDA) or bf16; int8 with --backend openvino and '
                        '--artifacts (default fp32)')
    parser.add_argument('--backend', default='auto',
                        help='auto (default: the fastest runtime with the same scores as '
                        'torch fp32 here: openvino on an x86 CPU where installed and faster '
                        'than torch (timed once per size), else torch), '
                        'torch, onnxruntime or openvino (an exported graph)')
    parser.add_argument('--artifacts', nargs='+', default=[], metavar='DIR',
                        help='graphs made by densehybrid-export (needed for int8); without '
                        'them graphs are exported on the first frame of a size and cached')
    parser.add_argument('--inference-width', type=int, default=0,
                        help='resize to this width for inference (0: native)')


def segmenter_from_args(args: argparse.Namespace) -> Any:
    """Build the Segmenter the model options ask for (raises CheckpointError / ValueError)."""
    from ...deploy.segmenter import Segmenter  # imported here: --help stays fast
    seg = Segmenter(args.checkpoint, device=args.device, precision=args.precision,
                    inference_size=args.inference_width or None, backend=args.backend,
                    artifacts=args.artifacts)
    if seg.auto is not None and not seg.auto.fallback:     # a fallback is a warning already
        lazy = '; each new inference size is exported once (seconds) and cached' \
            if seg.backend_name != 'torch' and not args.artifacts else ''
        print(f'note: backend auto: {seg.backend_name} {seg.precision} ({seg.auto.reason}{lazy})',
              file=sys.stderr)
    return seg
