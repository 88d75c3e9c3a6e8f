"""Real-middleware helpers: a private ROS domain, node processes, and a probe node.

Every test session gets its own ROS_DOMAIN_ID (from the pid), so parallel runs do not see each
other. The node under test runs in its own process; the test side
publishes and listens through a probe node spun in a background thread.
"""

from collections import deque
import gc
import math
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from densehybrid_ros.core.transport import child_env  # noqa: E402
from densehybrid_ros.ros.ctl import RENEW_AFTER, RESEND_S  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOMAIN_ID = 20 + os.getpid() % 180
START_TIMEOUT_S = 90.0      # import torch + load + warm up on a busy 2-core machine
# Probe.call: requests that change nothing, resent while unanswered (ctl's RESEND_S, RENEW_AFTER)
READ_ONLY_SERVICES = ('GetState', 'GetAvailableTransitions', 'GetParameters', 'ListParameters')


def close_node(node: Any) -> None:
    """Destroy an in-process node made with ``cli_args`` on the session's context.

    Such nodes share the probe's DDS participant, so destroying them never tears a participant
    down during the session. Each one used to get an rclpy context of its own; a later garbage
    collection then finalised that context's participant while it had TCP channels (Fast DDS
    LARGE_DATA) open, and Fast DDS 2.14 deadlocked in TCPChannelResourceBasic::disconnect
    against its own blocked reader threads, hanging the suite (seen twice in clean-clone runs).
    """
    node.destroy_node()
    gc.collect()


def ros_env(domain_id: int = DOMAIN_ID) -> Dict[str, str]:
    """Environment for every process of this session: private domain, Fast DDS large data."""
    env = child_env(domain_id)                # discovery settings stay as inherited: all
    env.setdefault('OMP_NUM_THREADS', '1')   # node, probe and DDS share 2 cores: no spinning
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env['PYTHONFAULTHANDLER'] = '1'          # stacks of a hung process (NodeProcess.stop)
    return env


def node_command() -> List[str]:
    """The installed console script if there is one, else ``python -m``."""
    for folder in (Path(sys.prefix) / 'bin', Path(sys.prefix) / 'lib' / 'densehybrid_ros'):
        script = shutil.which('densehybrid-node', path=str(folder))
        if script:
            return [script]
    return [sys.executable, '-m', 'densehybrid_ros.ros.main']


def native_stacks(pid: int, dump: Path) -> str:
    """Write every thread's native stack of process ``pid`` to ``dump`` (gdb); a short summary.

    Evidence for a live test that received nothing: a Fast DDS thread stuck on a lock or a
    shared-memory port shows here. The summary counts the frames that name Fast DDS waits.
    """
    gdb = shutil.which('gdb')
    if gdb is None:
        return 'no gdb for native stacks'
    try:
        out = subprocess.run([gdb, '-p', str(pid), '-batch', '-ex', 'thread apply all bt 12'],
                             capture_output=True, text=True, timeout=90).stdout
    except subprocess.SubprocessError as exc:
        return f'gdb failed: {exc}'
    dump.write_text(out)
    waits = [line.strip()[:160] for line in out.splitlines()
             if 'eprosima' in line and any(w in line for w in ('wait', 'lock', 'Lock', 'Wait'))]
    return f'native stacks of {pid} in {dump}; Fast DDS waits: {waits[:6]}'


def main_thread(dump: Path) -> str:
    """The main thread's native stack in a :func:`native_stacks` dump (where a close hangs)."""
    text = dump.read_text() if dump.exists() else ''
    part = text.split('\nThread 1 ', 1)
    return 'Thread 1 ' + part[1].split('\n\n', 1)[0] + '\n' if len(part) == 2 else ''


def silence_evidence(probe: 'Probe', node: 'NodeProcess') -> str:
    """What tells a deaf probe from a node that received nothing: for a failure message.

    The probe's last errors, both processes' native stacks (files next to the node's log) and
    the tail of the node's log.
    """
    return (f'probe errors {probe.errors[-3:]}; '
            f'{probe.stacks(node.log_path.with_suffix(".probe-stacks"))}; '
            f'{native_stacks(node.proc.pid, node.log_path.with_suffix(".stacks"))}\n'
            + node.output()[-3000:])


class NodeProcess:
    """The densehybrid node in its own process, its output captured to a file."""

    def __init__(self, args: Sequence[str], log_path: Path,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(node_command() + list(args), env={**ros_env(), **(env or {})},
                                     cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait; kill if it does not exit in time. Returns the exit code.

        A non-zero exit prints the end of the node's log (native stacks of a hang included).
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(native_stacks(self.proc.pid, self.log_path.with_suffix('.stacks')),
                      file=self._log, flush=True)
                # a hung node: SIGABRT makes faulthandler (PYTHONFAULTHANDLER, ros_env) print
                # every thread's stack into the log before it dies
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        self._log.close()
        if self.proc.returncode != 0:       # evidence in the failure report (captured stdout)
            print(f'node exited {self.proc.returncode}; the end of its log:\n'
                  + self.log_path.read_text()[-4000:])
        return self.proc.returncode


def stamp_ns(header: Any) -> int:
    """A header stamp as integer nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Collector:
    """Arrival times and stamps of all messages on a topic, plus the last few messages."""

    def __init__(self, keep: int) -> None:
        self.arrivals: List[Tuple[float, int]] = []     # (monotonic time, stamp ns)
        self.recent: Deque[Any] = deque(maxlen=keep)

    def add(self, msg: Any) -> None:
        """Record one message."""
        header = getattr(msg, 'header', None)
        self.arrivals.append((time.monotonic(), stamp_ns(header) if header else 0))
        self.recent.append(msg)

    def with_stamp(self, stamp: int) -> Any:
        """The most recent kept message with this stamp, or None."""
        for msg in reversed(list(self.recent)):     # a snapshot: the executor appends
            if stamp_ns(msg.header) == stamp:
                return msg
        return None

    def recent_stamps(self) -> Set[int]:
        """Stamps of the messages still kept."""
        return {stamp_ns(msg.header) for msg in list(self.recent)}

    def stamps(self) -> Set[int]:
        """Every stamp seen so far."""
        return {s for _, s in self.arrivals}


class Probe:
    """Test-side node: publishers, collecting subscriptions and service calls."""

    def __init__(self, context: Any) -> None:
        self.node = Node('densehybrid_probe', context=context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self.executor.add_node(self.node)
        self._cond = threading.Condition()
        self.topics: Dict[str, Collector] = {}
        self.errors: List[str] = []             # exceptions the spinning thread survived
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        """Spin until shutdown; an error in one wait does not stop the probe listening.

        Destroying a client or publisher from the test thread while the executor waits on it
        raises (InvalidHandle) inside ``spin_once``. A plain ``spin()`` ended there, silently, and
        every later subscription of the session collected nothing (seen once in CI as an
        obstacle test that received no message at all). Errors are kept in ``errors`` and
        reported by :meth:`wait_for`.
        """
        while not self._stop.is_set() and self.node.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.2)
            except Exception as exc:  # noqa: B902 (also the shutdown at teardown)
                if self._stop.is_set() or not self.node.context.ok():
                    return
                self.errors.append(f'{type(exc).__name__}: {exc}')

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 10, keep: int = 4) -> 'Collector':
        """Record every message's arrival and stamp on ``topic``; keep the last ``keep``."""
        if topic in self.topics:                # one subscription per topic and session
            return self.topics[topic]
        collector = self.topics[topic] = Collector(keep)

        def on_msg(msg: Any) -> None:
            with self._cond:
                collector.add(msg)
                self._cond.notify_all()
        self.node.create_subscription(msg_type, topic, on_msg, qos)
        return collector

    def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on each message); None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Like :meth:`wait`, but fail the test on timeout."""
        value = self.wait(predicate, timeout)
        if not value:
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}'
                        + (f' (probe errors: {self.errors[-3:]})' if self.errors else '')
                        + f'\n{self.stacks()}')
        return value

    def stacks(self, dump: Optional[Path] = None) -> str:
        """The probe process's native stacks, for a failure message (see native_stacks)."""
        return native_stacks(os.getpid(), dump or Path(f'/tmp/probe-{os.getpid()}.stacks'))

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 30.0) -> Any:
        """Call a service and return its response (fails the test on timeout).

        A reply is lost when the server answers before it has discovered the client's reply
        reader (the race ``densehybrid_ros/ros/ctl.py`` describes; in CI a get_state found the
        service and got no answer in 90 s, and its rerun passed). Read-only requests are sent
        again every ``RESEND_S`` while unanswered, from a new client after every
        ``RENEW_AFTER`` sends; the others are sent once.
        """
        resend = srv_type.__name__ in READ_ONLY_SERVICES
        deadline = time.monotonic() + timeout
        done = threading.Event()
        clients: List[Any] = []
        futures: List[Any] = []
        try:
            while True:
                if len(futures) % RENEW_AFTER == 0:         # the first send, or a new client
                    clients.append(self.node.create_client(srv_type, name))
                    wait = max(0.0, deadline - time.monotonic())
                    if not clients[-1].wait_for_service(timeout_sec=wait):
                        pytest.fail(f'service {name} not available after {timeout:.0f} s\n'
                                    + self.stacks())
                futures.append(clients[-1].call_async(request))
                futures[-1].add_done_callback(lambda _: done.set())
                left = max(0.0, deadline - time.monotonic())
                if done.wait(min(left, RESEND_S) if resend else left):
                    return next(f for f in futures if f.done()).result()
                if not resend or time.monotonic() >= deadline:
                    pytest.fail(f'service {name} did not answer in {timeout:.0f} s '
                                f'({len(futures)} requests)\n' + self.stacks())
        finally:
            for client in clients:
                self.node.destroy_client(client)

    def set_parameters(self, node: str, **values: Any) -> List[Any]:
        """Set parameters of ``node`` remotely; returns one SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return list(self.call(SetParameters, f'{node}/set_parameters', request).results)

    def get_parameters(self, node: str, *names: str) -> List[Any]:
        """Read parameters of ``node`` remotely as Python values."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        response = self.call(GetParameters, f'{node}/get_parameters',
                             GetParameters.Request(names=list(names)))
        return [parameter_value_to_python(v) for v in response.values]

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()


def isnan(value: Any) -> bool:
    """True for a float NaN (YAML ``.nan`` and the parameter default)."""
    return isinstance(value, float) and math.isnan(value)
