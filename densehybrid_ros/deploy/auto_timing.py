"""backend auto on the CPU at fp32: time torch eager against the graph runtime, keep the faster.

The rule (:func:`densehybrid_ros.deploy.runtimes.resolve_auto`) names the candidate (OpenVINO
fp32 on an x86 CPU where it is installed); this module decides, once per inference size when
the candidate's graph is ready, whether it or torch eager runs that size:

    one warm run each on the same batch (the candidate's first one exports and compiles)
    -> the candidate's score must equal torch's to SCORE_TOLERANCE, else torch (a WARN)
    -> ROUNDS timed runs each, interleaved (the order alternates per round, so a change of
       load hits both), medians compared: the faster runs this size.

Why measure: which one is faster depends on the machine, and here it is close (embedded model
at 576x1024, 2-core x86 CPU: densehybrid-bench backends, idle, separate processes: torch fp32
179 ms, OpenVINO fp32 211 ms; timed here in the node's process, load 1.4: torch 200 ms,
OpenVINO 183 ms). The cost beyond the export and compile, measured there at load 1.4-1.5:
1.2-1.45 s for :func:`measure` (7 runs: torch's warm one, 3 rounds of both), so the first frame
of a size takes about 1.0-1.25 s longer than its one run; a recorded decision costs a JSON read.

The decision is recorded next to the cached graphs (:func:`record_path`), a small JSON keyed
by the weights' digest, the size, precision, score, the graph version, the versions of torch
and of the runtime and the CPU threads (:func:`record_key`), written atomically; a restart
reads it instead of timing again. A record of another key is timed again and replaced; one
that cannot be read or parsed is ignored with a WARN and timed again.
"""

from dataclasses import asdict, dataclass
import importlib
import importlib.metadata
import json
import logging
import math
import os
from pathlib import Path
import platform
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from .backends.base import Backend, Batch
from .graph import GRAPH_VERSION

LOG = logging.getLogger(__name__)
Size = Tuple[int, int]
Outputs = Tuple[torch.Tensor, Optional[torch.Tensor]]
RECORD_FORMAT = 'densehybrid_ros-auto/1'
SCORE_TOLERANCE = 1e-4     # max |score - torch fp32's| on the timed batch
ROUNDS = 3                 # timed runs of each runtime after the warm ones


@dataclass(frozen=True)
class AutoDecision:
    """The runtime ``backend: auto`` runs at one inference size, and the figures behind it."""

    size: Size
    backend: str                    # 'torch' or the candidate: what runs this size
    candidate: str                  # the graph runtime timed against torch eager
    torch_ms: Optional[float]       # median per batch; None where the scores differed
    candidate_ms: Optional[float]
    score_diff: float               # max |candidate score - torch score| on the timed batch
    recorded: bool = False          # read from the record, not timed by this process

    @property
    def scores_differ(self) -> bool:
        """Whether the candidate lost on its scores (torch runs, said with a WARN)."""
        return not self.score_diff <= SCORE_TOLERANCE

    def line(self, precision: str) -> str:
        """Say the decision in one log message: an INFO, a WARN where the scores differ."""
        where = f'backend auto at {self.size[0]}x{self.size[1]}'
        if self.scores_differ:
            text = (f'{where}: {self.candidate} {precision} scores differ from torch '
                    f'{precision} by {self.score_diff:.1e} (more than {SCORE_TOLERANCE:g}): '
                    f'torch')
        else:
            text = (f'{where}: torch {precision} {self.torch_ms:.0f} ms, {self.candidate} '
                    f'{precision} {self.candidate_ms:.0f} ms: {self.backend}')
        return text + (' (recorded, not timed again)' if self.recorded else '')


def record_key(digest: str, size: Size, precision: str, score: str,
               candidate: str) -> Dict[str, Any]:
    """Describe what a recorded decision holds for: the graph, the runtimes' versions, the CPU."""
    return {'format': RECORD_FORMAT, 'weights_sha256': digest,
            'input_size': [int(size[0]), int(size[1])], 'precision': precision, 'score': score,
            'candidate': candidate, 'graph_version': GRAPH_VERSION,
            'versions': {'torch': torch.__version__, candidate: runtime_version(candidate)},
            'machine': platform.machine(), 'cpus': os.cpu_count(),
            'torch_threads': torch.get_num_threads()}


def runtime_version(name: str) -> str:
    """Return the installed version of a runtime package ('unknown' where it does not say)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(name), '__version__', 'unknown'))


def record_path(folder: Path, key: Dict[str, Any]) -> Path:
    """Return the record's file in the export cache ``folder``, next to the graph folders."""
    h, w = key['input_size']
    return folder / (f'auto_{key["weights_sha256"]}_{h}x{w}_{key["precision"]}_'
                     f'{key["score"]}_{key["candidate"]}.json')


def read_record(path: Path, key: Dict[str, Any]) -> Optional[AutoDecision]:
    """Read the decision recorded for ``key``; None where there is none (or another key's)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:          # unreadable, not JSON, not UTF-8
        return _unreadable(path, exc)
    try:
        if data['key'] != key:
            return None                           # other versions or threads: timed again
        decision = AutoDecision(tuple(key['input_size']), data['backend'], key['candidate'],
                                _ms(data['torch_ms']), _ms(data['candidate_ms']),
                                float(data['score_diff']), recorded=True)
        if decision.backend not in ('torch', key['candidate']):
            raise ValueError(f'backend {decision.backend!r} is neither torch nor the candidate')
        if decision.scores_differ and decision.backend != 'torch':
            raise ValueError(f'{decision.backend} chosen with scores {decision.score_diff} off')
        if not decision.scores_differ and None in (decision.torch_ms, decision.candidate_ms):
            raise ValueError('a decision on times without the times')
    except (KeyError, TypeError, ValueError) as exc:
        return _unreadable(path, exc)
    return decision


def _ms(value: Any) -> Optional[float]:
    if value is None:
        return None
    ms = float(value)
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f'time {value!r} is not a duration')
    return ms


def _unreadable(path: Path, exc: BaseException) -> None:
    LOG.warning('backend auto: ignoring the unreadable record %s (%s: %s); timing again',
                path, type(exc).__name__, ' '.join(str(exc).split())[:200])
    return None


def write_record(path: Path, key: Dict[str, Any], decision: AutoDecision) -> None:
    """Write the record atomically (a temporary sibling moved over it); a WARN if it cannot."""
    data = {'key': key, 'measured': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            **{name: value for name, value in asdict(decision).items()
               if name in ('backend', 'torch_ms', 'candidate_ms', 'score_diff')}}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
        with os.fdopen(fd, 'w') as f:
            f.write(json.dumps(data, indent=1) + '\n')
        os.replace(tmp, path)
    except OSError as exc:
        LOG.warning('backend auto: cannot record the decision in %s (%s); it is timed again '
                    'at the next start', path, ' '.join(str(exc).split())[:200])
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def measure(size: Size, torch_backend: Backend, torch_batch: Batch, candidate: Backend,
            candidate_batch: Batch, candidate_warm: Outputs,
            rounds: int = ROUNDS) -> Tuple[AutoDecision, Outputs]:
    """Time both runtimes on one batch (the candidate warm already); the winner's outputs.

    ``candidate_warm`` is the candidate's first output on ``candidate_batch`` (its export and
    compile are not timed). Both batches hold the same images, each in its runtime's layout.
    """
    reference = torch_backend.infer(torch_batch)                    # torch's warm run
    diff = (candidate_warm[1] - reference[1]).abs().max().item()
    if not diff <= SCORE_TOLERANCE:               # NaN too: torch, whatever the times
        return AutoDecision(size, 'torch', candidate.name, None, None, diff), reference
    runs = {'torch': (torch_backend, torch_batch), candidate.name: (candidate, candidate_batch)}
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    outputs: Dict[str, Outputs] = {}
    for i in range(rounds):
        for name in list(runs)[::1 if i % 2 == 0 else -1]:
            backend, batch = runs[name]
            start = time.perf_counter()
            outputs[name] = backend.infer(batch)
            seconds[name].append(time.perf_counter() - start)
    torch_ms, candidate_ms = (1e3 * statistics.median(seconds[name]) for name in runs)
    winner = candidate.name if candidate_ms < torch_ms else 'torch'
    return AutoDecision(size, winner, candidate.name, torch_ms, candidate_ms, diff), \
        outputs[winner]
