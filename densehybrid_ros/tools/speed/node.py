"""The live-node part of densehybrid-bench: the node, a publisher and a subscriber, 3 processes.

The bench process starts the node (``densehybrid_ros.ros.main``, as ``densehybrid-node`` does)
plus two helper processes (``publisher`` and ``subscriber``, module ``node_helpers``) on a
private ROS domain with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``, and steers them through JSON
lines on their stdin/stdout:

* publisher: publishes pre-serialized 1280x720 rgb8 frames (only the header stamp is patched, so
  it costs almost no CPU), one on request (lock-step) or a burst at a fixed rate;
* subscriber: takes the node's outputs as serialized bytes (no Python deserialisation), and
  prints one line per frame once every subscribed output with that header stamp arrived:
  ``published`` = the DDS source timestamp of the last output - input stamp (stamp-to-publish)
  and ``latency`` = its arrival - input stamp (plus the delivery, as a user sees it).

Before each lock-step frame the bench process times the bare ``Segmenter`` on the same frame
in the same thread setting while the node idles, so each ratio is of two adjacent timings.

About 440 lines: the three phases (lock-step, one output, overload) share the process
orchestration, so they stay together; the helper processes are in ``node_helpers``.
"""

from concurrent.futures import ThreadPoolExecutor
import json
from pathlib import Path
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .harness import interleave, median, percentile, seconds
from .plan import Log
from ...core.outputs import needs, OUTPUTS, output_topics
from ...core.transport import child_env

INPUT_TOPIC = '/bench/image'
OUTPUT_TOPICS = output_topics([INPUT_TOPIC])[INPUT_TOPIC]     # /bench/densehybrid/<output>
READY_TIMEOUT_S = 180.0
# Reliable input: best-effort 2.7 MB frames get lost in bursts on a loaded host (whole seconds
# without a frame after an overload phase), which would measure the transport, not the node.
INPUT_RELIABILITY = 'reliable'


# ------------------------------------------------------------------------------ shared helpers
def make_frames(count: int, size: Tuple[int, int], seed: int) -> List[np.ndarray]:
    """Make ``count`` synthetic road scenes (H x W x 3 uint8 RGB) at ``size`` (h, w)."""
    import cv2

    from ...data.synthetic import make_scene

    h, w = size
    small = (max(8, h // 2), max(8, w // 2))       # draw at half size: 4x faster, then upscale
    frames = []
    for i in range(count):
        image = make_scene(seed + i, small)['image']
        frames.append(np.ascontiguousarray(cv2.resize(image, (w, h),
                                                      interpolation=cv2.INTER_LINEAR)))
    return frames


def ros_env(domain_id: int, threads: Optional[int] = None) -> Dict[str, str]:
    """Environment for every process of the live bench: private domain, large-data transport."""
    env = child_env(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)       # deprecated in Jazzy; the range above replaces it
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


class Helper:
    """A child process spoken to with JSON lines; its stdout is read by a thread into a queue."""

    def __init__(self, name: str, cmd: List[str], env: Dict[str, str], log_dir: Path,
                 stdin: bool = True) -> None:
        self.name = name
        self.log_path = log_dir / f'{name}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, env=env, text=True, bufsize=1,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._log)
        self.lines: 'queue.Queue[Dict[str, Any]]' = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self._log.write(f'[stdout] {line}\n')

    def send(self, obj: Dict[str, Any]) -> None:
        """Write one command line to the process."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + '\n')
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> Optional[Dict[str, Any]]:
        """Next line from the process, or None after ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, key: str, timeout: float) -> Dict[str, Any]:
        """Wait for a line holding ``key``; raise with the log tail if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            line = self.recv(0.2)
            if line is not None and key in line:
                return line
        raise RuntimeError(f'{self.name}: no {key!r} within {timeout:.0f} s'
                           f'{self.log_tail()}')

    def check_alive(self) -> None:
        """Raise with the log tail if the process exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f'{self.name} exited with {self.proc.returncode}'
                               f'{self.log_tail()}')

    def log_tail(self, lines: int = 15) -> str:
        """Return the last lines of the process's stderr log."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors='replace').strip().splitlines()[-lines:]
        except OSError:
            return ''
        return ('\n  ' + '\n  '.join(text)) if text else ''

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT, then SIGKILL after ``timeout`` (this process only, by its pid)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()


# ------------------------------------------------------------------------------ orchestration
class LiveNodeBench:
    """Runs the node phases and the bare-Segmenter phases interleaved; see the module doc."""

    def __init__(self, checkpoint: Path, frames: List[np.ndarray], frame_count: int,
                 inference_width: int, device: str, precision: str, threads: Optional[int],
                 domain_id: int, work_dir: Path, log: Log, warmup: int = 2) -> None:
        self.checkpoint = checkpoint
        self.frames = frames
        self.frame_count = frame_count
        self.inference_width = inference_width
        self.device, self.precision, self.threads = device, precision, threads
        self.domain_id = domain_id
        self.work_dir = work_dir
        self.log = log
        self.warmup = warmup
        self.env = ros_env(domain_id, threads)
        self.helpers: List[Helper] = []
        self.node: Optional[Helper] = None
        self.pub: Optional[Helper] = None
        self.sub: Optional[Helper] = None
        self.diagnostics: Dict[str, str] = {}

    # ---------------------------------------------------------------- processes
    def _helper(self, role: str, *args: str) -> Helper:
        cmd = [sys.executable, '-m', 'densehybrid_ros.tools.speed.node_helpers', role, *args]
        helper = Helper(role, cmd, self.env, self.work_dir)
        self.helpers.append(helper)
        return helper

    def start(self) -> None:
        """Start the node, the publisher and an all-outputs subscriber; wait until matched."""
        frames_file = self.work_dir / 'frames.npy'
        np.save(frames_file, np.stack(self.frames))
        # torch, as the bare Segmenter it is compared with (the node's default is auto)
        cmd = [sys.executable, '-m', 'densehybrid_ros.ros.main', '--autostart', '--ros-args',
               '-p', f'checkpoint:={self.checkpoint}', '-p', f'input_topics:=[{INPUT_TOPIC}]',
               '-p', f'device:={self.device}', '-p', f'precision:={self.precision}',
               '-p', 'backend:=torch',
               '-p', f'inference_width:={self.inference_width}',
               '-p', f'input_reliability:={INPUT_RELIABILITY}']
        self.node = Helper('node', cmd, self.env, self.work_dir, stdin=False)
        self.helpers.append(self.node)
        self.pub = self._helper('publisher', '--frames-file', str(frames_file))
        self.sub = self._subscriber(list(OUTPUTS))
        self.pub.send({'cmd': 'wait_subscribers', 'timeout': READY_TIMEOUT_S})
        self._wait(self.pub, 'subscribers', READY_TIMEOUT_S)

    def _subscriber(self, outputs: Sequence[str]) -> Helper:
        sub = self._helper('subscriber', '--topics',
                           *[OUTPUT_TOPICS[name] for name in outputs])
        self._wait(sub, 'ready', READY_TIMEOUT_S)
        return sub

    def resubscribe(self, outputs: Sequence[str]) -> None:
        """Replace the subscriber process by one listening to ``outputs`` only."""
        assert self.sub is not None
        self.sub.stop()
        self.helpers.remove(self.sub)
        self.sub = self._subscriber(outputs)
        time.sleep(1.0)                # let the node see the old subscriptions disappear

    def _wait(self, helper: Helper, key: str, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.node is not None:
                self.node.check_alive()
            try:
                return helper.wait_for(key, min(5.0, max(0.1, deadline - time.monotonic())))
            except RuntimeError:
                helper.check_alive()
                if time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        """Stop every process this bench started (each by its own pid)."""
        for helper in reversed(self.helpers):
            if helper is self.pub and helper.proc.poll() is None:
                try:
                    helper.send({'cmd': 'quit'})
                except OSError:
                    pass
            helper.stop()
        self.helpers = []

    # ---------------------------------------------------------------- measurements
    def _collect(self, stamps: set, until: float) -> Dict[int, Dict[str, float]]:
        """Read subscriber lines until ``until`` (monotonic) or every stamp is in."""
        assert self.sub is not None
        got: Dict[int, Dict[str, float]] = {}
        while time.monotonic() < until and not stamps.issubset(got):
            line = self.sub.recv(min(0.2, max(0.0, until - time.monotonic())))
            if line is None:
                if self.node is not None:
                    self.node.check_alive()
                continue
            if 'diag' in line:
                self._diag(line['diag'])
            elif 'stamp' in line and line['stamp'] in stamps:
                got[line['stamp']] = line
        return got

    def lock_step(self, count: int, timeout: float,
                  before: Optional[Callable[[int], float]] = None) -> Dict[str, Any]:
        """Publish ``count`` frames one at a time, each after the previous one's outputs.

        ``before(i)``, if given, runs (and times something) while the node idles before frame
        ``i``; it returns seconds, paired with that frame's latencies.
        """
        assert self.pub is not None
        out: Dict[str, Any] = {'published': [], 'received': [], 'bare': [], 'lost': 0}
        for i in range(count):
            bare = before(i) if before is not None else None
            self.pub.send({'cmd': 'pub', 'index': i})
            stamp = self._wait(self.pub, 'stamp', 30.0)['stamp']
            got = self._collect({stamp}, time.monotonic() + timeout)
            if stamp in got:
                out['published'].append(float(got[stamp]['published']))
                out['received'].append(float(got[stamp]['latency']))
                out['bare'].append(bare)
            else:
                out['lost'] += 1
            time.sleep(0.05)
        return out

    def at_rate(self, hz: float, count: int, drain: float) -> Dict[str, Any]:
        """Publish ``count`` frames at ``hz``; latencies of the frames the node processed."""
        assert self.pub is not None
        self.pub.send({'cmd': 'rate', 'hz': hz, 'count': count})
        stamps: set = set()
        got: Dict[int, Dict[str, float]] = {}
        deadline = time.monotonic() + count / hz + 60.0
        while time.monotonic() < deadline:     # collect while publishing
            line = self.pub.recv(0.0)
            if line is not None and 'stamps' in line:
                stamps = set(line['stamps'])
                break
            got.update(self._collect_any(0.1))
        got.update(self._collect_any(drain))
        lat = [float(v['latency']) for k, v in got.items() if k in stamps]
        return {'rate_hz': hz, 'published': len(stamps), 'processed': len(lat),
                'p50_s': percentile(lat, 50), 'p95_s': percentile(lat, 95),
                'max_s': max(lat) if lat else float('nan')}

    def _diag(self, values: Dict[str, str]) -> None:
        self.diagnostics = values

    def _collect_any(self, seconds: float) -> Dict[int, Dict[str, float]]:
        assert self.sub is not None
        got: Dict[int, Dict[str, float]] = {}
        until = time.monotonic() + seconds
        while True:
            left = until - time.monotonic()
            line = self.sub.recv(min(0.2, max(0.0, left)))
            if line is None:
                if left <= 0:
                    return got
                continue
            if 'diag' in line:
                self._diag(line['diag'])
            elif 'stamp' in line:
                got[line['stamp']] = line


class BareWorker:
    """One persistent thread that runs the bare Segmenter, as the node's inference thread does.

    Under CPU contention OpenMP's spin-waiting makes the main thread several times slower than
    a worker thread, and a fresh thread per call pays for a new OpenMP team each time; either
    would flatter the node.
    """

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='bench-bare')

    def times(self, frames: List[np.ndarray], count: int,
              outputs_sets: Sequence[Sequence[str]]) -> List[List[float]]:
        """Time ``segmenter([frame], outputs)`` per outputs set, interleaved frame by frame."""
        return self._pool.submit(self._times, frames, count, outputs_sets).result()

    def _times(self, frames: List[np.ndarray], count: int,
               outputs_sets: Sequence[Sequence[str]]) -> List[List[float]]:
        def run(outputs: Sequence[str]) -> Callable[[int], float]:
            return lambda i: seconds(lambda: self.segmenter([frames[i % len(frames)]],
                                                            outputs=outputs))

        # Round i is frame i, its outputs sets always in the given order.
        return interleave([run(o) for o in outputs_sets], count, pinned=len(outputs_sets))

    def close(self) -> None:
        """Stop the thread."""
        self._pool.shutdown(wait=True)


def run_live_bench(checkpoint: Path, frames: List[np.ndarray], frame_count: int,
                   inference_width: int, device: str, precision: str,
                   threads: Optional[int], domain_id: int, log: Log,
                   overload_factor: float = 3.0, calm_factor: float = 0.5) -> Dict[str, Any]:
    """Measure node_overhead (all outputs, anomaly_score only) and overload_latency.

    In lock-step, each frame is first run through the bare Segmenter in this process (the node
    idles), then published to the node: ``node_overhead`` is the median over these pairs of
    stamp-to-publish (the DDS source timestamp of the frame's last output - its input stamp) /
    bare Segmenter time. The stamp-to-received latency at the subscriber is reported next to
    it. The overload phase runs with only anomaly_score subscribed.
    """
    from ...deploy.segmenter import Segmenter

    worker = BareWorker(Segmenter(checkpoint, device=device, precision=precision,
                                  inference_size=inference_width or None))
    all_needs = sorted(needs(OUTPUTS))
    score_needs = sorted(needs(['anomaly_score']))
    worker.times(frames, 2, (all_needs, score_needs))                       # warm-up

    def bare(needs: List[str]) -> Callable[[int], float]:
        return lambda i: worker.times([frames[i % len(frames)]], 1, (needs,))[0][0]

    result: Dict[str, Any] = {'frames': frame_count, 'domain_id': domain_id,
                              'image_size': f'{frames[0].shape[1]}x{frames[0].shape[0]}',
                              'inference_width': inference_width,
                              'input_reliability': INPUT_RELIABILITY}
    with tempfile.TemporaryDirectory(prefix='densehybrid-bench-') as tmp:
        bench = LiveNodeBench(checkpoint, frames, frame_count, inference_width, device,
                              precision, threads, domain_id, Path(tmp), log)
        try:
            log('live node: starting node, publisher and subscriber')
            t0 = time.monotonic()
            bench.start()
            result['node_start_s'] = time.monotonic() - t0
            first = worker.times(frames, 1, (all_needs,))[0]
            timeout = max(5.0, 10.0 * median(first))
            bench.lock_step(bench.warmup, timeout)
            log(f'live node: {frame_count} x (bare Segmenter, node), all outputs subscribed')
            all_outputs = bench.lock_step(frame_count, timeout, bare(all_needs))
            log(f'live node: {frame_count} x (bare Segmenter, node), only anomaly_score')
            bench.resubscribe(['anomaly_score'])
            bench.lock_step(bench.warmup, timeout)
            score_only = bench.lock_step(frame_count, timeout, bare(score_needs))
            period = median(score_only['published'])
            if not np.isfinite(period):
                raise RuntimeError('the node published nothing in lock-step'
                                   + (bench.node.log_tail() if bench.node else ''))
            log(f'live node: frames at {calm_factor:g}x then {overload_factor:g}x the '
                f'processing rate ({1 / period:.2f} Hz)')
            calm = bench.at_rate(calm_factor / period, frame_count, drain=2 * period + 1.0)
            busy = bench.at_rate(overload_factor / period,
                                 max(frame_count, int(round(overload_factor * frame_count))),
                                 drain=2 * period + 1.0)
            diag = dict(bench.diagnostics)
        finally:
            bench.close()
            worker.close()
    for key, run, outputs in (('node_overhead', all_outputs, list(OUTPUTS)),
                              ('node_overhead_score_only', score_only, ('anomaly_score',))):
        ratios = [p / b for p, b in zip(run['published'], run['bare'])]
        received = [r / b for r, b in zip(run['received'], run['bare'])]
        result[key] = {
            'value': median(ratios),
            'p25': percentile(ratios, 25), 'p75': percentile(ratios, 75),
            'node_latency_ms': 1e3 * median(run['published']),
            'bare_segmenter_ms': 1e3 * median(run['bare']),
            'received_latency_ms': 1e3 * median(run['received']),
            'received_latency_p95_ms': 1e3 * percentile(run['received'], 95),
            'received_ratio': median(received),
            'frames': len(ratios), 'lost': run['lost'], 'outputs': list(outputs)}
    result['overload_latency'] = {
        'value': busy['p95_s'] / calm['p95_s'],
        'processing_period_ms': 1e3 * period, 'outputs': ['anomaly_score'],
        'calm': _ms(calm), 'overload': _ms(busy),
        'factors': [calm_factor, overload_factor],
        'node_diagnostics': {k: diag.get(k) for k in ('frames_received', 'frames_processed',
                                                      'frames_dropped', 'latency_ms_mean')},
    }
    return result


def _ms(stats: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: v for k, v in stats.items() if not k.endswith('_s')}
    out.update({k[:-2] + '_ms': 1e3 * v for k, v in stats.items() if k.endswith('_s')})
    return out
