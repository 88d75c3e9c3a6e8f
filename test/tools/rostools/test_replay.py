"""densehybrid-replay: timing plan, and a real rclpy round trip with a stand-in node."""

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

from densehybrid_ros.data.bags import BagReader
from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.rostools.make_bag import write_sample_bag
from densehybrid_ros.tools.rostools.replay import main, schedule
from densehybrid_ros.core.transport import child_env, LARGE_DATA, TRANSPORT_ENV

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize('log_times, rate, fast, expect', [
    ([0, 100_000_000, 300_000_000], 1.0, False, [0.0, 0.1, 0.3]),
    ([0, 100_000_000, 300_000_000], 2.0, False, [0.0, 0.05, 0.15]),
    ([5, 10, 20], 1.0, True, [0.0, 0.0, 0.0]),
    ([], 1.0, False, []),
])
def test_schedule_follows_recorded_time(log_times, rate, fast, expect) -> None:
    assert schedule(log_times, rate, fast) == pytest.approx(expect)


@pytest.mark.parametrize('argv, at_least', [
    ([], 0.4),                       # 5 frames at 10 Hz: the last one is due at 0.4 s
    (['--rate', '4'], 0.1),
    (['--fast'], 0.0),
])
def test_playback_keeps_the_recorded_timing(tmp_path, argv, at_least) -> None:
    write_sample_bag(str(tmp_path / 'bag'), 5, (8, 8), rate=10.0)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(100 + os.getpid() % 30)}
    result = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
         '--wait-subscribers', '0', '--json', str(tmp_path / 'stats.json'), *argv], env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'replay: 100%' in result.stderr                    # tqdm progress bar
    assert json.loads((tmp_path / 'stats.json').read_text())['published'] == 5
    seconds = float(result.stdout.split(' in ')[1].split(' s')[0])
    assert result.stdout.startswith('published 5 messages') and seconds >= at_least
    if not argv or argv == ['--rate', '4']:
        assert seconds < at_least + 2.0


def test_ctrl_c_in_a_loop_exits_0_and_nobody_subscribing_is_warned(tmp_path) -> None:
    write_sample_bag(str(tmp_path / 'bag'), 3, (8, 8), rate=10.0)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(160 + os.getpid() % 30)}
    proc = subprocess.Popen([sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay',
                             str(tmp_path / 'bag'), '--loop', '--quiet', '--wait-subscribers',
                             '1'], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(6.0)                       # rclpy import + 1 s without subscribers + playing
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err           # launch would call 130 'process has died'
    assert '(interrupted)' in out and 'Traceback' not in err
    assert 'warning: nothing subscribes to /camera/image' in err


def test_a_participant_that_finds_no_subscriber_is_replaced_until_the_wait_is_over(tmp_path):
    # Nobody subscribes: after each 10 s without one (ros.discovery) a new participant looks
    # again, two in 12 s; then the replay warns and plays, as with one participant. Domains
    # 10-19: no other test's (sessions 20-199), so no probe of the other worker subscribes.
    write_sample_bag(str(tmp_path / 'bag'), 2, (8, 8), rate=10.0)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(10 + os.getpid() % 10)}
    done = subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay',
                           str(tmp_path / 'bag'), '--quiet', '--wait-subscribers', '12',
                           '--json', str(tmp_path / 'stats.json')],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('published 2 messages')
    assert 'warning: nothing subscribes to /camera/image (waited 12 s)' in done.stderr
    assert json.loads((tmp_path / 'stats.json').read_text())['participants'] == 2
    assert done.stderr.count('trying again on a new participant') == 1


def test_help_shows_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(['--help'])
    assert 'examples:' in capsys.readouterr().out


def test_a_node_that_never_answers_stops_the_replay(tmp_path, capsys, monkeypatch) -> None:
    """Issue 23 failure 9: exit 2 where the README says 1 (frames waited for never came)."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(130 + os.getpid() % 30))
    write_sample_bag(str(tmp_path / 'bag'), 3, (8, 8))
    assert main([str(tmp_path / 'bag'), '--wait-for', '/nobody/densehybrid/anomaly_score',
                 '--wait-timeout', '1', '--wait-subscribers', '0', '--quiet',
                 '--record', str(tmp_path / 'rec')]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if 'error:' in line]
    assert len(err) == 1 and 'the first frame got no result' in err[0]
    assert 'is the node running and active' in err[0]
    with BagReader(tmp_path / 'rec') as reader:             # a finished, readable bag
        assert '/nobody/densehybrid/anomaly_score' not in reader.topics


def test_missing_topic_is_a_clear_error(tmp_path, capsys) -> None:
    write_sample_bag(str(tmp_path / 'bag'), 1, (16, 16))
    assert main([str(tmp_path / 'bag'), '--topics', '/nope', '--wait-subscribers', '0']) == 2
    assert "replay topic '/nope' is not in" in capsys.readouterr().err


STAND_IN = '''
import sys, numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('stand_in')
reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
pub = node.create_publisher(Image, '/camera/densehybrid/anomaly_score', reliable)
count = [0]
def on_image(msg):
    out = Image(header=msg.header, height=msg.height, width=msg.width, encoding='32FC1',
                step=msg.width * 4)
    out.data = np.full(msg.height * msg.width, count[0], np.float32).tobytes()
    pub.publish(out)
    count[0] += 1
node.create_subscription(Image, '/camera/image', on_image, qos_profile_sensor_data)
print('ready', flush=True)
while rclpy.ok() and count[0] < int(sys.argv[1]):
    rclpy.spin_once(node, timeout_sec=0.1)
rclpy.spin_once(node, timeout_sec=1.0)
'''


@pytest.mark.timeout(120)
def test_lock_step_replay_records_every_result_with_the_labels(tmp_path) -> None:
    frames = 3
    write_sample_bag(str(tmp_path / 'bag'), frames, (16, 24), rate=50.0)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(60 + os.getpid() % 40),
           TRANSPORT_ENV: LARGE_DATA}     # as the project starts its nodes
    node = subprocess.Popen([sys.executable, '-c', STAND_IN, str(frames)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout.readline().strip() == 'ready'
        result = subprocess.run(
            [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
             '--wait-for', '/camera/densehybrid/anomaly_score', '--wait-timeout', '20',
             '--record', str(tmp_path / 'rec'), '--drain', '0.5', '--quiet'],
            env=env, capture_output=True, text=True, timeout=100)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f'published {frames} messages in'), result.stdout
        assert 'no result' not in result.stdout
        node.wait(timeout=20)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    with BagReader(tmp_path / 'rec') as reader:
        topics = reader.topics
        assert topics['/camera/densehybrid/anomaly_score'][1] == frames
        assert topics['/camera/anomaly_label'][1] == frames
        joined = list(reader.frames({'score': '/camera/densehybrid/anomaly_score',
                                     'anomaly': '/camera/anomaly_label'}, key='score',
                                    partial=False))
    assert [float(f.arrays['score'][0, 0]) for f in joined] == [0.0, 1.0, 2.0]


@pytest.mark.timeout(120)
def test_frames_that_never_get_a_result_fail_the_replay(tmp_path) -> None:
    write_sample_bag(str(tmp_path / 'bag'), 3, (16, 24), rate=50.0)
    env = child_env(60 + os.getpid() % 40)         # the package's transports in both processes
    node = subprocess.Popen([sys.executable, '-c', STAND_IN, '1'], env=env,   # answers once
                            stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout.readline().strip() == 'ready'
        result = subprocess.run(
            [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
             '--wait-for', '/camera/densehybrid/anomaly_score', '--wait-timeout', '8',
             '--quiet'], env=env, capture_output=True, text=True, timeout=100)
    finally:
        node.kill()
        node.wait()
    assert result.returncode == 1, result.stderr              # was 0: the demo went on
    assert re.search(r'error: [12] of 3 frames got no result', result.stderr), result.stderr


@pytest.mark.timeout(180)
def test_live_node_results_agree_with_offline_eval(tmp_path, tiny_checkpoint) -> None:
    """Sample bag -> live node (lock-step replay, recorded) -> eval == eval of the bag."""
    write_sample_bag(str(tmp_path / 'bag'), 3, (32, 64), rate=10.0, seed=4242)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(20 + os.getpid() % 40),
           TRANSPORT_ENV: LARGE_DATA}
    node = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.ros.main', '--autostart', '--ros-args',
         '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu', '-p', 'backend:=torch',
         '-p', 'input_topics:=[/camera/image]'], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        replay = subprocess.run(
            [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
             '--wait-for', '/camera/densehybrid/anomaly_score', '--wait-timeout', '60',
             '--wait-subscribers', '60', '--record', str(tmp_path / 'rec'), '--drain', '1',
             '--quiet'], env=env, capture_output=True, text=True, timeout=150)
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout.startswith('published 3 messages in'), replay.stdout
        assert 'no result' not in replay.stdout
    finally:
        node.terminate()
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    figures = {}
    for name, argv in (('live', [str(tmp_path / 'rec')]),
                       ('offline', [str(tmp_path / 'bag'), '--device', 'cpu',
                                    '--backend', 'torch'])):
        assert eval_bag.main([*argv, '--checkpoint', str(tiny_checkpoint), '--quiet',
                              '--output', str(tmp_path / name)]) == 0
        figures[name] = json.loads((tmp_path / name / 'metrics.json').read_text())
    assert figures['live']['source'] == 'recorded bag'
    figures['offline']['anomaly'].pop('at_threshold')        # only known with the model
    for key in ('frames', 'anomaly', 'open_set', 'score_stats', 'unknown_mask_counts'):
        assert figures['live'][key] == figures['offline'][key], key


def test_large_data_transport_is_the_default(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.delenv('FASTDDS_BUILTIN_TRANSPORTS', raising=False)
    assert main([str(tmp_path / 'missing')]) == 2
    assert 'bag not found' in capsys.readouterr().err
    assert os.environ['FASTDDS_BUILTIN_TRANSPORTS'] == LARGE_DATA
    assert LARGE_DATA.startswith('LARGE_DATA?')
    monkeypatch.setenv('FASTDDS_BUILTIN_TRANSPORTS', 'UDPv4')
    assert main([str(tmp_path / 'missing')]) == 2
    assert os.environ['FASTDDS_BUILTIN_TRANSPORTS'] == 'UDPv4'


def test_label_topics_are_never_played_to_the_node_as_cameras(tmp_path) -> None:
    """A bag's ``.../gt`` and ``.../anomaly_gt`` maps are labels: only the camera is played."""
    from densehybrid_ros.data.bag_writer import BagWriter
    with BagWriter(tmp_path / 'bag') as bag:
        for i in range(3):
            stamp = (i + 1) * 100_000_000
            bag.write_image('/camera/image', np.zeros((4, 6, 3), np.uint8), 'rgb8', stamp)
            for name in ('gt', 'anomaly_gt'):
                bag.write_image(f'/camera/{name}', np.zeros((4, 6), np.uint8), 'mono8', stamp)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(140 + os.getpid() % 30)}
    result = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
         '--fast', '--quiet', '--wait-subscribers', '0', '--json', str(tmp_path / 'stats.json')],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / 'stats.json').read_text())['published'] == 3


@pytest.mark.timeout(180)
def test_two_cameras_in_one_namespace_record_the_topics_the_node_publishes(
        tmp_path, tiny_checkpoint) -> None:
    """/camera/left + /camera/right -> the node's /camera/densehybrid/{left,right}/<output>."""
    from densehybrid_ros.data.bag_writer import BagWriter
    from densehybrid_ros.core.outputs import OUTPUTS, output_topics

    cameras, frames = ['/camera/left', '/camera/right'], 8
    with BagWriter(tmp_path / 'bag') as bag:
        for i in range(frames):                                  # 4 Hz, both cameras
            for camera in cameras:
                bag.write_image(camera, np.full((32, 64, 3), 30 * i, np.uint8), 'rgb8',
                                10 ** 9 + i * 250_000_000, camera.strip('/'))
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'ROS_DOMAIN_ID': str(160 + os.getpid() % 40),
           TRANSPORT_ENV: LARGE_DATA}
    node = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.ros.main', '--autostart', '--ros-args',
         '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu', '-p', 'backend:=torch',
         '-p', f'input_topics:=[{",".join(cameras)}]'], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        replay = subprocess.run(
            [sys.executable, '-m', 'densehybrid_ros.tools.rostools.replay', str(tmp_path / 'bag'),
             '--reliable', '--wait-subscribers', '90', '--record', str(tmp_path / 'rec'),
             '--drain', '3', '--quiet'], env=env, capture_output=True, text=True, timeout=150)
        assert replay.returncode == 0, replay.stderr
    finally:
        node.terminate()
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    expected = {camera: {name: f'/camera/densehybrid/{camera.rsplit("/", 1)[1]}/{name}'
                         for name in OUTPUTS} for camera in cameras}
    assert output_topics(cameras) == expected
    with BagReader(tmp_path / 'rec') as reader:
        recorded = {topic: count for topic, (_, count) in reader.topics.items()}
    # Every topic replay subscribed to got messages from the node, and nothing else is there.
    assert set(recorded) == {t for per in expected.values() for t in per.values()}, recorded
    assert all(count >= 1 for count in recorded.values()), recorded
