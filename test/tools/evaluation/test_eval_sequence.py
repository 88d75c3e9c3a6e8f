"""densehybrid-eval on a sequence bag: the node's obstacle pipeline scored against ground truth."""

import json

from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.rostools import make_bag


def test_a_sequence_bag_gets_tracking_and_placement_figures(tmp_path, capsys):
    bag = tmp_path / 'sequence'
    assert make_bag.main(['--sequence', '--output', str(bag), '--frames', '12', '--size',
                          '144', '256', '--speed', '2.0', '--seed', '3', '--quiet']) == 0
    out = tmp_path / 'eval'
    assert eval_bag.main([str(bag), '--output', str(out), '--quiet', '--pictures', '0',
                          '--backend', 'torch']) == 0
    sequence = json.loads((out / 'metrics.json').read_text())['sequence']
    assert sequence['frames'] == 12
    tracking = sequence['tracking']
    assert tracking['frames'] == 12 and tracking['sequences'] == 1
    truth = make_bag_objects(bag)
    assert tracking['objects'] == len(truth) > 0
    for key in ('confirmed_early', 'flicker', 'phantom_tracks_per_100_frames',
                'id_switches_per_object', 'frames_to_confirm', 'first_range'):
        assert key in tracking
    assert tracking['first_range']['count'] == len(truth)
    assert {'placement_ground', 'placement_depth'} <= set(sequence)
    printed = capsys.readouterr().out
    assert 'sequence: ' in printed and f'{len(truth)} objects' in printed


def test_a_bag_without_ground_truth_has_no_sequence_figures(tmp_path):
    bag = tmp_path / 'sample'
    assert make_bag.main(['--output', str(bag), '--frames', '2', '--size', '64', '128',
                          '--quiet']) == 0
    out = tmp_path / 'eval'
    assert eval_bag.main([str(bag), '--output', str(out), '--quiet', '--pictures', '0',
                          '--backend', 'torch']) == 0
    assert 'sequence' not in json.loads((out / 'metrics.json').read_text())


def make_bag_objects(bag):
    """Ids of the objects the sequence's ground truth ever shows (10 px or more)."""
    from densehybrid_ros.data.bags import BagReader
    ids = set()
    with BagReader(bag) as reader:
        roles = {'image': '/camera/image', **reader.sequence_roles('/camera')}
        for frame in reader.frames(roles):
            ids |= {o['id'] for o in frame.data['truth']['objects'] if o['pixels'] >= 10}
    return ids
