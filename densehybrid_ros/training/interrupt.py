"""Stopping a training run on Ctrl-C or SIGTERM, in one process or several (DDP).

A terminal's Ctrl-C reaches every process of its group, and torch's elastic agent (torchrun)
then sends each worker a SIGINT of its own, so a worker gets two within milliseconds; forked
helpers (scene-cache pool, data-loader workers) get the terminal's one too. Measured before
this module: the second signal raised KeyboardInterrupt in a worker while it saved or tore down
the process group, and torchrun printed a 20-line traceback and exited 1.

:class:`StopSignals` makes the first signal a request and ignores the rest: inside the training
loop it only sets a flag, and :func:`agree_to_stop` turns the flags of all ranks into one
decision after each step (a rank that stopped alone would leave the others waiting in the next
all-reduce); outside the loop (data, calibration) it raises KeyboardInterrupt once. Forked
helpers leave the decision to their parent. :func:`launch` runs the elastic agent in-process,
which is what lets Ctrl-C end with one line and exit 130: torchrun's own agent reports the
signal as an uncaught ``SignalException`` (traceback, exit 1) whatever its workers do.
"""

import logging
import os
import signal
import sys
from types import FrameType
from typing import Optional, Sequence

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PLANNED, SIGNALLED = 1, 2          # what a rank wants after a step, all-reduced with MAX


class StopSignals:
    """SIGINT and SIGTERM of a run: the first one is a stop request, later ones are ignored.

    ``in_loop`` (set by the training loop) chooses how the request is made: a flag checked
    after each step, or KeyboardInterrupt at once. In a single process a second Ctrl-C during
    the loop still interrupts the step (an impatient user); with several processes it cannot
    be told from the agent's forwarded copy, so it is ignored.
    """

    def __init__(self, world: int = 1) -> None:
        self.received: Optional[int] = None     # number of the first signal
        self.in_loop = False
        self._world = world
        self._pid = os.getpid()
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self._pid:            # a forked helper: its parent decides
            if signum == signal.SIGTERM:        # Pool.terminate() and friends: die as before
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        first = self.received is None
        if first:
            self.received = signum
        if self.in_loop:
            if not first and self._world == 1 and signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        if first:
            raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        """Exit status for a run stopped by the signal: 128 + its number (Ctrl-C: 130)."""
        return 128 + int(self.received or signal.SIGINT)

    def restore(self) -> None:
        """Put back the handlers that were installed before."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def agree_to_stop(wish: int, world: int, device: torch.device) -> int:
    """Return the largest ``wish`` (0, PLANNED or SIGNALLED) of all ranks, the same on each."""
    if world == 1:
        return wish
    flag = torch.tensor([wish], dtype=torch.int32, device=device)   # one int: well under 1 ms
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def launch(nproc: int, module: str, argv: Sequence[str], prog: str) -> int:
    """Run ``python -m module argv`` in ``nproc`` processes under torch's elastic agent.

    The same agent as ``torchrun --standalone --nproc-per-node nproc``, in this process so its
    signal exception and worker failures become exit codes: 128 + signal (Ctrl-C: 130, the
    workers print the one line), a failed worker's own code (its error line is printed by
    it), or 1 with one line for a worker that died of something else.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run
    for name in list(logging.root.manager.loggerDict):   # its warnings repeat what happened
        if name.startswith('torch.distributed'):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault('OMP_NUM_THREADS', '1')         # the agent warns when it sets it
    try:
        run(parse_args(['--standalone', '--nproc-per-node', str(nproc), '-m', module,
                        *argv]))
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except KeyboardInterrupt:             # before the agent took over SIGINT (rendezvous)
        return 128 + signal.SIGINT
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code > 1:         # 2: bad arguments, 130: interrupted; the worker printed why
            return code
        cause = f'signal {-code}' if code < 0 else f'exit code {code}'
        print(f'{prog}: error: process {rank} of {nproc} failed ({cause})', file=sys.stderr)
        return 1
    return 0
