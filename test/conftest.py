"""Shared fixtures: paths, the authors' interop facts, and tiny real checkpoints."""

import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from fastdds_shm import remove_stale_segments

REPO = Path(__file__).resolve().parent.parent
OFFICIAL = REPO.parent / 'shared' / 'official'


@pytest.fixture(scope='session')
def official_dir() -> Path:
    """../shared/official (the authors' key manifests and golden outputs)."""
    if not OFFICIAL.is_dir():
        if os.environ.get('CI'):
            pytest.fail(f'{OFFICIAL} is missing in CI')
        pytest.skip(f'{OFFICIAL} not present in this checkout')
    return OFFICIAL


# Prepended to a script run by ``run_without_ros``: every ROS Python package is unimportable.
_BLOCK_ROS = textwrap.dedent('''
    import sys
    BLOCKED = ('rclpy', 'cv_bridge', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs',
               'builtin_interfaces', 'lifecycle_msgs', 'rosidl_runtime_py')

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ImportError('blocked for this test: ' + name)
            return None

    sys.meta_path.insert(0, _Block())
''')
_CHECK_NO_ROS = textwrap.dedent('''
    assert not any(m.split('.')[0] in BLOCKED for m in sys.modules)
    print('ok')
''')


@pytest.fixture(scope='session')
def run_without_ros():
    """Run a Python script in a fresh interpreter with every ROS package made unimportable."""
    def run(body: str, timeout: float = 300) -> None:
        script = _BLOCK_ROS + textwrap.dedent(body) + _CHECK_NO_ROS
        proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                              timeout=timeout, cwd=str(REPO))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().endswith('ok')
    return run


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real, randomly initialised half-width ladder checkpoint with a calibration block."""
    import torch

    from densehybrid_ros.models.checkpoint import save_checkpoint
    from densehybrid_ros.models import build_model

    torch.manual_seed(0)
    model = build_model('ladder_resnet18_half', 19)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    save_checkpoint(path, model, {
        'calibration': {'threshold': -2.0, 'score_p01': -6.0, 'score_p99': 1.0,
                        'measured_on': 'test fixture'},
        'train': {'command': 'test fixture'},
    })
    return path


# Tests that run real nodes over Fast DDS in separate processes. On a loaded 2-core machine
# best-effort 720p frames can be lost in bursts for tens of seconds (see the README's Fast DDS
# notes), and now and then two processes do not discover each other for a minute (seen once in
# 16 runs of the ROS files that had no reruns: test_vision_msgs' publisher matched no subscriber
# in 60 s, the probe's Fast DDS threads all idle), so these get up to two reruns after a pause;
# any other test fails at once.
LIVE_MIDDLEWARE_TESTS = ('test/ros/test_node_live.py', 'test/ros/test_lifecycle_live.py',
                         'test/tools/rostools/test_replay.py', 'test/tools/rostools/test_demo.py',
                         'test/tools/speed/test_bench.py', 'test/ros/test_delivery_live.py',
                         'test/ros/test_transport_live.py', 'test/ros/test_node_backend_live.py',
                         'test/ros/test_obstacles_live.py', 'test/ros/test_camera_info_live.py',
                         'test/ros/test_signals_live.py', 'test/ros/test_domain_live.py',
                         'test/ros/test_hostile_frames_live.py', 'test/ros/test_ctl.py',
                         'test/ros/test_start_params.py', 'test/ros/test_vision_msgs.py')


def pytest_sessionstart(session):
    """Remove Fast DDS segments that earlier processes left (see fastdds_shm)."""
    _remove_stale_segments(session, 'before the tests')


def pytest_sessionfinish(session, exitstatus):
    """Remove the Fast DDS segments this run's killed processes left (see fastdds_shm)."""
    _remove_stale_segments(session, 'after the tests')


def _remove_stale_segments(session, when: str) -> None:
    if hasattr(session.config, 'workerinput'):      # an xdist worker: the controller does it
        return
    removed = remove_stale_segments()
    reporter = session.config.pluginmanager.get_plugin('terminalreporter')
    if removed and reporter is not None:
        reporter.write_line(f'removed {len(removed)} stale Fast DDS segments from /dev/shm '
                            f'{when}')


def pytest_collection_modifyitems(config, items):
    """Mark the live-middleware tests flaky (two reruns, 10 s apart)."""
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        if path in LIVE_MIDDLEWARE_TESTS:
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=10))


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (a disk that fills up); skipped where mounting is not permitted."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    try:
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)],
                       check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f'cannot mount a small tmpfs (needs root or CAP_SYS_ADMIN): '
                    f'{getattr(exc, "stderr", None) or exc}')
    try:
        yield disk
    finally:    # lazy: a writer that failed may still hold its file open in this process
        subprocess.run(['umount', '--lazy', str(disk)], check=True, timeout=30)
