"""Lifecycle from another process, compressed input, a bad checkpoint, and SIGTERM.

The node is started the way users start it (the console script when installed, else
``python -m``) with the shipped YAML as ``--params-file`` and without ``--autostart``.
"""

import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('cv_bridge')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, REPO, START_TIMEOUT_S, stamp_ns  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.ros.conversions import rgb_to_compressed  # noqa: E402

NODE = '/lc/densehybrid'                  # started in namespace /lc
CAMERA = '/cam_c/image'                   # absolute: subscribes to /cam_c/image/compressed
OVERLAY = '/cam_c/densehybrid/overlay'
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def lc(module_probe, tmp_path_factory):
    """The node process (unconfigured, with a checkpoint path that does not exist)."""
    log = tmp_path_factory.mktemp('lifecycle') / 'node.log'
    node = NodeProcess(['--ros-args', '--params-file', str(REPO / 'config' / 'densehybrid.yaml'),
                        '-r', '__ns:=/lc', '-p', 'checkpoint:=/nonexistent/model.pt',
                        '-p', 'device:=cpu', '-p', 'backend:=torch', '-p', 'inference_width:=64',
                        '-p', 'input_transport:=compressed', '-p', f'input_topics:=[{CAMERA}]'],
                       log)
    try:
        yield node
    finally:
        node.stop(signal.SIGTERM)


def state(probe) -> int:
    """Current lifecycle state id of the node."""
    return probe.call(GetState, f'{NODE}/get_state', GetState.Request(),
                      timeout=START_TIMEOUT_S).current_state.id


def change(probe, transition: int) -> bool:
    """Request a transition; True when it succeeded."""
    request = ChangeState.Request(transition=Transition(id=transition))
    return probe.call(ChangeState, f'{NODE}/change_state', request, timeout=120).success


def test_bad_checkpoint_fails_configure_with_one_line_and_stays_inspectable(probe, lc):
    seen = len(lc.output().splitlines())      # the node is the module's: a rerun sees more log
    assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
    assert change(probe, Transition.TRANSITION_CONFIGURE) is False
    assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
    lines = [line for line in lc.output().splitlines()[seen:] if 'configure failed' in line]
    assert len(lines) == 1 and '/nonexistent/model.pt' in lines[0], lc.output()
    assert 'Traceback' not in lc.output()
    assert probe.get_parameters(NODE, 'checkpoint') == ['/nonexistent/model.pt']
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', keep=10)
    # the session's /diagnostics collector may hold this node's statuses from before the
    # configure (an earlier test subscribed first): wait for an ERROR one
    status = probe.wait_for(lambda: next(
        (s for m in reversed(list(diagnostics.recent)) for s in m.status
         if s.name == f'{NODE}: model' and s.level == DiagnosticStatus.ERROR), None),
        10, 'the model status to report the failed configure')
    assert 'configure failed' in status.message


def test_configure_activate_compressed_input_deactivate_cleanup(probe, lc, tiny_checkpoint):
    (result,) = probe.set_parameters(NODE, checkpoint=str(tiny_checkpoint))
    assert result.successful, result.reason
    assert change(probe, Transition.TRANSITION_CONFIGURE) is True
    assert state(probe) == State.PRIMARY_STATE_INACTIVE
    (result,) = probe.set_parameters(NODE, device='cuda')      # read at configure: refused
    assert not result.successful and 'clean up' in result.reason

    assert change(probe, Transition.TRANSITION_ACTIVATE) is True
    assert state(probe) == State.PRIMARY_STATE_ACTIVE
    overlay = probe.subscribe(Image, OVERLAY, RELIABLE)
    pub = probe.node.create_publisher(CompressedImage, CAMERA + '/compressed',
                                      qos_profile_sensor_data)
    rgb = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    jpeg = rgb_to_compressed(rgb, 'jpeg')
    garbage = CompressedImage(format='jpeg')
    garbage.data = b'\xff\xd8\xff\xe0' + bytes(100)

    def send_until_output(timeout: float) -> Image:
        # A bad frame is decoded (and counted) only if no good one overwrites it first.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(garbage)
            time.sleep(0.3)
            header = Header(frame_id='cam_c')
            header.stamp = probe.node.get_clock().now().to_msg()
            jpeg.header = header
            pub.publish(jpeg)
            msg = probe.wait(lambda: next((m for m in overlay.recent
                                           if stamp_ns(m.header) == stamp_ns(header)), None),
                             0.5)
            if msg and 'undecodable' in lc.output():
                return msg
        pytest.fail('no overlay, or no undecodable warning, for the compressed input\n'
                    + lc.output()[-2000:])

    msg = send_until_output(60)
    assert (msg.encoding, msg.width, msg.height) == ('rgb8', 1280, 720)
    # Only the subscribed output is computed: the camera status says which ones those are.
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', keep=10)
    name = f'{NODE}: camera {CAMERA}/compressed'

    def counted():
        for m in reversed(list(diagnostics.recent)):         # newest first
            for status in m.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name == name and 'bad_messages.undecodable' in values:
                    return values
        return None
    values = probe.wait_for(counted, 10, 'the undecodable message in the camera status')
    assert values['outputs_subscribed'] == 'overlay'
    assert int(values['bad_messages.undecodable']) >= 1

    assert change(probe, Transition.TRANSITION_DEACTIVATE) is True
    assert state(probe) == State.PRIMARY_STATE_INACTIVE
    assert probe.node.count_publishers(OVERLAY) == 1     # lifecycle publisher: deactivated
    count = len(overlay.arrivals)
    for _ in range(5):
        pub.publish(jpeg)
        time.sleep(0.1)
    time.sleep(1.0)
    assert len(overlay.arrivals) == count                     # inactive: nothing processed

    assert change(probe, Transition.TRANSITION_CLEANUP) is True
    assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
    probe.wait_for(lambda: probe.node.count_publishers(OVERLAY) == 0, 20,
                   'the outputs to be unadvertised at cleanup')
    (result,) = probe.set_parameters(NODE, device='cpu')      # unconfigured: accepted again
    assert result.successful


def test_sigterm_exits_cleanly(lc):
    assert lc.proc.poll() is None
    assert lc.stop(signal.SIGTERM) == 0
    assert 'Traceback' not in lc.output()
