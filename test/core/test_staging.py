"""Staged results folders: moved in whole on success, the old folder untouched on failure."""

import os
from pathlib import Path
import re
import subprocess
import sys

import pytest

from densehybrid_ros.core.staging import pid_alive, remove_leftovers, staged_folder


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob('*'))
            if p.is_file()}


@pytest.fixture
def earlier(tmp_path) -> Path:
    """An earlier run's results, plus a file the tool did not write."""
    out = tmp_path / 'out'
    (out / 'frames').mkdir(parents=True)
    (out / 'metrics.json').write_text('old')
    (out / 'frames' / '000009_overlay.png').write_text('old picture')
    (out / 'notes.txt').write_text('mine')
    return out


def test_success_replaces_what_the_run_wrote_and_keeps_the_rest(earlier) -> None:
    with staged_folder(earlier) as staging:
        assert staging.parent == earlier.parent and staging != earlier
        (staging / 'frames').mkdir()
        (staging / 'frames' / '000000_overlay.png').write_text('new picture')
        (staging / 'metrics.json').write_text('new')
        assert (earlier / 'metrics.json').read_text() == 'old'       # nothing moved yet
    assert _tree(earlier) == {'frames/000000_overlay.png': 'new picture',
                              'metrics.json': 'new', 'notes.txt': 'mine'}
    assert sorted(p.name for p in earlier.parent.iterdir()) == ['out']


def test_failure_leaves_the_earlier_results_exactly_as_they_were(earlier) -> None:
    before = _tree(earlier)
    with pytest.raises(RuntimeError, match='model broke'):
        with staged_folder(earlier) as staging:
            (staging / 'metrics.json').write_text('half')
            raise RuntimeError('model broke')
    assert _tree(earlier) == before
    assert sorted(p.name for p in earlier.parent.iterdir()) == ['out']


def test_a_new_folder_is_created_on_success_only(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(tmp_path / 'a' / 'new'):
            raise KeyboardInterrupt
    assert not (tmp_path / 'a' / 'new').exists()
    with staged_folder(tmp_path / 'a' / 'new') as staging:
        (staging / 'x').write_text('1')
    assert _tree(tmp_path / 'a' / 'new') == {'x': '1'}


def test_parent_folders_made_for_a_failed_run_are_removed_again(tmp_path) -> None:
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / 'x' / 'y' / 'out'):
            raise RuntimeError('failed')
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_leftovers_of_killed_runs_are_removed_at_the_next_run(earlier) -> None:
    """Issue 23 failure 9: a killed run's ``.out.partial-*`` folder stayed forever."""
    parent = earlier.parent
    dead = parent / f'.out.partial-{dead_pid()}-abcd1234'
    (dead / 'frames').mkdir(parents=True)
    alive = parent / f'.out.partial-{os.getppid()}-efgh5678'    # a running process's
    alive.mkdir()
    other = parent / f'.other.partial-{dead_pid()}-x'          # another target's
    other.mkdir()
    assert not pid_alive(int(dead.name.split('-')[1])) and pid_alive(os.getpid())
    with staged_folder(earlier) as staging:
        assert not dead.exists() and alive.is_dir()
        assert staging.name.startswith(f'.out.partial-{os.getpid()}-')
    assert sorted(p.name for p in parent.iterdir()) == sorted(['out', alive.name, other.name])


def test_remove_leftovers_keeps_what_it_cannot_tell(tmp_path) -> None:
    (tmp_path / '.key.notapid').mkdir()
    (tmp_path / f'.key.{dead_pid()}').write_text('half')
    (tmp_path / '.key.99999999999999999999').mkdir()         # no process can have this id
    removed = remove_leftovers(tmp_path, re.compile(r'^\.(?P<key>.+)\.(?P<pid>\d+)$'))
    assert len(removed) == 2 and [p.name for p in tmp_path.iterdir()] == ['.key.notapid']
    assert not pid_alive(0) and not pid_alive(-1)
