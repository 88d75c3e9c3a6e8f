"""Ctrl-C of a training run: the signal rules in-process, and two DDP ranks under the launcher."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest
import torch

from densehybrid_ros.training.interrupt import (agree_to_stop, PLANNED, SIGNALLED,
                                                StopSignals)

REPO = Path(__file__).resolve().parents[2]
TINY = ['--arch', 'ladder_resnet18_half', '--batch-size', '2', '--crop', '48', '64',
        '--scale', '0.8', '1.2', '--scene-size', '64', '96', '--train-scenes', '6',
        '--val-scenes', '1', '--calib-scenes', '1', '--workers', '0', '--threads', '1',
        '--no-progress', '--warmup', '2', '--save-every', '1']


def deliver(sig: int) -> None:
    """Send ``sig`` to this process and let the main thread run its Python handler."""
    os.kill(os.getpid(), sig)
    time.sleep(0.01)       # the handler runs at the next bytecode boundary, well before this


@pytest.fixture
def signals():
    """Yield a factory of StopSignals; put the test runner's handlers back afterwards."""
    made = []

    def make(world: int) -> StopSignals:
        made.append(StopSignals(world))
        return made[-1]
    yield make
    for item in reversed(made):
        item.restore()


def test_outside_the_loop_the_first_signal_interrupts_and_later_ones_are_ignored(signals):
    stop = signals(2)
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)
    deliver(signal.SIGINT)              # torchrun's forwarded copy during the teardown
    deliver(signal.SIGTERM)
    assert stop.received == signal.SIGINT and stop.exit_code == 130


def test_in_the_loop_a_signal_is_a_request_and_ddp_ignores_a_second(signals):
    stop = signals(2)
    stop.in_loop = True
    deliver(signal.SIGTERM)
    deliver(signal.SIGINT)
    assert stop.received == signal.SIGTERM and stop.exit_code == 143


def test_a_second_ctrl_c_of_a_single_process_stops_the_step_at_once(signals):
    stop = signals(1)
    stop.in_loop = True
    deliver(signal.SIGINT)
    assert stop.received == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)


def test_a_single_process_decides_alone():
    cpu = torch.device('cpu')
    assert [agree_to_stop(w, 1, cpu) for w in (0, PLANNED, SIGNALLED)] == [0, PLANNED, SIGNALLED]


def test_ctrl_c_of_two_ranks_exits_130_with_one_line(tmp_path):
    """SIGINT to the process group (a terminal's Ctrl-C) after the first step of a DDP run.

    The agent forwards a second SIGINT to each rank; both stop after the same step, rank 0
    saves last.pt and prints the one line; the launcher exits 130 without torchrun's
    traceback.
    """
    out = tmp_path / 'ddp'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.training.train', 'synthetic',
         '--nproc-per-node', '2', '--output', str(out), '--cache', str(tmp_path / 'cache'),
         '--iters', '100000', *TINY], cwd=tmp_path, start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / 'last.pt').exists() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout[-2000:] + stderr[-4000:]
    lines = (stdout + stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('stopped at iteration '), lines[-30:]
    assert 'continue with --resume' in lines[0]
    state = torch.load(out / 'last.pt', weights_only=True)
    assert f'stopped at iteration {state["iteration"]}/' in lines[0]
