"""SIGINT twice while the node processes frames: a terminal's Ctrl-C plus launch's own copy.

Issue 24: 50 ms apart the node printed a KeyboardInterrupt traceback from ``worker.join`` and
died of SIGABRT ("terminate called without an active exception", exit -6); 300 ms apart the
second signal killed it (exit -2), and launch reported "process has died". Both must exit 0
with nothing on the log but the node's own lines. Two node processes run at once (one per
gap), each fed frames faster than it processes them so its inference thread is busy when the
signals come.
"""

from pathlib import Path
import signal
import subprocess
import threading
import time
from typing import Dict

import numpy as np
import pytest

pytest.importorskip('rclpy')
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import (main_thread, native_stacks, NodeProcess,  # noqa: E402
                         START_TIMEOUT_S)
from sensor_msgs.msg import Image  # noqa: E402

GAPS = (0.05, 0.3)              # seconds between the two SIGINTs
H, W = 360, 640
WIDTH = 320                     # inference width: 100-300 ms a frame here, fed at 10 Hz
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class BusyNodes:
    """One node process per gap (namespaces /sig0, /sig1); a used one is replaced on request."""

    def __init__(self, checkpoint: str, folder: Path) -> None:
        self.checkpoint, self.folder = checkpoint, folder
        self.nodes: Dict[float, NodeProcess] = {}
        self.starts = 0
        for gap in GAPS:                        # both start at once: they import in parallel
            self.nodes[gap] = self.start(gap)

    def start(self, gap: float) -> NodeProcess:
        """Start the node of ``gap``."""
        self.starts += 1
        return NodeProcess(['--autostart', '--ros-args', '-r', f'__ns:=/sig{GAPS.index(gap)}',
                            '-p', f'checkpoint:={self.checkpoint}', '-p', 'device:=cpu',
                            '-p', 'backend:=torch', '-p', f'inference_width:={WIDTH}',
                            '-p', 'torch_threads:=1', '-p', 'input_topics:=[image]'],
                           self.folder / f'node{self.starts}.log')

    def running(self, gap: float) -> NodeProcess:
        """The node of ``gap``, a fresh one if a failed attempt already signalled it (a rerun)."""
        node = self.nodes[gap]
        if node.proc.poll() is not None:
            node.stop(signal.SIGKILL)
            node = self.nodes[gap] = self.start(gap)
        return node


@pytest.fixture(scope='module')
def busy(module_probe, tiny_checkpoint, tmp_path_factory):
    """The nodes, all fed 10 frames a second, and the collectors of their anomaly masks."""
    nodes = BusyNodes(tiny_checkpoint, tmp_path_factory.mktemp('signals'))
    masks, pubs = {}, []
    for i, gap in enumerate(GAPS):
        pubs.append(module_probe.node.create_publisher(Image, f'/sig{i}/image',
                                                       qos_profile_sensor_data))
        masks[gap] = module_probe.subscribe(Image, f'/sig{i}/densehybrid/anomaly_mask', RELIABLE)
    data = np.random.default_rng(0).integers(0, 256, H * W * 3, np.uint8).tobytes()
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            for pub in pubs:
                pub.publish(Image(height=H, width=W, encoding='rgb8', step=W * 3, data=data))
            stop.wait(0.1)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield nodes, masks
    finally:
        stop.set()
        feeder.join(5)
        for node in nodes.nodes.values():
            node.stop(signal.SIGKILL)       # only those a failed test left running


@pytest.mark.parametrize('gap', GAPS)
def test_two_sigints_while_processing_exit_0_without_a_traceback(busy, probe, gap):
    nodes, masks = busy
    node, mask = nodes.running(gap), masks[gap]
    seen = len(mask.arrivals)                   # a rerun's fresh node must process frames too
    probe.wait_for(lambda: node.proc.poll() is not None or len(mask.arrivals) >= seen + 3,
                   START_TIMEOUT_S, f'the node for gap {gap} to process frames')
    assert node.proc.poll() is None, node.output()[-3000:]
    last_output = mask.arrivals[-1][0]
    assert time.monotonic() - last_output < 3.0, 'not processing when signalled'
    signalled = time.monotonic()
    node.proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    node.proc.send_signal(signal.SIGINT)
    stacks = ''
    try:
        code = node.proc.wait(7)
    except subprocess.TimeoutExpired:       # evidence before the close watchdog ends it at 10 s
        dump = node.log_path.with_suffix('.stacks')
        stacks = native_stacks(node.proc.pid, dump) + '\n' + main_thread(dump)
        try:
            code = node.proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
    took = time.monotonic() - signalled     # >= 10 s with exit 1: the close watchdog's cut
    node.stop(signal.SIGKILL)              # closes the log; kills only a node that hung
    log = node.log_path.read_text()
    assert code == 0, f'exit {code} {took:.1f} s after the first signal\n{stacks}' + log[-3000:]
    assert 'Traceback' not in log and 'terminate called' not in log, log[-3000:]
    assert 'KeyboardInterrupt' not in log
