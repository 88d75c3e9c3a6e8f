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
status 1 when the close takes longer than the limit. Without the deadlock the close takes
milliseconds and the exit status is the caller's.
"""

import faulthandler
import os
import sys
from typing import Optional

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.utilities import get_default_context

CLOSE_LIMIT_S = 10.0        # a healthy close: < 0.1 s here


def close_middleware(*nodes: Optional[Node], context: Optional[Context] = None,
                     limit_s: float = CLOSE_LIMIT_S) -> None:
    """Destroy ``nodes``, shut down and destroy ``context``; exit 1 if that hangs ``limit_s``.

    The nodes go inside the limit: rmw_fastrtps destroys the participant with the context's
    last node (gdb: ``rcl_node_fini`` -> ``destroy_participant`` -> the TCP disconnect).
    """
    if context is None:             # as rclpy.try_shutdown: a later rclpy.init gets a new one
        context = get_default_context(shutting_down=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()          # what was printed before must not be lost to _exit
        except (OSError, ValueError):
            pass
    with open(os.devnull, 'w') as sink:      # the thread stacks of a hang are not for the user
        faulthandler.dump_traceback_later(limit_s, exit=True, file=sink)
        try:
            for node in nodes:
                if node is not None:
                    node.destroy_node()
            rclpy.try_shutdown(context=context)
            context.destroy()       # the participant goes here, inside the watchdog's limit
        finally:
            faulthandler.cancel_dump_traceback_later()
