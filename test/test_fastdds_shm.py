"""remove_stale_segments: a segment goes only when no process holds its lock file."""

import subprocess
import sys

from fastdds_shm import remove_stale_segments

HOLD = ('import fcntl, os, sys\n'
        'fd = os.open(sys.argv[1], os.O_RDONLY)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n'
        'print("held", flush=True)\n'
        'sys.stdin.readline()\n')


def test_only_segments_without_a_live_owner_are_removed(tmp_path):
    live, dead = 'fastrtps_' + '0123456789abcdef', 'fastrtps_' + 'fedcba9876543210'
    for name in (live, dead, 'fastrtps_port7411', 'fastrtps_00000000000000aa'):
        (tmp_path / name).write_bytes(b'\0' * 64)
    for name in (live, dead):
        (tmp_path / f'{name}_el').touch()
    owner = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path / f'{live}_el')],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == 'held'
        assert remove_stale_segments(tmp_path) == [dead]
    finally:
        owner.communicate('\n', timeout=30)
    # the owner is gone: now its segment goes too; a port file and a segment without a lock
    # file (not Fast DDS's shape) stay
    assert remove_stale_segments(tmp_path) == [live]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ['fastrtps_00000000000000aa', 'fastrtps_port7411']


def test_a_missing_folder_removes_nothing(tmp_path):
    assert remove_stale_segments(tmp_path / 'absent') == []
