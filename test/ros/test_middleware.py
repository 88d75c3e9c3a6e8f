"""close_middleware: a healthy close keeps the exit status; a hanging one ends the process.

Each case runs in its own process: the watchdog ends the process it runs in. The watchdog's
hanging case is a context whose shutdown never returns (holding no lock the watchdog needs, as
the real one holds the GIL). The Fast DDS deadlock itself is produced by a peer that sends the
first two bytes of a message to the participant's TCP port and stops.
"""

import json
import select
import socket
import subprocess
import sys
import time
from typing import List, Tuple

import pytest

pytest.importorskip('rclpy')
from ros_helpers import DOMAIN_ID, ros_env  # noqa: E402

PRELUDE = (
    'import sys, threading\n'
    'import rclpy\n'
    'from rclpy.context import Context\n'
    'from densehybrid_ros.ros.middleware import close_middleware\n'
)


def run(body: str, timeout: float = 120.0, faults: bool = True) -> subprocess.CompletedProcess:
    """Run PRELUDE + body in a fresh Python; return the finished process.

    ``faults``: with ``PYTHONFAULTHANDLER`` set, as every process of the tests has it.
    """
    env = ros_env()
    if not faults:
        del env['PYTHONFAULTHANDLER']
    return subprocess.run([sys.executable, '-c', PRELUDE + body], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_a_healthy_close_keeps_the_exit_status_and_allows_a_new_init():
    done = run('rclpy.init()\n'
               'node = rclpy.create_node("mw_a")\n'
               'close_middleware(node)\n'
               'rclpy.init()\n'                 # in-process callers start again afterwards
               'rclpy.create_node("mw_b").destroy_node()\n'
               'close_middleware()\n'
               'print("closed twice")\n'
               'sys.exit(3)\n')
    assert (done.returncode, done.stdout.strip()) == (3, 'closed twice'), done.stderr


HANGING_CLOSE = ('class Stuck(Context):\n'
                 '    def try_shutdown(self):\n'
                 '        threading.Event().wait()     # never returns\n'
                 'context = Stuck()\n'
                 'context.init()\n'
                 'print("work done", flush=False)\n'  # buffered: close_middleware flushes it
                 'close_middleware(context=context, limit_s=1.0)\n'
                 'print("not reached")\n')


@pytest.mark.parametrize('faults', [False, True])
def test_a_close_that_hangs_ends_the_process_with_status_1_and_keeps_earlier_output(faults):
    start = time.monotonic()
    done = run(HANGING_CLOSE, faults=faults)
    assert done.returncode == 1
    assert done.stdout.strip() == 'work done'
    if faults:          # PYTHONFAULTHANDLER: where the close hung, on stderr
        assert 'Timeout (0:00:01)!' in done.stderr and 'in try_shutdown' in done.stderr
        assert 'in close_middleware' in done.stderr
    else:               # the thread stacks went to /dev/null
        assert done.stderr == ''
    assert time.monotonic() - start < 60


def test_a_node_set_aside_stays_until_leave_ends_the_process_with_the_code_given():
    # the renewal of densehybrid-ctl and -replay: the stuck participant is never destroyed
    done = run('from densehybrid_ros.ros.middleware import leave, set_aside\n'
               'print(leave(5))\n'                 # nothing set aside: a plain return
               'rclpy.init()\n'
               'old = rclpy.create_node("mw_old")\n'
               'set_aside(old)\n'
               'rclpy.init()\n'                    # a new default context
               'new = rclpy.create_node("mw_new")\n'
               'print(old.get_name(), old.context.ok(), new.context.ok(), flush=False)\n'
               'leave(4)\n'
               'print("not reached")\n')
    assert (done.returncode, done.stdout.split()) == (4, ['5', 'mw_old', 'False', 'True']), \
        done.stderr


def test_a_lifecycle_node_leaves_no_participant_behind_for_the_garbage_collector():
    # rclpy's LifecycleNode keeps its state machine, and through it the participant, past
    # destroy_node; freed by the collector at exit, outside the watchdog (a CI hang, exit -6)
    done = run('from rclpy.lifecycle import LifecycleNode\n'
               'from densehybrid_ros.core.transport import use_large_data\n'
               'from densehybrid_ros.ros.middleware import thread_names\n'
               'use_large_data()\n'         # the package's TCP transport: its threads are named
               'rclpy.init()\n'
               'node = LifecycleNode("mw_life")\n'
               'node.trigger_configure()\n'
               'print("dds.tcp_accept" in thread_names())\n'
               'close_middleware(node)\n'
               'print("dds.tcp_accept" in thread_names())\n')
    assert done.stdout.split() == ['True', 'False'], done.stderr


# For the scripts below: this process's TCP sockets, as ({listening ports}, [(local port,
# peer port) of each connection]).
TCP_SOCKETS = (
    'import os, socket\n'
    'def tcp_sockets():\n'
    '    listening, pairs = set(), []\n'
    '    for fd in os.listdir("/proc/self/fd"):\n'
    '        try:\n'
    '            sock = socket.socket(fileno=int(fd))\n'     # OSError: no socket, or closed
    '        except OSError:\n'
    '            continue\n'
    '        try:\n'
    '            if (sock.family in (socket.AF_INET, socket.AF_INET6)\n'
    '                    and sock.type == socket.SOCK_STREAM):\n'
    '                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):\n'
    '                    listening.add(sock.getsockname()[1])\n'
    '                else:\n'
    '                    pairs.append((sock.getsockname()[1], sock.getpeername()[1]))\n'
    '        except OSError:\n'                           # not connected (any more)
    '            pass\n'
    '        finally:\n'
    '            sock.detach()\n'
    '    return listening, pairs\n'
)

# A participant that prints the TCP ports it listens on, waits for a line, then closes.
LISTENER = TCP_SOCKETS + (
    'import time\n'
    'from densehybrid_ros.core.transport import use_large_data\n'
    'use_large_data()\n'
    'rclpy.init()\n'
    'node = rclpy.create_node("mw_listener")\n'
    'time.sleep(0.5)\n'
    'print(*tcp_sockets()[0], flush=True)\n'
    'sys.stdin.readline()\n'
    'close_middleware(node, limit_s=10.0)\n'
    'print("closed", flush=True)\n'
)


# The listener's own domain: no participant of the session (the probe, node processes of other
# tests in this worker) talks to it, so its TCP connections are the test's alone. On the
# session's domain a close of the two-byte case was cut by the watchdog in one clean-clone CI run
# (exit 1, nothing printed) and passed 60 of 60 tries here beside the probe, 30 of them under
# load: the cause was not found; a connection to another participant is the open suspect
# (shut_down_dds_tcp leaves those it opened).
ALONE_DOMAIN_ID = 230 + DOMAIN_ID % 3       # 230-232: no other test's domain (test_ctl: 200-229)


def start_listener() -> Tuple[subprocess.Popen, List[int]]:
    """Start LISTENER alone on its domain; return the process and the TCP ports it listens on."""
    proc = subprocess.Popen([sys.executable, '-c', PRELUDE + LISTENER],
                            env=ros_env(ALONE_DOMAIN_ID), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = [int(port) for port in proc.stdout.readline().split()]
    if not ports:
        proc.kill()
    assert ports, 'the participant listens on no TCP port (is the LARGE_DATA profile on?)'
    return proc, ports


def test_a_peer_stopped_mid_message_does_not_hang_the_close():
    """Fast DDS 2.14 hung in the TCP disconnect until the watchdog ended it (exit 1 at 10 s)."""
    proc, ports = start_listener()
    peers = []
    try:
        for port in ports:
            peer = socket.create_connection(('127.0.0.1', port), timeout=10)
            peer.sendall(b'RT')                 # the start of a header, and nothing after it
            peers.append(peer)
        time.sleep(1.0)                         # its reader thread now waits in the read
        start = time.monotonic()
        out, err = proc.communicate('\n', timeout=60)
        took = time.monotonic() - start
    finally:
        proc.kill()
        for peer in peers:
            peer.close()
    assert (proc.returncode, out.strip()) == (0, 'closed'), f'{took:.1f} s; {err}'
    assert took < 5.0


def test_fast_dds_errors_go_to_stderr_and_leave_stdout_to_the_program():
    """A tool's stdout is its result: Fast DDS's own error log must not end up in it.

    Fast DDS logs to stdout by default; ``densehybrid-ctl`` printed a Fast DDS TCP error line
    next to its answer in CI. The profile's ``<log>`` block sends warnings and errors to stderr.
    The error here: a complete message bigger than the TCP receive buffer (the participant
    drops it, logs one error and goes on).
    """
    proc, ports = start_listener()
    try:
        body = 70_000                           # over Fast DDS's 65500-byte TCP buffer
        logged = ''
        with socket.create_connection(('127.0.0.1', ports[0]), timeout=10) as peer:
            # RTCP header: 'RTCP', length (header included, little-endian), CRC, logical port
            peer.sendall(b'RTCP' + (14 + body).to_bytes(4, 'little') + bytes(6) + bytes(body))
            # Closed only once the participant has read the header and dropped the body:
            # closing in the middle of the drop makes Fast DDS 2.14.5 loop (docs/node.md).
            deadline = time.monotonic() + 60
            while 'bigger than buffer capacity' not in logged and time.monotonic() < deadline:
                if select.select([proc.stderr], [], [], 1.0)[0]:
                    logged += proc.stderr.readline()
            time.sleep(0.5)
        out, err = proc.communicate('\n', timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out.strip()) == (0, 'closed'), logged + err
    assert 'RTCP_MSG_IN' in logged and 'bigger than buffer capacity' in logged, logged + err


def test_a_second_participant_in_the_process_keeps_its_connections():
    """Shutting a participant's TCP down must not cut another context's (an in-process tool)."""
    done = run('import time\n'
               'from densehybrid_ros.ros.middleware import shut_down_dds_tcp, thread_names\n'
               'rclpy.init()\n'
               'other = Context()\n'
               'rclpy.init(context=other)\n'
               'a = rclpy.create_node("mw_a")\n'
               'b = rclpy.create_node("mw_b", context=other)\n'
               'deadline = time.monotonic() + 30\n'
               'def ready(names):\n'       # both transports named, and connected over TCP
               '    return names.count("dds.tcp_accept") == 2 and any(\n'
               '        n.startswith("dds.tcp.") for n in names)\n'
               'while time.monotonic() < deadline and not ready(thread_names()):\n'
               '    time.sleep(0.2)\n'
               'print(thread_names().count("dds.tcp_accept"), shut_down_dds_tcp())\n'
               'close_middleware(b, context=other)\n'
               'close_middleware(a)\n')
    assert (done.returncode, done.stdout.split()) == (0, ['2', '0']), done.stderr


# One participant with TCP connections in both directions, to peers in processes of its own:
# Fast DDS 2.14 has the participant with the lower listening port open a connection, so with
# four peers two participants in five have only one direction ("one-way": the test starts
# another). Then shut_down_dds_tcp and the connections it opened 2 s later. It and its peers end
# without closing: a participant closed while several peers hold connections to it can itself
# meet Fast DDS's close hang (docs/node.md; exit status 1 at the 10 s limit), which is not what
# this is about.
BOTH_WAYS = TCP_SOCKETS + (
    'import json, subprocess, time\n'
    'from densehybrid_ros.core.transport import use_large_data\n'
    'from densehybrid_ros.ros.middleware import shut_down_dds_tcp\n'
    'use_large_data()\n'
    'PEER = ("import os, sys, rclpy; rclpy.init(); n = rclpy.create_node(\'mw_peer\');"\n'
    '        "sys.stdin.read(); os._exit(0)")\n'
    'def connections():\n'          # (accepted, opened): (local port, peer port) pairs
    '    listening, pairs = tcp_sockets()\n'
    '    return ([p for p in pairs if p[0] in listening],\n'
    '            sorted(p for p in pairs if p[0] not in listening))\n'
    'peers = [subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE)\n'
    '         for _ in range(4)]\n'         # they end as this process does (stdin closes)
    'rclpy.init()\n'
    'node = rclpy.create_node("mw_both")\n'
    'deadline = time.monotonic() + 30\n'
    'while sum(map(len, connections())) < len(peers) and time.monotonic() < deadline:\n'
    '    time.sleep(0.1)\n'
    'accepted, opened = connections()\n'
    'if accepted and opened:\n'
    '    shut = shut_down_dds_tcp()\n'
    '    time.sleep(2.0)\n'         # shut down, an opened one is gone after 0.1 s and 2 s
    '    print(json.dumps([len(accepted), shut, opened, connections()[1]]), flush=True)\n'
    'else:\n'
    '    print("one-way", flush=True)\n'
    'os._exit(0)\n'
)


def test_the_connections_a_participant_opened_stay_up_and_are_not_replaced():
    """Only the connections peers opened are shut down; the participant's own ones stay up.

    Fast DDS replaces an opened connection that was shut down, and the replacement raced with
    the participant's destruction: shutting down every connection, a node stopped by SIGINT
    hung until the close limit in 9 of 140 tries here.
    """
    for _ in range(8):                  # one-way 8 times running: (2/5)^8 with random ports
        done = run(BOTH_WAYS, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        if done.stdout.split()[-1:] != ['one-way']:
            break
    accepted, shut, opened, opened_after = json.loads(done.stdout.splitlines()[-1])
    assert accepted >= 1 and opened, 'no connection in one of the two directions'
    assert shut == accepted
    # all still up, none replaced (more may have come: other participants of the domain)
    assert {tuple(p) for p in opened} <= {tuple(p) for p in opened_after}
