"""densehybrid-ctl against a real node process: lifecycle, parameters, echo, errors."""

import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('cv_bridge')
from ros_helpers import NodeProcess, ros_env, START_TIMEOUT_S  # noqa: E402

NODE = '/ctl/densehybrid'
HERE = Path(__file__).resolve().parent
# A domain of their own: densehybrid-ctl, its node and nothing else. In the session's domain
# every node also connects over TCP to the long-lived probe, and under load Fast DDS 2.14 can
# wedge the node there: gdb showed its TCP thread joining, for ever, a reader blocked on an old
# connection it was replacing, after which no new peer (densehybrid-ctl) discovered its services
# (two CI attempts: "set_parameters not available after 90 s", "get_state ... after 180 s").
CTL_DOMAIN = 200 + os.getpid() % 30


def ctl(*args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run densehybrid-ctl in its own process."""
    return subprocess.run([sys.executable, '-m', 'densehybrid_ros.ros.ctl',
                           '--timeout', str(timeout), *args],
                          env=ros_env(CTL_DOMAIN), capture_output=True, text=True, timeout=300)


@pytest.fixture()
def node(tiny_checkpoint, tmp_path_factory):
    """Start a fresh node, unconfigured, in /ctl (never the state a failed attempt left)."""
    proc = NodeProcess(['--ros-args', '-r', '__ns:=/ctl', '-p', f'checkpoint:={tiny_checkpoint}',
                        '-p', 'device:=cpu', '-p', 'backend:=torch', '-p', 'inference_width:=64'],
                       tmp_path_factory.mktemp('ctl') / 'node.log',
                       env=ros_env(CTL_DOMAIN))
    yield proc
    proc.stop(signal.SIGINT)


def said(done: subprocess.CompletedProcess, node: NodeProcess) -> str:
    """What densehybrid-ctl and the node said: the evidence for a failed step."""
    tail = '\n'.join(node.output().splitlines()[-25:])
    return (f'ctl {done.args[4:]} exit {done.returncode}\nstdout: {done.stdout!r}\n'
            f'stderr: {done.stderr!r}\nnode log, last lines:\n{tail}')


def test_lifecycle_and_parameters(node):
    done = ctl('lifecycle', NODE, 'get', timeout=2 * START_TIMEOUT_S)   # the node is starting
    assert (done.returncode, done.stdout.strip()) == (0, 'unconfigured'), said(done, node)
    done = ctl('param', 'set', NODE, 'overlay_alpha', '2.0')
    assert done.returncode == 1 and 'rejected' in done.stderr and 'overlay_alpha' in done.stderr, \
        said(done, node)
    done = ctl('param', 'set', NODE, 'overlay_alpha', '0.25')
    assert (done.returncode, done.stdout) == (0, 'overlay_alpha: 0.25\n'), said(done, node)
    done = ctl('param', 'get', NODE, 'overlay_alpha', 'input_topics')
    assert done.stdout.splitlines() == ['overlay_alpha: 0.25', "input_topics: ['image']"], \
        said(done, node)
    done = ctl('param', 'list', NODE)
    assert 'max_input_pixels' in done.stdout.split(), said(done, node)
    done = ctl('lifecycle', NODE, 'activate')             # not from unconfigured
    assert (done.returncode, done.stdout.strip()) == (1, 'unconfigured'), said(done, node)
    done = ctl('lifecycle', NODE, 'configure')
    assert (done.returncode, done.stdout.strip()) == (0, 'inactive'), said(done, node)
    done = ctl('lifecycle', NODE, 'activate')
    assert (done.returncode, done.stdout.strip()) == (0, 'active'), said(done, node)


@pytest.fixture()
def silent(tmp_path):
    """A process whose lifecycle transitions happen but are never answered."""
    proc = subprocess.Popen([sys.executable, str(HERE / 'silent_lifecycle.py'), '/silent'],
                            env=ros_env(CTL_DOMAIN), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        yield '/silent/node'
    finally:
        proc.kill()
        proc.wait()


def test_a_transition_whose_reply_is_lost_is_read_from_the_state(silent):
    """A lost configure reply left densehybrid-ctl waiting 120 s, then failing (CI, 2026-12-06)."""
    done = ctl('lifecycle', silent, 'configure', timeout=30)
    assert (done.returncode, done.stdout.strip()) == (0, 'inactive'), done.stderr


def test_a_transition_the_state_does_not_offer_is_refused_unsent(silent):
    """Sent, its lost reply could not be told from a slow one: a 120 s wait, then exit 2."""
    done = ctl('lifecycle', silent, 'activate', timeout=30)
    assert (done.returncode, done.stdout.strip()) == (1, 'unconfigured'), done.stderr
    assert 'activate is not a transition from unconfigured (offered: configure, shutdown)' \
        in done.stderr


def test_echo_prints_diagnostics(node):
    done = ctl('echo', '/diagnostics', '--count', '1')
    assert done.returncode == 0, said(done, node)
    assert f'{NODE}: model' in done.stdout and done.stdout.rstrip().endswith('---')


@pytest.mark.parametrize('args, said', [
    (('param', 'get', '/nobody_here'), 'param get needs at least one parameter name'),
    (('param', 'set', '/nobody_here', 'overlay_alpha'), 'param set needs NAME VALUE')])
def test_a_usage_error_is_said_before_any_wait_for_the_node(args, said):
    done = ctl(*args, timeout=120)            # no node: a lookup would wait the 120 s out
    assert (done.returncode, done.stderr.strip()) == (2, f'densehybrid-ctl: error: {said}')


def test_missing_node_is_one_error_line():
    done = ctl('lifecycle', '/nobody_here', 'get', timeout=1)
    assert done.returncode == 2
    assert done.stderr.strip().startswith('densehybrid-ctl: error: service /nobody_here')
    assert 'Traceback' not in done.stderr


# A lookup that finds nothing on the first participant (as a stuck discovery does), then the
# real lookup of the node's get_state; prints what it found and the nodes it was given.
RENEWING = '''
import sys
from densehybrid_ros.ros import ctl
from densehybrid_ros.core.transport import use_large_data
from lifecycle_msgs.srv import GetState
use_large_data()
real, nodes = ctl.service_look(GetState, sys.argv[1]), []
def look(node, seconds):
    nodes.append(node)
    return len(nodes) > 1 and real(node, seconds)
link = ctl.Link()
found = ctl.contact(link, look, timeout=float(sys.argv[2]))
print(found, len(nodes), len({id(n.context) for n in nodes}), link.node is nodes[-1],
      nodes[0].get_name(), nodes[0].context.ok())
link.close(3)
print('returned from close')
'''


def test_a_participant_that_finds_nothing_is_replaced_by_a_new_one(node):
    done = subprocess.run([sys.executable, '-c', RENEWING, f'{NODE}/get_state',
                           str(2 * START_TIMEOUT_S)], env=ros_env(CTL_DOMAIN),
                          capture_output=True, text=True, timeout=300)
    # found on the second participant (its own context), which the tool goes on with; the
    # first is set aside, not destroyed (its node still answers, its context is shut down),
    # and the process ends in close with the code it was given (ros/middleware.py)
    assert (done.returncode, done.stdout.split()) == (
        3, ['True', '2', '2', 'True', 'densehybrid_ctl', 'False']), said(done, node)
    assert done.stderr.count('trying again on a new participant') == 1, done.stderr
