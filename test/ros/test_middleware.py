"""close_middleware: a healthy close keeps the exit status; a hanging one ends the process.

Each case runs in its own process: the watchdog ends the process it runs in. The Fast DDS
deadlock it guards against cannot be produced on demand, so the hanging case is a context whose
shutdown never returns (holding no lock the watchdog needs, as the real one holds the GIL).
"""

import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy')
from ros_helpers import ros_env  # noqa: E402

PRELUDE = (
    'import sys, threading\n'
    'import rclpy\n'
    'from rclpy.context import Context\n'
    'from densehybrid_ros.ros.middleware import close_middleware\n'
)


def run(body: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run PRELUDE + body in a fresh Python; return the finished process."""
    return subprocess.run([sys.executable, '-c', PRELUDE + body], capture_output=True,
                          text=True, timeout=timeout, env=ros_env())


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


def test_a_close_that_hangs_ends_the_process_with_status_1_and_keeps_earlier_output():
    start = time.monotonic()
    done = run('class Stuck(Context):\n'
               '    def try_shutdown(self):\n'
               '        threading.Event().wait()     # never returns\n'
               'context = Stuck()\n'
               'context.init()\n'
               'print("work done", flush=False)\n'  # buffered: close_middleware flushes it
               'close_middleware(context=context, limit_s=1.0)\n'
               'print("not reached")\n')
    assert done.returncode == 1
    assert done.stdout.strip() == 'work done'
    assert done.stderr == ''               # the thread stacks went to /dev/null
    assert time.monotonic() - start < 60
