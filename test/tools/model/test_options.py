"""Model options: one spelling and meaning in every tool that runs the Segmenter."""

import pytest

from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.model import segment
from densehybrid_ros.tools.model.options import segmenter_from_args

ARGV = ['--checkpoint', 'm.pt', '--device', 'cpu', '--precision', 'bf16', '--backend',
        'openvino', '--inference-width', '640']
KEYS = ('checkpoint', 'device', 'precision', 'backend', 'inference_width')


def test_eval_and_segment_parse_the_model_options_alike() -> None:
    parsed = [eval_bag.build_parser().parse_args(['in', *ARGV]),
              segment.build_parser().parse_args(ARGV)]
    assert [{k: getattr(a, k) for k in KEYS} for a in parsed] == [
        {'checkpoint': 'm.pt', 'device': 'cpu', 'precision': 'bf16', 'backend': 'openvino',
         'inference_width': 640}] * 2


def test_the_segmenter_gets_every_option(tiny_checkpoint) -> None:
    args = segment.build_parser().parse_args(
        ['--checkpoint', str(tiny_checkpoint), '--device', 'cpu', '--inference-width', '64'])
    seg = segmenter_from_args(args)
    assert (seg.inference_size, seg.precision, seg.backend_name) == (64, 'fp32', 'torch')
    args.backend = 'tensorflow'
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        segmenter_from_args(args)
