"""GPU check (``densehybrid-bench gpu-check``): set up the GPU runtimes, check equivalence, fps.

``make gpu-check`` runs ``densehybrid-bench gpu-check --setup``. On a machine with a CUDA GPU,
as one short run: installs requirements/gpu.txt (with ``--setup``: onnxruntime-gpu replaces the
CPU onnxruntime wheel, plus TensorRT), then at 1024x2048, batch 1, for the embedded model (or
``--checkpoint`` / ``--arch``), times

* torch eager fp32 (the reference) and torch fp16 (autocast),
* ONNX Runtime, CUDA execution provider, fp32 graph,
* ONNX Runtime, TensorRT execution provider with fp16 enabled (the fp16-safe score graph),

and reports fps, labels agreement and score max |d| against torch fp32 on the same frames. A
runtime that cannot load (library versions, missing provider) is reported on its row with the
reason; the others still run. Without CUDA it says so and exits with code 3.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from .agreement import agreement
from .harness import median_seconds

NO_CUDA_EXIT = 3
PROG = 'densehybrid-bench gpu-check'
REQUIREMENTS = Path(__file__).resolve().parents[3] / 'requirements' / 'gpu.txt'


def setup_runtimes(log: Callable[[str], None]) -> None:
    """Swap the CPU onnxruntime for onnxruntime-gpu and install TensorRT (requirements/gpu.txt)."""
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    log('replacing onnxruntime by onnxruntime-gpu and installing TensorRT (gpu.txt)')
    subprocess.run(pip + ['uninstall', '--yes', '--quiet', 'onnxruntime'], check=False)
    subprocess.run(pip + ['install', '--quiet', '-r', str(REQUIREMENTS)], check=True)


def _trt_session(graph: str, cache: str) -> Any:
    import onnxruntime as ort
    if hasattr(ort, 'preload_dlls'):
        ort.preload_dlls()           # CUDA / cuDNN / TensorRT libraries from the pip wheels
    providers = [('TensorrtExecutionProvider', {'trt_fp16_enable': True,
                                                'trt_engine_cache_enable': True,
                                                'trt_engine_cache_path': cache}),
                 'CUDAExecutionProvider']
    session = ort.InferenceSession(graph, providers=providers)
    if session.get_providers()[0] != 'TensorrtExecutionProvider':
        raise RuntimeError(f'TensorRT provider did not load (got {session.get_providers()}; '
                           f'available: {ort.get_available_providers()})')
    return session


def check(model: Any, meta: Dict[str, Any], size: Tuple[int, int], repeats: int,
          log: Callable[[str], None]) -> Dict[str, Any]:
    """Rows of fps and agreement with torch fp32 (see the module docstring)."""
    import torch

    from ...deploy.backends import make_backend
    from ...deploy.graph import export_onnx
    from .backends import smooth_frames
    x = torch.from_numpy(smooth_frames(size, 0, 1))
    sync = torch.cuda.synchronize
    rows: Dict[str, Any] = {}
    ref: Optional[Tuple[Any, Any]] = None       # torch fp32 labels and score
    with tempfile.TemporaryDirectory(prefix='dh_gpu_') as tmp:
        graph = str(export_onnx(model, size, Path(tmp) / 'g.onnx'))
        log(f'exported {model.arch} at {size[0]}x{size[1]}')
        runners: List[Tuple[str, Callable[[], Callable[[], Any]]]] = [
            ('torch fp32', lambda: _torch(make_backend, model, meta, 'fp32', x)),
            ('torch fp16', lambda: _torch(make_backend, model, meta, 'fp16', x)),
            ('onnxruntime cuda fp32', lambda: _ort_cuda(graph, x)),
            ('onnxruntime tensorrt fp16', lambda: _ort_session(_trt_session(graph, tmp), x)),
        ]
        for name, build in runners:
            try:
                run = build()
                labels, score = run()
                ms = 1e3 * median_seconds(run, repeats, warmup=2, sync=sync)
            except Exception as exc:      # a runtime that does not load here: say why
                rows[name] = {'error': f'{type(exc).__name__}: {str(exc)[:300]}'}
                log(f'{name}: unavailable: {rows[name]["error"]}')
                continue
            if ref is None:
                ref = (labels, score)
            rows[name] = {'ms': ms, 'fps': 1e3 / ms, **agreement(labels, score, *ref)}
            log(f'{name}: {rows[name]["fps"]:.1f} fps, labels '
                f'{rows[name]["label_agreement"]:.5f}, score |d| '
                f'{rows[name]["score_max_abs_diff"]:.2e}')
    return rows


def _torch(make_backend: Any, model: Any, meta: Dict[str, Any], precision: str,
           x: Any) -> Callable[[], Any]:
    backend = make_backend('torch', model=model, meta=meta, device='cuda', precision=precision)
    xd = x.cuda()

    def run() -> Any:
        labels, score = backend.infer(xd)
        return labels.cpu(), score.cpu()
    return run


def _ort_cuda(graph: str, x: Any) -> Callable[[], Any]:
    import onnxruntime as ort
    if hasattr(ort, 'preload_dlls'):
        ort.preload_dlls()
    session = ort.InferenceSession(graph, providers=['CUDAExecutionProvider'])
    if session.get_providers()[0] != 'CUDAExecutionProvider':
        raise RuntimeError(f'CUDA provider did not load (available: '
                           f'{ort.get_available_providers()})')
    return _ort_session(session, x)


def _ort_session(session: Any, x: Any) -> Callable[[], Any]:
    feed = {'image': x.numpy()}
    return lambda: session.run(['labels', 'score'], feed)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench gpu-check``."""
    p.add_argument('--setup', action='store_true', help='install requirements/gpu.txt first')
    p.add_argument('--checkpoint', help='checkpoint (default: the embedded model)')
    p.add_argument('--arch', help='random weights of this arch instead of a checkpoint')
    p.add_argument('--size', nargs=2, type=int, default=[1024, 2048], metavar=('H', 'W'),
                   help='input size (default 1024 2048)')
    p.add_argument('--repeats', type=int, default=20, help='timed runs per runtime '
                   '(default 20)')
    p.add_argument('--json', metavar='FILE', help='write the rows here')


def run(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench gpu-check``; ``args.argv``: its command line, for --setup."""
    def log(text: str) -> None:
        print(f'[gpu-check] {text}', file=sys.stderr, flush=True)

    import torch
    if not torch.cuda.is_available():
        print(f'{PROG}: no CUDA device on this machine (torch.cuda.is_available() is False); '
              'nothing to check. Run `make gpu-check` on a machine with an NVIDIA GPU.',
              file=sys.stderr)
        return NO_CUDA_EXIT
    if args.setup:
        setup_runtimes(log)
        rest = [a for a in args.argv if a != '--setup']
        os.execv(sys.executable, [sys.executable, '-m', 'densehybrid_ros.tools.speed.bench']
                 + rest)     # a fresh process imports the GPU onnxruntime
    from ...models.checkpoint import load_checkpoint
    from ...models import build_model
    from ...models.fusion import fuse_for_inference
    from ...core.paths import default_checkpoint
    if args.arch:
        torch.manual_seed(0)
        model, meta = build_model(args.arch, 19), {}
    else:
        model, meta = load_checkpoint(args.checkpoint or default_checkpoint())
    model = fuse_for_inference(model.eval())
    log(f'{torch.cuda.get_device_name()}; {model.arch}')
    rows = check(model, meta, (args.size[0], args.size[1]), args.repeats, log)
    result = {'device': torch.cuda.get_device_name(), 'arch': model.arch,
              'size': list(args.size), 'rows': rows}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + '\n')
    return 0 if all('error' not in r for r in rows.values()) else 1
