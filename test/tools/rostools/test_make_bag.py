"""densehybrid-make-bag: topics, headers, contents and storage plugins of the sample bag."""

import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from densehybrid_ros.core.camera import CameraModel
from densehybrid_ros.data.bags import (BagReader, CAMERA_INFO_TYPE, COMPRESSED_TYPE, IMAGE_TYPE,
                                       STRING_TYPE)
from densehybrid_ros.data.synthetic import make_scene, Sequence
from densehybrid_ros.tools.rostools.make_bag import main, START_S

SIZE = (24, 40)
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize('storage, image_format, image_type', [
    ('mcap', 'raw', IMAGE_TYPE),
    ('sqlite3', 'raw', IMAGE_TYPE),
    ('mcap', 'png', COMPRESSED_TYPE),
    ('sqlite3', 'jpeg', COMPRESSED_TYPE),
])
def test_bag_holds_consistent_frames(tmp_path, storage, image_format, image_type) -> None:
    bag = tmp_path / 'bag'
    assert main(['--output', str(bag), '--storage', storage, '--image-format', image_format,
                 '--frames', '3', '--size', *map(str, SIZE), '--rate', '4', '--seed', '77',
                 '--json', str(tmp_path / 'summary.json')]) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['frames'] == 3 and summary['storage'] == storage
    roles = {'image': '/camera/image' + ('' if image_format == 'raw' else '/compressed'),
             'label': '/camera/semantic_label', 'anomaly': '/camera/anomaly_label'}
    with BagReader(bag) as reader:
        assert reader.topics == {roles['image']: (image_type, 3),
                                 roles['label']: (IMAGE_TYPE, 3),
                                 roles['anomaly']: (IMAGE_TYPE, 3)}
        frames = list(reader.frames(roles, partial=False))
    assert [f.stamp for f in frames] == [START_S * 10 ** 9 + i * 250_000_000 for i in range(3)]
    for i, frame in enumerate(frames):
        scene = make_scene(77 + i, SIZE, anomaly_family='eval')
        assert frame.frame_id == 'camera'
        assert np.array_equal(frame.arrays['label'], scene['label'])
        assert np.array_equal(frame.arrays['anomaly'], scene['anomaly'])
        if image_format == 'jpeg':
            assert np.abs(frame.arrays['image'].astype(int) - scene['image']).mean() < 12
        else:
            assert np.array_equal(frame.arrays['image'], scene['image'])


def test_scenes_have_anomalies_and_the_bag_refuses_to_overwrite(tmp_path, capsys) -> None:
    bag = tmp_path / 'bag'
    assert main(['--output', str(bag), '--frames', '2', '--size', '64', '96']) == 0
    with BagReader(bag) as reader:
        frames = list(reader.frames({'image': '/camera/image',
                                     'anomaly': '/camera/anomaly_label'}))
    assert all((f.arrays['anomaly'] == 1).any() for f in frames)
    assert main(['--output', str(bag), '--frames', '2']) == 2
    assert 'exists' in capsys.readouterr().err
    assert main(['--output', str(bag), '--frames', '1', '--size', '16', '16',
                 '--overwrite']) == 0
    with BagReader(bag) as reader:
        assert reader.topics['/camera/image'][1] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']      # no staging left


def test_a_failed_run_leaves_the_old_bag_untouched(tmp_path, capsys) -> None:
    """The bag is staged next to --output and moved in only when complete."""
    bag = tmp_path / 'bag'
    assert main(['--output', str(bag), '--frames', '2', '--size', '16', '24']) == 0
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    # The scene painter refuses 4 x 4 while the first frame is written to the staging bag.
    assert main(['--output', str(bag), '--frames', '2', '--size', '4', '4',
                 '--overwrite']) == 2
    assert 'at least 8 x 8' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'keep.txt').write_text('mine')
    assert main(['--output', str(tmp_path / 'notes'), '--overwrite']) == 2
    assert 'not a rosbag2' in capsys.readouterr().err
    assert (tmp_path / 'notes' / 'keep.txt').read_text() == 'mine'


SEQ_SIZE = (48, 80)


@pytest.mark.parametrize('storage, image_format', [('mcap', 'raw'), ('sqlite3', 'png')])
def test_a_sequence_bag_holds_its_ground_truth(tmp_path, storage, image_format) -> None:
    bag = tmp_path / 'seq'
    assert main(['--sequence', '--output', str(bag), '--storage', storage, '--image-format',
                 image_format, '--frames', '4', '--size', *map(str, SEQ_SIZE), '--seed', '21',
                 '--family', 'voronoi', '--speed', '1.5', '--yaw-rate', '0.002', '--fps', '5',
                 '--hood', '--json', str(tmp_path / 'summary.json'), '--quiet']) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert (summary['frames'], summary['family'], summary['rate']) == (4, 'voronoi', 5.0)
    image = '/camera/image' + ('' if image_format == 'raw' else '/compressed')
    with BagReader(bag) as reader:
        assert reader.topics == {
            image: (IMAGE_TYPE if image_format == 'raw' else COMPRESSED_TYPE, 4),
            '/camera/semantic_label': (IMAGE_TYPE, 4), '/camera/anomaly_label': (IMAGE_TYPE, 4),
            '/camera/anomaly_instances': (IMAGE_TYPE, 4), '/camera/depth': (IMAGE_TYPE, 4),
            '/camera/camera_info': (CAMERA_INFO_TYPE, 4),
            '/camera/ground_truth': (STRING_TYPE, 4)}
        assert reader.camera_topics() == [image]                   # depth is no camera
        roles = {'image': image, 'label': '/camera/semantic_label',
                 'anomaly': '/camera/anomaly_label', **reader.sequence_roles('/camera')}
        assert len(roles) == 7
        frames = list(reader.frames(roles, partial=False))
    seq = Sequence(21, SEQ_SIZE, 4, 'voronoi', speed=1.5, yaw_rate=0.002, hood=True)
    assert [f.stamp for f in frames] == [START_S * 10 ** 9 + i * 200_000_000 for i in range(4)]
    for got, want in zip(frames, seq):
        assert got.frame_id == 'camera'
        if image_format == 'raw':
            np.testing.assert_array_equal(got.arrays['image'], want.image)
        for role, key in (('label', 'label'), ('anomaly', 'anomaly'),
                          ('instances', 'instances'), ('depth', 'depth')):
            assert got.arrays[role].dtype == getattr(want, key).dtype
            np.testing.assert_array_equal(got.arrays[role], getattr(want, key))  # NaN, inf too
        depth = got.arrays['depth']
        assert np.isinf(depth).any() and np.isnan(depth).any()       # sky and hood kept
        info = got.data['camera_info']
        assert info.header.frame_id == 'camera'
        assert (info.header.stamp.sec * 10 ** 9 + info.header.stamp.nanosec) == got.stamp
        np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), want.camera.matrix)
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4))[:, :3], want.camera.matrix)
        assert not np.any(np.reshape(info.p, (3, 4))[:, 3]) and not np.any(info.d)
        assert info.distortion_model == 'plumb_bob' and len(info.d) == 5
        model = CameraModel.from_info(info)
        assert (model.width, model.height, model.cx) == (80, 48, want.camera.cx)
        truth = got.data['truth']
        assert truth['frame'] == want.index
        assert truth['camera']['pose'] == {'x': want.pose.x, 'z': want.pose.z,
                                           'yaw': want.pose.yaw}
        assert truth['camera']['mount']['height'] == 1.0
        assert [o['id'] for o in truth['objects']] == [o.id for o in want.objects]
        for obj, state in zip(truth['objects'], want.objects):
            for name in ('x', 'z', 'range', 'lateral', 'width', 'height', 'on_road', 'pixels',
                         'footprint', 'visible'):
                assert obj[name] == getattr(state, name), name
            assert obj['pixels'] == np.count_nonzero(got.arrays['instances'] == obj['id'])
            assert obj['contact'] == (None if state.contact is None else list(state.contact))
            assert obj['base'] == [state.range, -state.lateral, 0.0]


def test_sequence_options_need_sequence(tmp_path, capsys) -> None:
    assert main(['--output', str(tmp_path / 'bag'), '--family', 'voronoi']) == 2
    assert '--family: only with --sequence' in capsys.readouterr().err
    assert main(['--output', str(tmp_path / 'bag'), '--sequence', '--family', 'nope',
                 '--size', '16', '16']) == 2
    assert 'unknown anomaly family' in capsys.readouterr().err
    assert not (tmp_path / 'bag').exists()


@pytest.mark.parametrize('argv, message', [
    (['--frames', '0'], '--frames must be >= 1'),
    (['--rate', '0'], '--rate must be > 0'),
    (['--size', '4', '4'], 'at least 8 x 8'),
])
def test_bad_options_give_clear_errors(tmp_path, capsys, argv, message) -> None:
    assert main(['--output', str(tmp_path / 'bag')] + argv) == 2
    assert message in capsys.readouterr().err


def test_help_shows_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(['--help'])
    assert 'example:' in capsys.readouterr().out


def test_family_help_names_every_anomaly_family() -> None:
    """Issue 24 (6): it pointed at data.synthetic.FAMILIES, a name in the code."""
    from densehybrid_ros.data.synthetic import FAMILIES
    from densehybrid_ros.tools.rostools.make_bag import build_parser
    text = ' '.join(build_parser().format_help().split())
    start = text.index('--family FAMILY', text.index('sequences (--sequence):'))
    family = text[start:text.index('--speed SPEED', start)]
    assert [name for name in FAMILIES if not re.search(rf'\b{name}\b', family)] == []
    assert 'data.synthetic' not in text


def test_defaults_agree_with_the_demo() -> None:
    from densehybrid_ros.tools.rostools import demo, make_bag
    size = make_bag.build_parser().parse_args([]).size
    assert tuple(size) == tuple(demo.build_parser().parse_args([]).size) == (512, 1024)


def test_ctrl_c_stops_cleanly_with_a_readable_bag(tmp_path) -> None:
    """Issue 15: Ctrl-C printed a KeyboardInterrupt traceback."""
    bag = tmp_path / 'bag'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.tools.rostools.make_bag', '--output', str(bag),
         '--frames', '500', '--size', '64', '128', '--quiet'],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Written in a hidden staging folder next to the output until it ends.
        while not any(tmp_path.glob('.bag.partial-*/bag/*.mcap')) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)                                   # a few frames in
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert 'Traceback' not in err and 'interrupted' in err and 'scenes' not in err   # --quiet
    with BagReader(bag) as reader:                  # moved in: a complete, shorter bag
        assert 0 < reader.topics['/camera/image'][1] < 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` with one file until ``leave`` bytes are free."""
    stat = os.statvfs(disk)
    (disk / 'filler').write_bytes(bytes(max(stat.f_bavail * stat.f_frsize - leave, 0)))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_full_disk_keeps_the_old_bag_and_says_so_in_one_line(small_disk, capsys,
                                                               storage) -> None:
    """Issue 23 (5): --overwrite on a full disk deleted the good bag, then two tracebacks."""
    bag = small_disk / 'bag'
    assert main(['--output', str(bag), '--frames', '1', '--size', '16', '24', '--quiet']) == 0
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    _fill(small_disk, 64 * 1024)
    capsys.readouterr()
    argv = ['--frames', '30', '--size', '32', '64', '--storage', storage, '--quiet']
    assert main(['--output', str(bag), '--overwrite', *argv]) == 2            # ~300 KB
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert f'cannot write {bag}: ' in err and ('No space left' in err or 'full' in err), err
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    assert main(['--output', str(small_disk / 'new'), *argv]) == 2
    assert f'cannot write {small_disk / "new"}: ' in capsys.readouterr().err
    assert sorted(p.name for p in small_disk.iterdir()) == ['bag', 'filler']   # no leftovers
