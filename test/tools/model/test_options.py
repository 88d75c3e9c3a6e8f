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


def test_the_segmenter_gets_every_option(tiny_checkpoint, capsys) -> None:
    args = segment.build_parser().parse_args(
        ['--checkpoint', str(tiny_checkpoint), '--device', 'cpu', '--inference-width', '64',
         '--backend', 'torch'])
    seg = segmenter_from_args(args)
    assert (seg.inference_size, seg.precision, seg.backend_name) == (64, 'fp32', 'torch')
    assert capsys.readouterr().err == ''                  # a backend chosen: nothing to say
    args.backend = 'tensorflow'
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        segmenter_from_args(args)


def test_the_default_backend_is_auto_and_says_what_it_runs(tiny_checkpoint, capsys) -> None:
    """Constructing exports nothing (graphs are made on the first image of a size)."""
    from densehybrid_ros.deploy.backends import auto_backend

    args = segment.build_parser().parse_args(['--checkpoint', str(tiny_checkpoint),
                                              '--device', 'cpu'])
    assert args.backend == 'auto'
    choice = auto_backend('fp32', 'cpu')
    seg = segmenter_from_args(args)
    assert seg.backend_name == choice.backend
    lines = capsys.readouterr().err.splitlines()
    if choice.fallback:                    # said by the Segmenter's WARN, not a second line
        assert not any('note: backend auto' in line for line in lines)
    else:
        assert [line for line in lines if 'backend auto' in line] == [
            f'note: backend auto: {choice.backend} fp32 ({choice.reason}'
            + ('; each new inference size is exported once (seconds) and cached)'
               if choice.backend != 'torch' else ')')]
