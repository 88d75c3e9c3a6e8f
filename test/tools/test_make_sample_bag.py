"""densehybrid-make-bag: topics, headers, contents and storage plugins of the sample bag."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from densehybrid_ros.bags import BagReader, COMPRESSED_TYPE, IMAGE_TYPE
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.tools.make_sample_bag import main, START_S

SIZE = (24, 40)
REPO = Path(__file__).resolve().parents[2]


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


def test_defaults_agree_with_the_demo() -> None:
    from densehybrid_ros.tools import demo, make_sample_bag
    size = make_sample_bag.build_parser().parse_args([]).size
    assert tuple(size) == tuple(demo.build_parser().parse_args([]).size) == (512, 1024)


def test_ctrl_c_stops_cleanly_with_a_readable_bag(tmp_path) -> None:
    """Issue 15: Ctrl-C printed a KeyboardInterrupt traceback."""
    bag = tmp_path / 'bag'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.tools.make_sample_bag', '--output', str(bag),
         '--frames', '500', '--size', '64', '128', '--quiet'],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(bag.glob('*.mcap')) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)                                   # a few frames in
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert 'Traceback' not in err and 'interrupted' in err and 'scenes' not in err   # --quiet
    with BagReader(bag) as reader:
        assert 0 < reader.topics['/camera/image'][1] < 500
