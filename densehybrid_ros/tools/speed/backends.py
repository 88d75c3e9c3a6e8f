"""Time inference backends side by side, one process per runtime, with accuracy vs torch fp32.

Each (backend, precision) runs in its own worker process (runtimes sharing a process disturbed
each other's timings by up to 10x), which builds its backend, warms up and then waits. The
parent asks the workers in turn for one timed batch (rotating the order every round), so only
one runs at a time and a load drifting on the machine hits all alike. ``ms`` is the median per
backend; ``speedup`` the median over rounds of torch fp32's time / this time (paired). Each
worker also answers on fixed smooth frames, and the parent compares its labels and score with
torch fp32: ``label_agreement``, ``score_max_abs_diff``. With ``--ap-scenes N`` each worker also
scores N held-out synthetic scenes with unseen anomalies (``ap``, AP of the anomaly score).

JSON: ``backends.<arch>.<backend>.<precision>`` = {ms, speedup, label_agreement,
score_max_abs_diff[, ap]}. int8 is NNCF-quantised on synthetic calibration scenes first.

Without ``--archs`` or ``--checkpoint`` it times the embedded model (the README's table);
``--archs`` times random weights of those architectures. ``auto`` is the node's default
runtime, resolved in its worker as the node resolves it. ``--frame H W`` times the Segmenter
on H x W camera frames as the node runs it (preprocessing, the model at its inference size,
resizing back) instead of the runtime on inference-size batches.

Duration on this 2-core CPU: the defaults (embedded model, five runtimes at 512x1024, 10
rounds) about 3-5 min, an estimate from one size (``densehybrid-bench auto`` at 576x1024: 8 s
for the torch worker, about 35 s for an exporting one on the busy machine), not a timed full
run; NNCF's int8 quantisation is most of the rest. ``--archs ldn121`` adds about 9 min (the
old default, ldn121 and the half-width ladder, ran 12 min).

  densehybrid-bench backends --size 512 1024 --threads 2
  densehybrid-bench backends --archs ldn121 --size 512 1024 --threads 2
  densehybrid-bench auto          # the node's default (auto) against torch fp32 on 720p frames
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .agreement import agreement
from .harness import interleave, median, seconds
from .plan import Log
from ...deploy.runtimes import AUTO

DEFAULT_RUNS = (('torch', 'fp32'), ('onnxruntime', 'fp32'), ('openvino', 'fp32'),
                ('openvino', 'bf16'), ('openvino', 'int8'), ('auto', 'fp32'))
EMBEDDED = 'embedded'          # the arch key of the embedded model's figures
CALIBRATION_SEED, AP_SEED = 70_000, 80_000      # synthetic scenes apart from training seeds
PROG = 'densehybrid-bench backends'


def runs_for(backends: Sequence[str], precisions: Optional[Sequence[str]] = None
             ) -> List[Tuple[str, str]]:
    """(backend, precision) pairs to time: torch fp32 first (the reference), then the rest."""
    runs = [r for r in DEFAULT_RUNS if r[0] in backends
            and (precisions is None or r[1] in precisions)]
    return [('torch', 'fp32')] + [r for r in runs if r != ('torch', 'fp32')]


def bench_backends(archs: Sequence[str], backends: Sequence[str], size: Tuple[int, int],
                   rounds: int = 10, threads: int = 0, checkpoint: Optional[str] = None,
                   seed: int = 0, ap_scenes: int = 0, precisions: Optional[Sequence[str]] = None,
                   log: Log = lambda text: None, frame: Optional[Tuple[int, int]] = None
                   ) -> Dict[str, Any]:
    """Figures per arch / backend / precision (see the module docstring).

    ``frame``: time the Segmenter on camera frames of this size instead (``--frame``).
    """
    out: Dict[str, Any] = {}
    for arch in archs:
        with tempfile.TemporaryDirectory(prefix='dh_bench_') as tmp:
            workers: List[_Worker] = []
            try:
                for b, p in runs_for(backends, precisions):    # one at a time: exports are big
                    log(f'{arch}: starting {b} {p}')
                    workers.append(_Worker(arch, b, p, size, threads, checkpoint, seed,
                                           ap_scenes, tmp, frame))
                    workers[-1].ready()
                # Round i starts with the i-th worker: each runtime in each place in turn.
                times = interleave([lambda i, w=w: w.time_one() for w in workers], rounds)
                results = [w.finish() for w in workers]
            finally:
                for w in workers:
                    w.close()
        ref_times, ref_outputs = times[0], results[0]['outputs']
        per_arch: Dict[str, Any] = {}
        for w, w_times, result in zip(workers, times, results):
            figures = {
                'ms': median(w_times),
                'speedup': median([r / t for r, t in zip(ref_times, w_times)]),
                **agreement(*result['outputs'], *ref_outputs),
            }
            figures.update({k: result[k] for k in ('ap', 'threshold', 'runs', 'inference_size')
                            if k in result})
            per_arch.setdefault(w.backend, {})[w.precision] = figures
            log(f'{arch} {w.backend:12s} {w.precision}: {figures["ms"]:8.1f} ms, x'
                f'{figures["speedup"]:.2f}, labels {figures["label_agreement"]:.5f}, score '
                f'|d| {figures["score_max_abs_diff"]:.2e}'
                + (f', AP {result["ap"]:.4f}' if 'ap' in result else ''))
        out[arch] = per_arch
    return out


class _Worker:
    """A worker process for one backend and precision, driven line by line over stdin."""

    def __init__(self, arch: str, backend: str, precision: str, size: Tuple[int, int],
                 threads: int, checkpoint: Optional[str], seed: int, ap_scenes: int,
                 tmp: str, frame: Optional[Tuple[int, int]] = None) -> None:
        self.arch, self.backend, self.precision = arch, backend, precision
        self.key = f'{backend}/{precision}'
        self.npz = os.path.join(tmp, f'{backend}_{precision}.npz')
        cmd = [sys.executable, '-m', 'densehybrid_ros.tools.speed.bench', 'backends', '--worker',
               json.dumps({'arch': arch, 'backend': backend, 'precision': precision,
                           'size': list(size), 'threads': threads, 'checkpoint': checkpoint,
                           'seed': seed, 'ap_scenes': ap_scenes, 'npz': self.npz,
                           'cache': os.path.join(tmp, 'cache'),
                           'frame': list(frame) if frame else None})]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def _ask(self, command: str) -> Dict[str, Any]:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f'bench worker {self.key} died (exit {self.proc.wait()})')
        answer = json.loads(line)
        if 'error' in answer:
            raise RuntimeError(f'bench worker {self.key}: {answer["error"]}')
        return answer

    def ready(self) -> None:
        self._ask('ready')

    def time_one(self) -> float:
        return float(self._ask('time')['ms'])

    def finish(self) -> Dict[str, Any]:
        answer = self._ask('finish')
        data = np.load(self.npz)
        answer['outputs'] = (data['labels'], data['score'])
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def smooth_frames(size: Tuple[int, int], seed: int, n: int = 2) -> np.ndarray:
    """N x 3 x h x w float32 smooth random frames (blocks of 16 px, then blurred)."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3), np.uint8)
        image = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST),
                                 (0, 0), 3)
        out.append(image.transpose(2, 0, 1).astype(np.float32) / 255.0)
    return np.stack(out)


def _worker(spec: Dict[str, Any]) -> int:
    """Worker process: build the backend, then answer ready / time / finish on stdin."""
    import torch

    from ...deploy.backends import auto_backend, make_backend
    from ...deploy.preprocess import inference_shape
    from ...deploy.segmenter import Segmenter
    from ...models.checkpoint import load_checkpoint
    from ...deploy.artifacts import write_artifact
    from ...models import build_model
    from ...models.fusion import fuse_for_inference

    # Replies go to the real stdout; anything else printed (exporters, NNCF, C++ runtimes)
    # is sent to stderr so that it cannot break the line protocol.
    channel = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(**kw: Any) -> None:
        channel.write(json.dumps(kw) + '\n')
        channel.flush()

    threads = int(spec['threads'])
    if threads:
        torch.set_num_threads(threads)
    size = tuple(spec['size'])
    frame = tuple(spec['frame']) if spec.get('frame') else None
    answer: Dict[str, Any] = {'ok': True}
    try:
        torch.manual_seed(spec['seed'])      # random weights: speed does not depend on them
        model, meta = load_checkpoint(spec['checkpoint']) if spec['checkpoint'] else \
            (build_model(spec['arch'], 19), {})
        model = fuse_for_inference(model.eval())
        name = spec['backend']
        if name == AUTO and not frame:       # a bare runtime: the rule's candidate
            name = auto_backend(spec['precision'], 'cpu').backend
            answer['runs'] = name
        artifacts = []
        if spec['precision'] == 'int8':
            from ...data.synthetic import make_scene
            from ...deploy.quantize import CalibrationFrame
            scenes = [make_scene(CALIBRATION_SEED + i, size, anomaly_family='train')
                      for i in range(16)]
            frames = [CalibrationFrame(sc['image'], sc['anomaly']) for sc in scenes]
            artifacts = [write_artifact(model, meta, 'openvino', size,
                                        Path(spec['cache']) / 'int8', 'int8',
                                        calibration_frames=frames)]
        if frame:       # the Segmenter on camera frames, as the node runs it
            os.environ['DENSEHYBRID_CACHE'] = spec['cache']
            seg = Segmenter.from_model(model, meta, device='cpu', precision=spec['precision'],
                                       backend=name, artifacts=artifacts)
            x = smooth_frames(frame, spec['seed'], 1)[0].transpose(1, 2, 0)
            x = (x * 255).round().astype(np.uint8)                         # H x W x 3 RGB

            def infer(batch: Any) -> Any:
                results = seg(list(batch), outputs=('semantic', 'score'))
                return (torch.from_numpy(np.stack([r.semantic for r in results])),
                        torch.from_numpy(np.stack([r.score for r in results])))
            run = (lambda: infer([x]))                                   # noqa: E731
            answer['inference_size'] = list(inference_shape(
                frame, seg.inference_size, seg.max_inference_pixels, seg.max_native_width))
        else:
            backend = make_backend(name, model=model, meta=meta, device='cpu',
                                   precision=spec['precision'], artifacts=artifacts,
                                   threads=threads, cache=spec['cache'])
            x = torch.from_numpy(smooth_frames(size, spec['seed'], 1))
            infer, run = backend.infer, (lambda: backend.infer(x))       # noqa: E731
        for _ in range(2):
            run()                                               # compile / export + warm up
        if frame and spec['backend'] == AUTO:
            answer['runs'] = seg.backend_name   # timed on its first frame, as the node does
    except Exception as exc:       # reported to the parent as one line, like any tool error
        for line in sys.stdin:
            reply(error=f'{type(exc).__name__}: {exc}')
        return 1
    for line in sys.stdin:
        command = line.strip()
        if command == 'ready':
            reply(ok=True)
        elif command == 'time':
            reply(ms=1e3 * seconds(run))
        elif command == 'finish':
            check = smooth_frames(frame or size, spec['seed'] + 1)           # N x 3 x h x w
            labels, score = infer(
                (check.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8) if frame
                else torch.from_numpy(check))
            np.savez(spec['npz'], labels=labels.numpy(), score=score.numpy())
            if spec['ap_scenes'] and not frame:
                answer['ap'] = _scene_ap(backend, size, int(spec['ap_scenes']))
            if not frame and backend.calibration:
                answer['threshold'] = backend.calibration.get('threshold')
            reply(**answer)
    return 0


def _scene_ap(backend: Any, size: Tuple[int, int], n: int) -> float:
    """AP of the anomaly score over ``n`` held-out synthetic scenes (unseen anomaly family)."""
    import torch

    from ...data.synthetic import make_scene
    from ...metrics.anomaly import AnomalyMetrics
    metrics = AnomalyMetrics()
    for i in range(n):
        scene = make_scene(AP_SEED + i, size, anomaly_family='eval')
        x = torch.from_numpy(scene['image'].transpose(2, 0, 1)[None].copy())  # uint8
        _, score = backend.infer(x)
        metrics.update(score[0].numpy(), scene['anomaly'])
    return float(metrics.compute()['ap'])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench backends``."""
    p.add_argument('--archs', nargs='*', help='random weights of these architectures '
                   '(default: the embedded model, trained)')
    p.add_argument('--backends', nargs='*', default=['torch', 'onnxruntime', 'openvino'],
                   help="runtimes (default: torch onnxruntime openvino; auto: the node's "
                   'default, as it resolves here)')
    p.add_argument('--precisions', nargs='*', help='only these precisions (default: all)')
    p.add_argument('--checkpoint', help='this checkpoint (its arch) instead of the embedded '
                   'model')
    p.add_argument('--size', nargs=2, type=int, default=[512, 1024], metavar=('H', 'W'),
                   help='inference size of the graphs (default 512 1024)')
    p.add_argument('--frame', nargs=2, type=int, metavar=('H', 'W'),
                   help='time the Segmenter on H x W camera frames, as the node runs it')
    p.add_argument('--rounds', type=int, default=10, help='timed rounds (default 10)')
    p.add_argument('--threads', type=int, default=0, help='threads per runtime (0: default)')
    p.add_argument('--ap-scenes', type=int, default=0, help='held-out scenes for AP')
    p.add_argument('--seed', type=int, default=0, help='seed of the weights and frames '
                   '(default 0)')
    p.add_argument('--json', metavar='FILE', help='write {"backends": ...} here')
    p.add_argument('--worker', help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench backends`` (also the worker processes', with --worker)."""
    if args.worker:
        return _worker(json.loads(args.worker))
    checkpoint, archs = args.checkpoint, args.archs
    if not checkpoint and not archs:
        from ...core.paths import default_checkpoint
        checkpoint = str(default_checkpoint())
    start = time.monotonic()
    try:
        if checkpoint:
            archs = [_arch_of(checkpoint)]
        figures = bench_backends(archs, args.backends, tuple(args.size), args.rounds,
                                 args.threads, checkpoint, args.seed, args.ap_scenes,
                                 args.precisions, log=_clock(start),
                                 frame=tuple(args.frame) if args.frame else None)
    except (RuntimeError, ValueError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    result = {'backends': figures, 'size': list(args.size), 'threads': args.threads,
              'rounds': args.rounds, 'checkpoint': checkpoint, 'frame': args.frame}
    print(json.dumps(result, indent=1))
    _write(args.json, result)
    return 0


def _arch_of(checkpoint: str) -> str:
    from ...models.checkpoint import load_checkpoint
    return load_checkpoint(checkpoint)[0].arch


def _clock(start: float) -> Log:
    return lambda text: print(f'[{time.monotonic() - start:6.1f} s] {text}', file=sys.stderr,
                              flush=True)


def _write(path: Optional[str], result: Dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1) + '\n')


AUTO_DOC = '''The node's default runtime (backend auto) against torch eager fp32, on camera frames.

Both run the Segmenter as the node does (preprocessing, the model at the node's inference
size, the maps resized back to the frame) in a worker process each, timed in interleaved
rounds by the harness of ``densehybrid-bench backends``; auto is resolved in its worker as the
node resolves it. Prints the speed-up (median over rounds of torch time / auto time, paired)
and the largest score difference on two smooth frames. About 2 min on 2 cores (the export of
the embedded model at 576x1024 is most of it).

  densehybrid-bench auto                       # embedded model, 1280x720 frames, 20 rounds
'''


def add_auto_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench auto``."""
    p.add_argument('--checkpoint', help='this checkpoint (default: the embedded model)')
    p.add_argument('--frame', nargs=2, type=int, default=[720, 1280], metavar=('H', 'W'),
                   help='camera frame size (default 720 1280)')
    p.add_argument('--rounds', type=int, default=20, help='timed rounds (default 20)')
    p.add_argument('--threads', type=int, default=0, help='threads per runtime (0: default, '
                   "the node's)")
    p.add_argument('--seed', type=int, default=0, help='seed of the weights and frames '
                   '(default 0)')
    p.add_argument('--json', metavar='FILE', help='write {"auto": ...} here')


def run_auto(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench auto``: one line with the speed-up and the score difference."""
    from ...core.paths import default_checkpoint

    checkpoint = args.checkpoint or str(default_checkpoint())
    frame = (int(args.frame[0]), int(args.frame[1]))
    start = time.monotonic()
    try:
        arch = _arch_of(checkpoint)
        figures = bench_backends([arch], ['torch', AUTO], frame, args.rounds, args.threads,
                                 checkpoint, args.seed, precisions=['fp32'],
                                 log=_clock(start), frame=frame)[arch]
    except (RuntimeError, ValueError) as exc:
        print(f'densehybrid-bench auto: error: {exc}', file=sys.stderr)
        return 2
    ref, auto = figures['torch']['fp32'], figures[AUTO]['fp32']
    size = auto.get('inference_size') or frame
    print(f'auto ({auto.get("runs", "?")} fp32) vs torch eager fp32, {arch}, Segmenter on '
          f'{frame[1]}x{frame[0]} frames (inference {size[1]}x{size[0]}), {args.rounds} '
          f'interleaved rounds: torch {ref["ms"]:.1f} ms, auto {auto["ms"]:.1f} ms, speed-up '
          f'x{auto["speedup"]:.2f}; score max |d| {auto["score_max_abs_diff"]:.1e}, labels '
          f'{auto["label_agreement"]:.5f}')
    _write(args.json, {'auto': figures, 'checkpoint': checkpoint, 'frame': list(frame),
                       'rounds': args.rounds, 'threads': args.threads})
    return 0
