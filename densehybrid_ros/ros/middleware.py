"""Close a process's ROS middleware within a time limit, so that no process hangs at exit.

Fast DDS 2.14.5, the newest on PyPI for Jazzy, can deadlock while it destroys a participant:
``TCPChannelResourceBasic::disconnect`` waits for the read lock that the channel's own reader
thread holds in a read that never completes (eProsima/Fast-DDS#6066, fixed upstream in
September 2025, in no Jazzy wheel yet). The package's LARGE_DATA profile opens a TCP channel to
every peer, so every process of the package is exposed. Seen here on a loaded 2-core machine:
``densehybrid-replay`` done with its bag and hanging for ever in that destructor, and a node that
did not exit within 30 s of SIGINT; both in the destructor reached from the last
``destroy_node``. The stuck call holds the GIL, so no Python thread can step
in; faulthandler's watchdog is a C thread that needs no GIL, and it ends the process with exit
status 1 when the close takes longer than the limit (first writing every thread's Python
stack to stderr where Python's fault tracebacks were asked for: ``stack_file``). Without the
deadlock the close takes milliseconds and the exit status is the caller's.

The deadlock needs a read that never completes: a peer that sent part of a message and stopped
(a loaded peer, descheduled mid-send). A raw socket that sends two bytes to a participant's TCP
port produces it every time: the close then hung until the watchdog ended it, exit status 1
after a command had done its work (``densehybrid-ctl param set`` printed the new value and
exited 1 in CI). The upstream fix shuts the socket down before taking the read lock; the same is
done here from outside, before the participant is destroyed: the TCP connections peers opened
to it are shut down (``shut_down_dds_tcp``), so a blocked read returns and its thread lets go of
the lock. With that, the two-byte peer no longer delays the close (``test_middleware.py``).
The connections the participant opened itself are left alone: Fast DDS replaces one of those
that fails, and the replacement can deadlock too (``shut_down_dds_tcp`` gives the figures). The GIL
rules out doing it only once a close is late: a Python thread started before the close did not
run while the close hung.

A participant whose discovery stalled (``discovery.py``) is not closed at all: in CI the close
of such a participant hung (``densehybrid-ctl`` printed that it was starting a new participant,
then the watchdog ended it with exit 1 before it had printed anything else; while two
participants of the process hold TCP transports ``shut_down_dds_tcp`` does nothing). So a
tool that starts a new participant sets the old one aside (``set_aside``) and ends with
``leave``, which skips every destructor once a participant was set aside.
"""

import faulthandler
import os
import socket
import sys
from typing import List, Optional, TextIO

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.utilities import get_default_context

CLOSE_LIMIT_S = 10.0        # a healthy close: < 0.1 s here
READER_PREFIX = 'dds.tcp.'   # Fast DDS 2.14: a TCP channel's reader thread, + local port

# Nodes set aside: referenced until the process ends, so that no destructor reaches their
# participants (module docstring).
SET_ASIDE: List[Node] = []


def thread_names() -> List[str]:
    """Names of this process's threads (Linux ``/proc``; empty elsewhere)."""
    names = []
    try:
        tids = os.listdir('/proc/self/task')
    except OSError:
        return names
    for tid in tids:
        try:
            with open(f'/proc/self/task/{tid}/comm') as comm:
                names.append(comm.read().strip())
        except OSError:                         # the thread ended meanwhile
            pass
    return names


def shut_down_dds_tcp() -> int:
    """Shut down the TCP connections peers opened to this process's participant; return how many.

    Fast DDS 2.14 names a transport's acceptor thread ``dds.tcp_accept`` and each channel's
    reader thread ``dds.tcp.<local port of its socket>``; a connection a peer opened has the
    port the participant listens on as its local port. Those connections are shut down (reads
    and writes return; Fast DDS still closes the descriptors). The connections the participant
    opened itself are left alone: Fast DDS opens a replacement for one of those that fails (when
    it next sends on it, as the teardown does), and the replacement raced with the teardown
    (gdb: the replacement's reader holding the read lock in a read, the acceptor thread joining
    the old reader, which waits for that lock, and the destructor waiting for it too): with them
    shut down as well, a node stopped by SIGINT hung until the close limit in 9 of 140 tries
    here, and in 0 of 180 without. Nothing is done without ``/proc`` or unless exactly one
    participant of the process has a TCP transport: another context would lose its connections
    too.
    """
    names = thread_names()
    if names.count('dds.tcp_accept') != 1:
        return 0
    ports = {int(name[len(READER_PREFIX):]) for name in names
             if name.startswith(READER_PREFIX) and name[len(READER_PREFIX):].isdigit()}
    borrowed = []        # socket objects on Fast DDS's descriptors, detached (not closed) below
    try:
        for fd in (int(name) for name in os.listdir('/proc/self/fd')):
            try:
                borrowed.append(socket.socket(fileno=fd))   # OSError: no socket, or closed
            except OSError:
                continue
        listening, connected = set(), []     # local ports; (socket, local port)
        for sock in borrowed:
            try:
                if (sock.type != socket.SOCK_STREAM
                        or sock.family not in (socket.AF_INET, socket.AF_INET6)):
                    continue
                port = sock.getsockname()[1]
                if port not in ports:
                    continue
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    listening.add(port)
                else:
                    connected.append((sock, port))
            except OSError:
                pass
        shut = 0
        for sock, port in connected:
            if port in listening:                       # accepted: a peer opened it
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    shut += 1
                except OSError:
                    pass
    finally:
        for sock in borrowed:
            sock.detach()                       # the descriptor stays Fast DDS's
    return shut


def release_state_machine(node: Node) -> None:
    """Destroy a lifecycle node's state machine, which ``destroy_node`` leaves (if it has one).

    rclpy's ``LifecycleNode`` (Humble to Kilted) has no ``destroy_node`` of its own, and the state
    machine it creates holds the rcl node, and with it the participant, until the garbage
    collector frees the node object: for a node object in reference cycles (bound callbacks),
    during interpreter finalization, after ``close_middleware`` has cancelled its watchdog. Seen
    in CI: ``densehybrid-node`` hanging after SIGTERM, ``~DomainParticipantImpl`` reached from
    the collector in the TCP disconnect deadlock of the module docstring. The state machine has
    no public handle; rclpy keeps it as ``_state_machine``.
    """
    machine = getattr(node, '_state_machine', None)
    if machine is not None:
        machine.destroy_when_not_in_use()


def close_middleware(*nodes: Optional[Node], context: Optional[Context] = None,
                     limit_s: float = CLOSE_LIMIT_S) -> None:
    """Destroy ``nodes``, shut down and destroy ``context``; exit 1 if that hangs ``limit_s``.

    The nodes go inside the limit: rmw_fastrtps destroys the participant with the context's
    last node (gdb: ``rcl_node_fini`` -> ``destroy_participant`` -> the TCP disconnect). The
    participant's TCP connections are shut down first (``shut_down_dds_tcp``), and a lifecycle
    node's state machine goes with its node (``release_state_machine``).
    """
    if context is None:             # as rclpy.try_shutdown: a later rclpy.init gets a new one
        context = get_default_context(shutting_down=True)
    flush_output()                  # what was printed before must not be lost to _exit
    with open(os.devnull, 'w') as sink:
        faulthandler.dump_traceback_later(limit_s, exit=True, file=stack_file(sink))
        try:
            shut_down_dds_tcp()
            for node in nodes:
                if node is not None:
                    node.destroy_node()
                    release_state_machine(node)
            rclpy.try_shutdown(context=context)
            context.destroy()       # the participant goes here, inside the watchdog's limit
        finally:
            faulthandler.cancel_dump_traceback_later()


def stack_file(default: TextIO) -> TextIO:
    """Where the watchdog writes the thread stacks of a hung close: stderr or ``default``.

    The stacks are for whoever asked Python for fault tracebacks (``PYTHONFAULTHANDLER`` or
    ``-X faulthandler``: the tests' processes, a bug report), not for every user: then stderr,
    if it is a real file (faulthandler writes to its descriptor); else ``default``.
    """
    if faulthandler.is_enabled():
        try:
            sys.stderr.fileno()
            return sys.stderr
        except (AttributeError, OSError, ValueError):   # replaced by an in-memory stream
            pass
    return default


def flush_output() -> None:
    """Flush stdout and stderr, which ``os._exit`` would drop."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def set_aside(node: Node) -> None:
    """Shut down ``node``'s context but keep the node and its participant until ``leave``.

    The participant is left running: rmw_fastrtps destroys it with its context's last node, and
    that node is never destroyed. When the context is rclpy's default, the next ``rclpy.init()``
    starts a new default context.
    """
    context = node.context
    if context is get_default_context():
        get_default_context(shutting_down=True)
    rclpy.try_shutdown(context=context)
    SET_ASIDE.append(node)


def leave(code: int) -> int:
    """Return ``code``; once a node was set aside, end the process with ``code`` instead.

    The process then ends without destructors or ``atexit`` handlers (``os._exit``), after
    stdout and stderr are flushed: what the caller wrote to files must be closed by then.
    """
    if SET_ASIDE:
        flush_output()
        os._exit(code)
    return code
