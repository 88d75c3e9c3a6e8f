"""densehybrid-train --negative-family: the varied procedural negatives train end to end."""

import json

import pytest

from densehybrid_ros.models.checkpoint import read_checkpoint
from densehybrid_ros.training.train import build_data, build_parser, main

TINY = ['--arch', 'ladder_resnet18_half', '--batch-size', '2', '--crop', '48', '64',
        '--scene-size', '64', '96', '--val-size', '64', '96', '--train-scenes', '4',
        '--val-scenes', '2', '--calib-scenes', '2', '--workers', '0', '--threads', '2',
        '--no-progress', '--warmup', '1', '--iters', '2']


def test_varied_negatives_are_pasted_into_training_crops():
    args = build_parser().parse_args(['synthetic', '--negative-family', 'varied',
                                      '--paste-scale', '0.02', '0.5', *TINY])
    train, _, _, _ = build_data(args, rank=0)
    pasted = [train[(0, i)]['outlier'] for i in range(4)]
    assert all(int(p.sum()) > 0 for p in pasted)
    sizes = sorted(int(p.sum()) for p in pasted)
    assert sizes[0] < sizes[-1]                         # log-uniform scale: sizes differ


def test_training_with_varied_negatives_runs_and_records_the_family(tmp_path):
    out = tmp_path / 'run'
    rc = main(['synthetic', '--negative-family', 'varied', '--output', str(out),
               '--json', str(out / 'm.json'), *TINY])
    assert rc == 0 and json.loads((out / 'm.json').read_text())
    meta = read_checkpoint(out / 'model.pt')
    assert '--negative-family varied' in meta['train']['command']


def test_a_held_out_family_is_refused_for_training(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(['synthetic', '--negative-family', 'solids'])
    assert exc.value.code == 2 and "invalid choice: 'solids'" in capsys.readouterr().err
