"""densehybrid-eval-families on a tiny real checkpoint: every family and size reported."""

import json

import pytest

from densehybrid_ros.tools.evaluation.families import main


def test_reports_every_family_and_size(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'families.json'
    rc = main(['--checkpoint', str(tiny_checkpoint), '--families', 'solids', 'glyph',
               '--size', '64', '128', '--size', '96', '192', '--size', '64', '128',
               '--scene-size', '96', '192', '--scenes', '2',
               '--device', 'cpu', '--json', str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result['families']) == {'solids', 'glyph'}
    for per_size in [*result['families'].values(), result['pooled']]:
        assert set(per_size) == {'64x128', '96x192'}
        for r in per_size.values():
            assert r['anomaly_pixels'] > 0 and 0.0 <= r['miou'] <= 1.0
            for kind in ('hybrid', 'generative', 'discriminative'):
                assert 0.0 < r[kind]['ap'] <= 1.0 and 0.0 <= r[kind]['fpr95'] <= 1.0
            assert 0.0 <= r['threshold']['tpr'] <= 1.0 and r['threshold']['value'] == -2.0
            assert r['by_size'] and r['by_distance']
            components = r['components']          # objects: the mask and the instances
            assert components['track'] == 'anomaly'
            for name in ('mask', 'instances'):
                block = components[name]
                assert block['gt_components'] > 0 and 0.0 <= block['f1_mean'] <= 1.0
    for size in ('64x128', '96x192'):                 # 2 scenes a family, pooled: 4
        for name in ('mask', 'instances'):
            per_family = [result['families'][f][size]['components'][name]
                          for f in ('solids', 'glyph')]
            pooled = result['pooled'][size]['components'][name]
            assert [b['frames'] for b in per_family] == [2, 2] and pooled['frames'] == 4
            assert pooled['gt_components'] == sum(b['gt_components'] for b in per_family)
    text = capsys.readouterr().out
    assert 'solids    64x128' in text and 'by anomaly distance' in text
    assert 'objects at the threshold' in text and 'instances' in text
    rows = text.splitlines()           # a row in the pixel table and one in the objects table
    assert sum(row.startswith('solids    96x192') for row in rows) == 2
    assert sum(row.startswith('pooled    96x192') for row in rows) == 1


@pytest.mark.parametrize('argv, message', [
    (['--scenes', '0'], 'need --scenes or --sequences of at least 1'),
    (['--scenes', '0', '--sequences', '1', '--sequence-frames', '0'],
     '--sequence-frames must be at least 1'),
    (['--sequences', '1', '--sequence-speed', '-1'], '--sequence-speed over 0'),
    (['--scenes', '0', '--sequences', '1', '--sequence-seed', '-1'],
     '--sequence-seed must be at least 0, got -1'),
    (['--checkpoint', '/nonexistent.pt'], 'error:'),
])
def test_bad_arguments_give_an_error_line(argv, message, capsys, tmp_path):
    assert main([*argv, '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert 'densehybrid-eval-families: error:' in err and message in err


def test_sequences_alone_report_objects_over_time(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'families.json'
    rc = main(['--checkpoint', str(tiny_checkpoint), '--families', 'voronoi', '--scenes', '0',
               '--sequences', '2', '--sequence-frames', '3', '--sequence-size', '64', '128',
               '--device', 'cpu', '--json', str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert 'families' not in result                  # no scenes asked for
    sequences = result['sequences']
    assert sequences['size'] == [64, 128] and sequences['frames'] == 3
    tracking = sequences['families']['voronoi']['tracking']
    assert tracking['frames'] == 6 and tracking['sequences'] == 2
    assert set(sequences['pooled']['placement_ground']['by_range']) == {'0-10', '10-20', '>=20'}
    text = capsys.readouterr().out
    assert 'objects over time: 2 sequences per family (streets 2000000-2000001), 3 frames at ' \
        '64x128' in text
    assert any(row.startswith('voronoi ') for row in text.splitlines())
    assert 'objects at the threshold' not in text
    assert sequences['seed_start'] == 2000000


def test_the_drives_start_at_the_street_asked_for(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'streets.json'
    assert main(['--checkpoint', str(tiny_checkpoint), '--families', 'solids', '--scenes', '0',
                 '--sequences', '2', '--sequence-frames', '2', '--sequence-size', '64', '128',
                 '--sequence-seed', '1000', '--device', 'cpu', '--json', str(out)]) == 0
    assert json.loads(out.read_text())['sequences']['seed_start'] == 1000
    assert '2 sequences per family (streets 1000-1001)' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['--size', '16', '512'], '--size must be at least 32 32, got 16 512'),
    (['--size', '288', '512', '--scene-size', '512', '8'],
     '--scene-size must be at least 32 32, got 512 8'),
])
def test_a_small_size_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f'densehybrid-eval-families: error: {message}\n'


@pytest.mark.parametrize('argv', [['--size', '288x512'], ['--size', '288', 'x'],
                                  ['--scene-size', '512']])
def test_size_takes_h_w_like_every_other_tool(argv, capsys):
    """Issue 24 (6): --size was HxW here and H W everywhere else."""
    with pytest.raises(SystemExit) as exc:
        main([*argv, '--scenes', '0'])        # had it parsed, an error line, not a long run
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert sum(line.startswith('densehybrid-eval-families: error:') for line in
               err.splitlines()) == 1 and 'Traceback' not in err
