"""Staged results folders: moved in whole on success, the old folder untouched on failure."""

from pathlib import Path

import pytest

from densehybrid_ros.staging import staged_folder


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
