"""Where densehybrid-eval writes: earlier results survive broken input, full disks and typos."""

import json
import os
from pathlib import Path
from typing import Dict

import pytest

from densehybrid_ros.data.bag_writer import array_to_image, BagWriter
from densehybrid_ros.data.bags import BagReader
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.rostools.make_bag import write_sample_bag

SIZE = (32, 64)
SEED = 6060


def tree(folder: Path) -> Dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def run(*argv: str) -> int:
    """Run densehybrid-eval in-process on the CPU, quietly."""
    return eval_bag.main([*argv, '--quiet', '--device', 'cpu', '--backend', 'torch'])


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory) -> Path:
    """A 4-frame sample bag of 32 x 64 scenes with labels."""
    path = tmp_path_factory.mktemp('bags') / 'sample'
    write_sample_bag(str(path), 4, SIZE, rate=10.0, seed=SEED)
    return path


def test_broken_input_leaves_earlier_results_and_puts_the_partial_ones_aside(
        sample_bag, tiny_checkpoint, tmp_path, capsys) -> None:
    """Issue 23 (3): a garbage Image at frame 5 replaced every file of the earlier --output."""
    out, results = tmp_path / 'eval', tmp_path / 'results'
    assert run(str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--output', str(out),
               '--output-bag', str(results)) == 0
    before, bag_before = tree(out), tree(results)
    assert len(before) > 5
    with BagWriter(tmp_path / 'broken') as bag:           # frame 5: data shorter than h * step
        for i in range(7):
            scene = make_scene(SEED + i, SIZE, anomaly_family='eval')
            image = array_to_image(scene['image'], 'rgb8', (i + 1) * 10 ** 8, 'cam')
            if i == 5:
                image.data = image.data[:100]
            bag.write('/cam/image', image)
            bag.write_image('/cam/anomaly_label', scene['anomaly'], 'mono8', (i + 1) * 10 ** 8,
                            'cam')
    copy = tmp_path / 'calibrated.pt'
    code = run(str(tmp_path / 'broken'), '--checkpoint', str(tiny_checkpoint), '--output',
               str(out), '--output-bag', str(results), '--overwrite', '--threshold-from-fpr',
               '0.05', '--calibrated-checkpoint', str(copy))
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    assert tree(out) == before and tree(results) == bag_before        # byte for byte
    partial = tmp_path / 'eval.partial'
    assert f'the metrics of the 5 frames before it are in {partial / "metrics.json"}' in err
    figures = json.loads((partial / 'metrics.json').read_text())
    assert figures['frames'] == 5 and 'data' in figures['error']
    assert figures['output_bag'] == str(tmp_path / 'results.partial')
    with BagReader(tmp_path / 'results.partial') as reader:       # the partial bag: readable
        assert reader.topics['/cam/densehybrid/anomaly_score'][1] == 5
    assert not copy.exists()                   # a failed run writes no calibrated checkpoint
    assert figures['calibrated_checkpoint'] == str(partial / 'tiny_calibrated.pt')
    assert (partial / 'tiny_calibrated.pt').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'broken', 'eval', 'eval.partial', 'results', 'results.partial']   # nothing staged left


def test_a_full_disk_under_the_output_bag_keeps_the_earlier_bag(
        sample_bag, tiny_checkpoint, tmp_path, small_disk, capsys) -> None:
    """Issue 23 (5): [Errno 28] without a path, and an unreadable bag under the final name."""
    target = small_disk / 'results'
    write_sample_bag(str(target), 1, (16, 24))
    before = tree(target)
    stat = os.statvfs(small_disk)            # leave 48 KiB: the results need about 150 KiB
    (small_disk / 'filler').write_bytes(bytes(stat.f_bavail * stat.f_frsize - 48 * 1024))
    code = run(str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--output',
               str(tmp_path / 'eval'), '--output-bag', str(target), '--overwrite')
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    assert f'cannot write the output bag {target}: No space left on device' in err
    assert tree(target) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ['filler', 'results']
    assert not (tmp_path / 'eval').exists()


@pytest.mark.parametrize('option, where', [
    ('--output-bag', 'input'),                  # the case, with --overwrite
    ('--output', 'input'),
    ('--output', 'parent'),                     # the input inside the output folder
    ('--output-bag', 'inside'),                 # written into the input bag folder
    ('--json', 'inside'),
])
def test_an_output_over_the_input_is_refused(sample_bag, tmp_path, capsys, option,
                                             where) -> None:
    """Issue 23 (6): eval BAG --output-bag BAG --overwrite replaced the input bag."""
    bag = tmp_path / 'bag'
    write_sample_bag(str(bag), 1, (16, 24))
    before = tree(bag)
    path = {'input': bag, 'parent': tmp_path, 'inside': bag / 'bag.mcap'}[where]
    argv = [option, str(path)] + ([] if option == '--output'
                                  else ['--output', str(tmp_path / 'o')])
    assert run(str(bag), *argv, '--overwrite') == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and f'would overwrite or write into the input {bag}' in err
    assert tree(bag) == before and sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def test_the_calibrated_copy_never_replaces_the_checkpoint(sample_bag, tiny_checkpoint,
                                                           tmp_path, capsys) -> None:
    original = tiny_checkpoint.read_bytes()
    assert run(str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--threshold-from-fpr',
               '0.01', '--calibrated-checkpoint', str(tiny_checkpoint), '--output',
               str(tmp_path / 'o')) == 2
    assert 'would overwrite or write into the input' in capsys.readouterr().err
    assert tiny_checkpoint.read_bytes() == original


def test_merge_refuses_to_write_over_a_shard(tmp_path, capsys) -> None:
    shard = tmp_path / 's0'
    shard.mkdir()
    assert eval_bag.main(['merge', str(shard), '--output', str(shard)]) == 2
    assert f'--output {shard} would overwrite' in capsys.readouterr().err
