"""densehybrid_ros.data.bag_staging: a bag moves into place whole, or the old one stays."""

import os
import subprocess
import sys

import numpy as np
import pytest

from densehybrid_ros.data.bag_staging import staged_bag
from densehybrid_ros.data.bag_writer import BagWriter
from densehybrid_ros.data.bags import BagError, BagReader


def _write(path, frames: int) -> None:
    with BagWriter(path) as bag:
        for i in range(frames):
            bag.write_image('/camera/image', np.full((4, 6), i, np.uint8), 'mono8', i + 1)


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_finished_bag_replaces_the_old_one_whole(tmp_path) -> None:
    target = tmp_path / 'bag'
    _write(target, 1)
    (target / 'stale.txt').write_text('from the old bag')
    with staged_bag(target, overwrite=True) as path:
        assert path.name == 'bag' and path.parent.parent == tmp_path     # a hidden sibling
        assert path.parent.name.startswith(f'.bag.partial-{os.getpid()}-')
        _write(path, 3)
        assert (target / 'stale.txt').exists()          # the old bag stays until the end
    with BagReader(target) as reader:               # files named as if written in place
        assert reader.topics['/camera/image'][1] == 3
    assert not (target / 'stale.txt').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def test_an_error_leaves_the_old_bag_as_it_was(tmp_path) -> None:
    target = tmp_path / 'bag'
    _write(target, 2)
    before = _files(target)
    with pytest.raises(RuntimeError, match='disk full'):
        with staged_bag(target, overwrite=True) as path:
            _write(path, 5)
            raise RuntimeError('disk full')
    assert _files(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


@pytest.mark.parametrize('interrupt_keeps', [True, False])
def test_ctrl_c_keeps_the_frames_written_only_when_asked(tmp_path, interrupt_keeps) -> None:
    target = tmp_path / 'bag'
    with pytest.raises(KeyboardInterrupt):
        with staged_bag(target, interrupt_keeps=interrupt_keeps) as path:
            _write(path, 2)
            raise KeyboardInterrupt
    assert target.exists() is interrupt_keeps
    assert sorted(p.name for p in tmp_path.iterdir()) == (['bag'] if interrupt_keeps else [])


def test_refuses_what_it_must_not_replace(tmp_path) -> None:
    target = tmp_path / 'bag'
    _write(target, 1)
    with pytest.raises(BagError, match=f'{target} exists; remove it or pass --overwrite'):
        with staged_bag(target):
            pass
    notes = tmp_path / 'notes'
    notes.mkdir()
    (notes / 'keep.txt').write_text('mine')
    with pytest.raises(BagError, match='non-empty folder that is not a rosbag2'):
        with staged_bag(notes, overwrite=True):
            pass
    assert _files(notes) == {'keep.txt': b'mine'}
    empty = tmp_path / 'empty'
    empty.mkdir()
    with staged_bag(empty, overwrite=True) as path:      # an empty folder is no loss
        _write(path, 1)
    assert (empty / 'metadata.yaml').exists()


def test_leftovers_of_killed_runs_go_live_ones_stay(tmp_path) -> None:
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f'.bag.partial-{int(gone.stdout)}-abc'
    live = tmp_path / f'.bag.partial-{os.getppid()}-def'        # pytest's parent: running
    other = tmp_path / f'.other.partial-{int(gone.stdout)}-ghi'  # another target's
    for folder in (dead, live, other):
        (folder / 'bag').mkdir(parents=True)
    with staged_bag(tmp_path / 'bag') as path:
        _write(path, 1)
    assert not dead.exists() and live.exists() and other.exists()
