"""densehybrid-bench: model speed, the cost of DenseHybrid, and the cost of the ROS node.

Every figure is a ratio or rate measured in this one run: warm-up runs are excluded, the two
sides of each ratio are timed interleaved (A B B A ...) so a load that drifts during the run
(other jobs on the machine) hits both alike, and medians are taken over the repetitions.

Per architecture (``--archs``), on ``--device``, fp32, random weights (speed does not depend on
training) or ``--checkpoint``:

* ``fps``: frames/s of forward + hybrid score + open-set prediction, batch 1, at 1024x512 and
  2048x1024; ``cameras``: the same with 1, 2 and 4 camera frames batched (512x288 each).
* ``hybrid_overhead``: time(forward + hybrid score + open-set prediction) / time(the same
  backbone producing class logits only + argmax, ``forward_logits``), paired per repetition.
* ``flop_utilisation``: model FLOPs (torch.utils.flop_counter) per second of the forward pass /
  this machine's peak, a large fp32 matmul on the same device and threads, measured between
  the model runs.

The live node (``--node-arch``; skipped with ``--no-node``): the node, a publisher and a
subscriber in three processes on a private ROS domain, 1280x720 rgb8 frames:

* ``node_overhead``: median over lock-step frames of stamp-to-publish latency (the DDS source
  timestamp of the frame's last output - its input stamp) / the bare Segmenter's time on the
  same frame, timed just before in this process while the node idles; all 7 outputs
  subscribed. ``node_overhead_score_only``: only ``anomaly_score`` subscribed. The latency
  until the subscriber has every output is reported next to it (``received_*``);
* ``overload_latency``: p95 stamp-to-received latency with frames arriving at 3x the node's
  processing rate / p95 at half its rate (anomaly_score subscribed; keep-newest bounds it at
  about 1 + 1/3);
* ``conversions_ms``: cv_bridge input conversion, per-output rendering and message building,
  and the output resize, at 1280x720.

``--reference`` times the authors' ``LadderDenseNetTH`` (imported from their checkout at run
time, never copied here) against this project's ldn121 on the same weights and inputs.
"""

import argparse
import contextlib
from dataclasses import dataclass
import importlib.util
import io
import json
import math
import os
from pathlib import Path
import platform
import sys
import tempfile
import time
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
import warnings

import numpy as np

EXAMPLE = '''examples:
  densehybrid-bench --json out/bench.json                 # everything (< 10 min on 2 cores)
  densehybrid-bench --quick --json out/bench_quick.json   # tiny sizes, a smoke test
  densehybrid-bench --archs ladder_resnet18 --no-node --device cuda
  densehybrid-bench --archs ldn121 --reference ~/src/DenseHybrid --no-node
  densehybrid-bench --bf16 --archs ldn121 --no-node       # adds bf16 autocast figures
'''
Size = Tuple[int, int]          # (h, w)
ARCHS = ('ldn121', 'ladder_resnet18')
NUM_CLASSES = 19
THRESHOLD = 0.0                 # any finite value: open-set prediction does its full work
# Figure -> (comparison, target). Only these are judged pass/fail; the rest is information.
TARGETS = {
    'hybrid_overhead': ('<=', 1.03),
    'flop_utilisation': ('>=', 0.80),         # judged for ldn121 fp32 on the CPU
    'node_overhead': ('<=', 1.15),
    'node_overhead_score_only': ('<=', 1.05),
    'overload_latency': ('<=', 1.3),
    'reference_speedup': ('>=', 1.4),
    'reference_max_abs_diff': ('<=', 1e-3),
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Sizes and repetition counts of one bench run."""

    fps_sizes: Tuple[Size, ...]
    camera_size: Size
    cameras: Tuple[int, ...]
    pairs: int                    # interleaved pairs for hybrid_overhead / flop_utilisation
    reps: int                     # timed runs for the other sizes and batches
    peak_n: int                   # matmul size for the peak
    node_size: Size
    node_frames: int
    conv_reps: int


FULL = Plan(fps_sizes=((512, 1024), (1024, 2048)), camera_size=(288, 512), cameras=(1, 2, 4),
            pairs=4, reps=2, peak_n=2048, node_size=(720, 1280), node_frames=12, conv_reps=15)
QUICK = Plan(fps_sizes=((64, 128), (128, 256)), camera_size=(64, 128), cameras=(1, 2, 4),
             pairs=3, reps=2, peak_n=256, node_size=(90, 160), node_frames=3, conv_reps=3)


def size_name(size: Size) -> str:
    """Name an (h, w) size 'WxH', as figures are named."""
    return f'{size[1]}x{size[0]}'


# ------------------------------------------------------------------------------ timing tools
def _sync(device: Any) -> None:
    import torch

    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float('nan')


def _quartiles(values: Sequence[float]) -> Tuple[float, float]:
    if not len(values):
        return float('nan'), float('nan')
    p25, p75 = np.percentile(values, [25, 75])
    return float(p25), float(p75)


class MatmulPeak:
    """This machine's fp32 peak: a square matmul on the device, in GFLOP/s."""

    def __init__(self, device: Any, n: int) -> None:
        import torch

        self.device, self.n = device, n
        gen = torch.Generator().manual_seed(0)
        self.a = torch.randn(n, n, generator=gen).to(device)
        self.b = torch.randn(n, n, generator=gen).to(device)
        self.c = torch.empty(n, n, device=device)
        self.measure(2)                                  # warm-up

    def measure(self, reps: int = 3) -> float:
        """Median GFLOP/s of ``reps`` matmuls."""
        import torch

        times = []
        for _ in range(reps):
            _sync(self.device)
            t0 = time.perf_counter()
            torch.mm(self.a, self.b, out=self.c)
            _sync(self.device)
            times.append(time.perf_counter() - t0)
        return 2.0 * self.n ** 3 / _median(times) / 1e9


class Pipelines:
    """The two pipelines compared by hybrid_overhead, on one network, timed."""

    def __init__(self, net: Any, device: Any, memory_format: Any,
                 autocast_dtype: Any = None) -> None:
        self.net, self.device, self.memory_format = net, device, memory_format
        self.autocast_dtype = autocast_dtype

    def input(self, batch: int, size: Size, seed: int) -> Any:
        """Random RGB batch in [0, 1], laid out as the Segmenter lays out its input."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(batch, 3, size[0], size[1], generator=gen)
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def _autocast(self) -> Any:
        import torch

        return torch.autocast(self.device.type, dtype=self.autocast_dtype,
                              enabled=self.autocast_dtype is not None)

    def plain(self, x: Any) -> float:
        """Seconds for class logits only + argmax (the plain segmentation model)."""
        import torch

        _sync(self.device)
        t0 = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            forward_logits = getattr(self.net, 'forward_logits')
            forward_logits(x).argmax(1)
        _sync(self.device)
        return time.perf_counter() - t0

    def full(self, x: Any, keep: Optional[Dict[str, Any]] = None) -> Tuple[float, float]:
        """Seconds for (forward, forward + hybrid score + open-set prediction)."""
        import torch

        from ..scoring import open_set_from_labels, score_and_labels

        _sync(self.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            with self._autocast():
                logits, ood_logits = self.net(x)
            _sync(self.device)
            t1 = time.perf_counter()
            # As the Segmenter does: one pass for labels and score, logits as scratch space
            # (unless the caller keeps them).
            score, labels = score_and_labels('hybrid', logits.float(), ood_logits.float(),
                                             overwrite_logits=keep is None)
            pred = open_set_from_labels(labels.to(torch.uint8), score, THRESHOLD)
            _sync(self.device)
        t2 = time.perf_counter()
        if keep is not None:
            keep.update(logits=logits, ood_logits=ood_logits, score=score, pred=pred)
        return t1 - t0, t2 - t0


def count_flops(net: Any, x: Any) -> int:
    """Count the FLOPs of one forward pass (runs it once: it doubles as a warm-up run)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x)
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------ model figures
def bench_arch(arch: str, model: Any, meta: Dict[str, Any], plan: Plan, device: Any,
               peak: MatmulPeak, seed: int, bf16: bool, log: Log) -> Dict[str, Any]:
    """Fps, batched cameras, hybrid_overhead and flop_utilisation (and bf16) of one arch."""
    from ..inference import Segmenter

    seg = Segmenter.from_model(model, meta, device=str(device))
    pipes = Pipelines(seg.model, device, seg.memory_format)
    out: Dict[str, Any] = {'fps': {}, 'gflop_per_frame': {}, 'cameras': {}}
    size = plan.fps_sizes[0]
    x = pipes.input(1, size, seed)
    log(f'{arch}: warm-up and FLOP count at {size_name(size)}')
    flops = count_flops(pipes.net, x)
    out['gflop_per_frame'][size_name(size)] = flops / 1e9
    pipes.full(x)                                                       # warm-up, uncounted
    log(f'{arch}: {plan.pairs} interleaved pairs (plain, hybrid) at {size_name(size)}')
    ratios, utils, fulls, plains, fwds, peaks = [], [], [], [], [], []
    for i in range(plan.pairs):
        peak_now = peak.measure()
        if i % 2 == 0:
            t_plain = pipes.plain(x)
            t_fwd, t_full = pipes.full(x)
        else:
            t_fwd, t_full = pipes.full(x)
            t_plain = pipes.plain(x)
        ratios.append(t_full / t_plain)
        utils.append(flops / t_fwd / 1e9 / peak_now)
        fulls.append(t_full)
        plains.append(t_plain)
        fwds.append(t_fwd)
        peaks.append(peak_now)
    p25, p75 = _quartiles(ratios)
    out['hybrid_overhead'] = {
        'value': _median(ratios), 'p25': p25, 'p75': p75, 'pairs': len(ratios),
        'size': size_name(size), 'hybrid_ms': 1e3 * _median(fulls),
        'plain_ms': 1e3 * _median(plains), 'hybrid_forward_ms': 1e3 * _median(fwds),
        'score_and_open_set_ms': 1e3 * _median([f - w for f, w in zip(fulls, fwds)])}
    u25, u75 = _quartiles(utils)
    out['flop_utilisation'] = {
        'value': _median(utils), 'p25': u25, 'p75': u75, 'size': size_name(size),
        'model_gflop': flops / 1e9, 'forward_ms': 1e3 * _median(fwds),
        'model_gflops_per_s': flops / 1e9 / _median(fwds),
        'peak_gflops_per_s': _median(peaks), 'peak_matmul_n': peak.n}
    out['fps'][size_name(size)] = 1.0 / _median(fulls)
    for size in plan.fps_sizes[1:]:
        x = pipes.input(1, size, seed)
        log(f'{arch}: warm-up and {plan.reps} runs at {size_name(size)}')
        out['gflop_per_frame'][size_name(size)] = count_flops(pipes.net, x) / 1e9
        times = [pipes.full(x)[1] for _ in range(plan.reps)]
        out['fps'][size_name(size)] = 1.0 / _median(times)
    for n in plan.cameras:
        if n == 1 and plan.camera_size == plan.fps_sizes[0]:
            per_batch = _median(fulls)
        else:
            x = pipes.input(n, plan.camera_size, seed)
            log(f'{arch}: {n} camera(s) batched at {size_name(plan.camera_size)}')
            pipes.full(x)                                               # warm-up
            per_batch = _median([pipes.full(x)[1] for _ in range(plan.reps)])
        out['cameras'][str(n)] = {'frames_per_s': n / per_batch,
                                  'batches_per_s': 1.0 / per_batch,
                                  'size': size_name(plan.camera_size)}
    if bf16:
        out['bf16'] = bench_bf16(arch, seg, plan, device, seed, log)
    return out


def bench_bf16(arch: str, seg: Any, plan: Plan, device: Any, seed: int, log: Log
               ) -> Dict[str, Any]:
    """bf16 autocast against fp32, interleaved: speed-up and how far the outputs move."""
    import torch

    fp32 = Pipelines(seg.model, device, seg.memory_format)
    bf16 = Pipelines(seg.model, device, seg.memory_format, autocast_dtype=torch.bfloat16)
    size = plan.fps_sizes[0]
    x = fp32.input(1, size, seed)
    log(f'{arch}: bf16 autocast vs fp32 at {size_name(size)}')
    ref: Dict[str, Any] = {}
    low: Dict[str, Any] = {}
    fp32.full(x, ref)
    bf16.full(x, low)                                                   # warm-up, outputs
    speedups, low_times = [], []
    for i in range(max(2, plan.pairs // 2)):
        order = (fp32, bf16) if i % 2 == 0 else (bf16, fp32)
        times = {id(p): p.full(x)[1] for p in order}
        speedups.append(times[id(fp32)] / times[id(bf16)])
        low_times.append(times[id(bf16)])
    ref_labels = ref['logits'].argmax(1)
    return {
        'speedup_vs_fp32': _median(speedups), 'size': size_name(size),
        'fps': 1.0 / _median(low_times),
        'score_max_abs_diff': float((ref['score'] - low['score']).abs().max()),
        'score_mean_abs_diff': float((ref['score'] - low['score']).abs().mean()),
        'label_agreement': float((ref_labels == low['logits'].argmax(1)).float().mean()),
        'cpu_has_native_bf16': cpu_flags().get('avx512_bf16', False)
        or cpu_flags().get('amx_bf16', False),
    }


# ------------------------------------------------------------------------------ reference
def load_reference_class(path: Path) -> Any:
    """Import ``LadderDenseNetTH`` from the authors' checkout (``models/ladder_densenet.py``)."""
    path = Path(path).expanduser()
    candidates = [path, path / 'ladder_densenet.py', path / 'models' / 'ladder_densenet.py']
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise FileNotFoundError(f'no models/ladder_densenet.py under {path} (point --reference '
                                f"at a checkout of the authors' DenseHybrid repository)")
    spec = importlib.util.spec_from_file_location('densehybrid_reference_ladder_densenet', file)
    if spec is None or spec.loader is None:
        raise ImportError(f'cannot import {file}')
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    if not hasattr(module, 'LadderDenseNetTH'):
        raise ImportError(f'{file} has no LadderDenseNetTH')
    return module.LadderDenseNetTH


def bench_reference(path: Path, state_dict: Dict[str, Any], model: Any, meta: Dict[str, Any],
                    plan: Plan, device: Any, seed: int, log: Log) -> Dict[str, Any]:
    """Time the authors' LDN-121 against ours on the same weights and input; compare outputs."""
    import torch

    from ..inference import Segmenter
    from ..scoring import hybrid_score

    cls = load_reference_class(path)
    with contextlib.redirect_stdout(io.StringIO()):       # their constructor prints sizes
        ref = cls(types.SimpleNamespace(last_block_pooling=0), num_classes=NUM_CLASSES)
    ref.load_state_dict(state_dict, strict=True)
    ref = ref.eval().to(device)
    seg = Segmenter.from_model(model, meta, device=str(device))
    ours = Pipelines(seg.model, device, seg.memory_format)
    size = plan.fps_sizes[0]
    x = ours.input(1, size, seed)
    x_ref = x.contiguous()

    def run_ref() -> Tuple[float, Any]:
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            outputs = ref(x_ref)
        _sync(device)
        return time.perf_counter() - t0, outputs

    log(f'reference: warm-up and {plan.pairs} interleaved pairs at {size_name(size)}')
    mine: Dict[str, Any] = {}
    ours.full(x, mine)
    _, (ref_logits, ref_ood) = run_ref()
    speedups = []
    t_ours, t_ref = [], []
    for i in range(plan.pairs):
        if i % 2 == 0:
            a, b = run_ref()[0], ours.full(x)[0]
        else:
            b, a = ours.full(x)[0], run_ref()[0]
        speedups.append(a / b)
        t_ref.append(a)
        t_ours.append(b)
    ref_score = hybrid_score(ref_logits.float(), ref_ood.float())
    diffs = {
        'logits': float((ref_logits - mine['logits']).abs().max()),
        'ood_logits': float((ref_ood - mine['ood_logits']).abs().max()),
        'score': float((ref_score - mine['score']).abs().max()),
    }
    p25, p75 = _quartiles(speedups)
    return {
        'speedup': _median(speedups), 'p25': p25, 'p75': p75, 'pairs': len(speedups),
        'size': size_name(size), 'reference_ms': 1e3 * _median(t_ref),
        'ours_ms': 1e3 * _median(t_ours), 'max_abs_diff': max(diffs.values()),
        'max_abs_diff_by_output': diffs, 'source': str(path),
        'label_agreement': float((ref_logits.argmax(1) == mine['logits'].argmax(1))
                                 .float().mean()),
    }


# ------------------------------------------------------------------------------ conversions
def bench_conversions(size: Size, reps: int, inference_width: int, seed: int,
                      lut_palette: np.ndarray, log: Log) -> Dict[str, Any]:
    """Milliseconds per conversion step at the camera size (median of ``reps``)."""
    from std_msgs.msg import Header
    import torch
    import torch.nn.functional as F

    from ..inference import Result
    from ..outputs import OUTPUTS, Renderer
    from ..ros import conversions
    from .bench_node import make_frames

    log(f'conversions at {size_name(size)}')
    h, w = size
    rgb = make_frames(1, size, seed)[0]
    rng = np.random.default_rng(seed)
    score = rng.normal(-3.0, 1.5, (h, w)).astype(np.float32)
    semantic = rng.integers(0, NUM_CLASSES, (h, w), dtype=np.uint8)
    result = Result(semantic=semantic, score=score,
                    open_set=np.where(score > THRESHOLD, np.uint8(255), semantic),
                    anomaly_mask=score > THRESHOLD)
    renderer = Renderer(lut_palette, {'score_p01': -6.0, 'score_p99': 1.0}, alpha=0.5)

    def timed(fn: Callable[[], Any]) -> float:
        fn()                                                            # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * _median(times)

    header = Header()
    msg = conversions.numpy_to_image(rgb, 'rgb8', header)
    bgr_msg = conversions.numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8', header)
    out: Dict[str, Any] = {
        'size': size_name(size),
        'input_rgb8_cv_bridge': timed(lambda: conversions.msg_to_rgb(msg)),
        'input_bgr8_cv_bridge': timed(lambda: conversions.msg_to_rgb(bgr_msg)),
        'outputs': {},
    }
    for name, encoding, _ in OUTPUTS.values():
        image = renderer.render(name, rgb, result)
        out['outputs'][name] = {
            'render': timed(lambda n=name: renderer.render(n, rgb, result)),
            'to_message': timed(lambda i=image, e=encoding: conversions.numpy_to_image(
                i, e, header)),
        }
    if inference_width and inference_width != w:
        small = (max(1, round(h * inference_width / w)), inference_width)
        s = torch.from_numpy(score[:small[0], :small[1]].copy())
        lab = torch.from_numpy(semantic[:small[0], :small[1]].copy())
        img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        out['resize'] = {
            'from': size_name(small),
            'input_down_antialias': timed(lambda: F.interpolate(
                img, size=small, mode='bilinear', align_corners=False, antialias=True)),
            'score_up_bilinear': timed(lambda: F.interpolate(
                s[None, None], size=size, mode='bilinear', align_corners=False)),
            'labels_up_nearest': timed(lambda: F.interpolate(
                lab[None, None].float(), size=size, mode='nearest').to(torch.uint8)),
        }
    out['total_all_outputs'] = (out['input_rgb8_cv_bridge'] + sum(
        v['render'] + v['to_message'] for v in out['outputs'].values())
        + sum(v for k, v in out.get('resize', {}).items() if k != 'from'))
    return out


# ------------------------------------------------------------------------------ machine facts
def cpu_flags() -> Dict[str, bool]:
    """Which of the vector / matrix extensions that matter for inference the CPU has."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return {}
    flags = set()
    for line in text.splitlines():
        if line.startswith('flags'):
            flags = set(line.split(':', 1)[1].split())
            break
    return {f: f in flags for f in ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16',
                                    'amx_bf16', 'amx_tile')}


def cpu_model() -> str:
    """Return the CPU model name."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: Any) -> Dict[str, Any]:
    """CPU, threads, library versions and device: what a figure depends on."""
    import cv2
    import torch

    facts: Dict[str, Any] = {
        'cpu': cpu_model(), 'cpu_flags': cpu_flags(), 'logical_cpus': os.cpu_count(),
        'usable_cpus': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
        else os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch_interop_threads': torch.get_num_interop_threads(),
        'torch': torch.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__,
        'python': platform.python_version(), 'platform': platform.platform(),
        'device': str(device), 'mkldnn': bool(torch.backends.mkldnn.is_available()),
        'load_average_start': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
    }
    if device.type == 'cuda':
        facts['gpu'] = torch.cuda.get_device_name(device)
    return facts


# ------------------------------------------------------------------------------ checks, output
def judge(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each figure that has a target: value, target, pass/fail."""
    checks = []

    def add(figure: str, key: str, value: Optional[float], note: str = '') -> None:
        op, target = TARGETS[key]
        ok = value is not None and math.isfinite(value) and (
            value <= target if op == '<=' else value >= target)
        checks.append({'figure': figure, 'value': value, 'target': f'{op} {target:g}',
                       'pass': bool(ok), 'note': note})

    cpu = results['machine']['device'].startswith('cpu')
    for arch, figs in results.get('archs', {}).items():
        add(f'{arch}.hybrid_overhead', 'hybrid_overhead', figs['hybrid_overhead']['value'])
        if arch == 'ldn121' and cpu:
            add(f'{arch}.flop_utilisation', 'flop_utilisation',
                figs['flop_utilisation']['value'], 'fp32, CPU')
    node = results.get('node') or {}
    for key in ('node_overhead', 'node_overhead_score_only', 'overload_latency'):
        if key in node:
            add(key, key, node[key]['value'])
    ref = results.get('reference')
    if ref and 'speedup' in ref:
        add('ldn121.reference_speedup', 'reference_speedup', ref['speedup'])
        add('ldn121.reference_max_abs_diff', 'reference_max_abs_diff', ref['max_abs_diff'])
    return checks


def format_table(results: Dict[str, Any]) -> str:
    """Human-readable summary: every figure, its target and pass/fail."""
    lines = []
    m = results['machine']
    quick = ' [quick]' if results['settings']['quick'] else ''
    lines.append(f'densehybrid-bench on {m["device"]} ({m["cpu"]}, {m["torch_threads"]} '
                 f'threads, torch {m["torch"]}){quick}')
    load = m.get('load_average_start')
    if load:
        lines.append(f'load average at start: {load[0]:.2f} on {m["usable_cpus"]} CPUs')
    checks = {c['figure']: c for c in results.get('checks', [])}

    def row(name: str, value: str, figure: Optional[str] = None) -> None:
        check = checks.get(figure or '')
        verdict = f'{check["target"]:>9}  {"PASS" if check["pass"] else "FAIL"}' if check \
            else ''
        lines.append(f'  {name:<44} {value:>14}  {verdict}')

    for arch, figs in results.get('archs', {}).items():
        lines.append(f'{arch} (fp32)')
        for size, fps in figs['fps'].items():
            gf = figs['gflop_per_frame'].get(size)
            row(f'fps {size} batch 1', f'{fps:.3f}' + (f' ({gf:.0f} GFLOP)' if gf else ''))
        for n, cam in figs['cameras'].items():
            row(f'{n} camera(s) batched {cam["size"]}, frames/s', f'{cam["frames_per_s"]:.3f}')
        ho = figs['hybrid_overhead']
        row(f'hybrid_overhead ({ho["pairs"]} pairs, IQR {ho["p25"]:.3f}-{ho["p75"]:.3f})',
            f'{ho["value"]:.3f}', f'{arch}.hybrid_overhead')
        if 'score_and_open_set_ms' in ho:
            row(f'  score + open-set {ho["score_and_open_set_ms"]:.0f} ms of '
                f'{ho["hybrid_ms"]:.0f}; plain {ho["plain_ms"]:.0f} ms', '')
        fu = figs['flop_utilisation']
        row(f'flop_utilisation ({fu["model_gflops_per_s"]:.1f} / '
            f'{fu["peak_gflops_per_s"]:.1f} GFLOP/s)', f'{fu["value"]:.3f}',
            f'{arch}.flop_utilisation')
        if figs.get('bf16'):
            b = figs['bf16']
            row('bf16 autocast speed-up vs fp32 (separate)', f'{b["speedup_vs_fp32"]:.3f}')
            row('bf16 score max |diff| / label agreement',
                f'{b["score_max_abs_diff"]:.3g} / {b["label_agreement"]:.4f}')
    node = results.get('node') or {}
    if 'skipped' in node:
        lines.append(f'live node: skipped ({node["skipped"]})')
    elif node:
        lines.append(f'live node ({node["arch"]}, {node["image_size"]} rgb8, inference width '
                     f'{node["inference_width"] or "native"}, {node["frames"]} frames)')
        for key, label in (('node_overhead', 'node_overhead (all 7 outputs)'),
                           ('node_overhead_score_only', 'node_overhead (anomaly_score only)')):
            f = node[key]
            row(f'{label}: {f["node_latency_ms"]:.0f} / {f["bare_segmenter_ms"]:.0f} ms',
                f'{f["value"]:.3f}', key)
            row(f'  IQR of {f["frames"]} pairs', f'{f["p25"]:.3f}-{f["p75"]:.3f}')
            row(f'  received by the subscriber: {f["received_latency_ms"]:.0f} ms',
                f'{f["received_ratio"]:.3f}')
        o = node['overload_latency']
        row(f'overload_latency: p95 {o["overload"]["p95_ms"]:.0f} / '
            f'{o["calm"]["p95_ms"]:.0f} ms', f'{o["value"]:.3f}', 'overload_latency')
        row(f'  frames processed at 3x: {o["overload"]["processed"]} of '
            f'{o["overload"]["published"]}', '')
    conv = results.get('conversions_ms')
    if conv and 'skipped' not in conv:
        lines.append(f'conversions at {conv["size"]} (ms)')
        row('input rgb8 / bgr8 through cv_bridge',
            f'{conv["input_rgb8_cv_bridge"]:.2f} / {conv["input_bgr8_cv_bridge"]:.2f}')
        for name, c in conv['outputs'].items():
            row(f'{name}: render + message', f'{c["render"]:.2f} + {c["to_message"]:.2f}')
        for name, v in conv.get('resize', {}).items():
            if name != 'from':
                row(f'resize {name} ({conv["resize"]["from"]})', f'{v:.2f}')
        row('total, all outputs', f'{conv["total_all_outputs"]:.2f}')
    elif conv:
        lines.append(f'conversions: skipped ({conv["skipped"]})')
    ref = results.get('reference')
    if ref and 'speedup' in ref:
        lines.append(f'authors\' LadderDenseNetTH vs ldn121 at {ref["size"]}')
        row(f'speed-up ({ref["reference_ms"]:.0f} / {ref["ours_ms"]:.0f} ms)',
            f'{ref["speedup"]:.3f}', 'ldn121.reference_speedup')
        row('max |output difference|', f'{ref["max_abs_diff"]:.3g}',
            'ldn121.reference_max_abs_diff')
    elif ref:
        lines.append(f'reference: skipped ({ref.get("skipped")})')
    failed = [c['figure'] for c in results.get('checks', []) if not c['pass']]
    lines.append(f'{len(results.get("checks", [])) - len(failed)} of '
                 f'{len(results.get("checks", []))} targets met'
                 + (f'; missed: {", ".join(failed)}' if failed else ''))
    lines.append(f'elapsed {results.get("elapsed_s", 0):.0f} s')
    return '\n'.join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, results: Dict[str, Any]) -> None:
    """Write the results (non-finite numbers as null), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(_jsonable(results), indent=2) + '\n')
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-bench."""
    p = argparse.ArgumentParser(prog='densehybrid-bench', description=__doc__, epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--archs', nargs='*', default=list(ARCHS),
                   help=f'architectures to time (default: {" ".join(ARCHS)}; none: only the '
                        f'live node)')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--checkpoint', help='time this checkpoint (its arch) instead of random '
                                        'weights; also used by the live node')
    p.add_argument('--quick', action='store_true', help='tiny sizes, few repetitions (tests)')
    p.add_argument('--frames', type=int, help='frames per live-node phase (default 12; '
                                              'quick 3)')
    p.add_argument('--pairs', type=int, help='interleaved pairs for hybrid_overhead and '
                                             'flop_utilisation (default 4; quick 3)')
    p.add_argument('--seed', type=int, default=0, help='weights, inputs and frames')
    p.add_argument('--threads', type=int, help="torch threads (default: torch's own choice); "
                                               'the node gets the same')
    p.add_argument('--json', metavar='FILE', help='write every figure here')
    p.add_argument('--no-node', action='store_true', help='skip the live node and the '
                                                          'conversions (no ROS needed)')
    p.add_argument('--node-arch', default='ladder_resnet18_half',
                   help='architecture the live node runs (default ladder_resnet18_half, the '
                        "embedded model's; ignored with --checkpoint)")
    p.add_argument('--node-width', type=int, default=640,
                   help='node inference_width (default 640; 0 = native 1280x720)')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID of the live bench (default: '
                                                 'a private one from the process id)')
    p.add_argument('--bf16', action='store_true', help='add bf16 autocast figures per arch '
                                                       '(reported separately)')
    p.add_argument('--reference', metavar='PATH', help="a checkout of the authors' "
                                                       'DenseHybrid repository: time their '
                                                       'LadderDenseNetTH against ldn121')
    p.add_argument('--quiet', action='store_true', help='no progress lines')
    return p


def _random_model(arch: str, seed: int) -> Tuple[Any, Dict[str, Any]]:
    import torch

    from ..classes import default_class_names, default_palette
    from ..models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, NUM_CLASSES).eval()
    _randomise_bn(model, seed)
    names = default_class_names(NUM_CLASSES)
    meta = {'class_names': names, 'palette': default_palette(NUM_CLASSES, names),
            'calibration': {'threshold': THRESHOLD, 'score_p01': -6.0, 'score_p99': 1.0,
                            'measured_on': 'densehybrid-bench (random weights)'}}
    return model, meta


def _randomise_bn(model: Any, seed: int) -> None:
    """Give BatchNorm layers non-trivial statistics, as trained ones have."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                module.weight.copy_(1.0 + 0.1 * torch.randn(c, generator=gen))
                module.bias.copy_(0.05 * torch.randn(c, generator=gen))


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``densehybrid-bench``."""
    args = build_parser().parse_args(argv)
    start = time.monotonic()

    def log(text: str) -> None:
        if not args.quiet:
            print(f'[{time.monotonic() - start:6.1f} s] {text}', file=sys.stderr, flush=True)

    import logging

    import torch

    from ..checkpoint import load_checkpoint
    from ..inference import resolve_device

    logging.getLogger('densehybrid_ros').setLevel(logging.ERROR)   # 'uncalibrated' warnings
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f'densehybrid-bench: {exc}', file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    if args.frames:
        plan = _replace(plan, node_frames=args.frames)
    if args.pairs:
        plan = _replace(plan, pairs=args.pairs)
    archs = list(args.archs)
    ckpt_model = None
    if args.checkpoint:
        ckpt_model = load_checkpoint(args.checkpoint)
        archs = [ckpt_model[0].arch]
    results: Dict[str, Any] = {
        'machine': machine_facts(device),
        'settings': {'quick': args.quick, 'seed': args.seed, 'device': str(device),
                     'precision': 'fp32', 'archs': archs, 'checkpoint': args.checkpoint,
                     'plan': {k: getattr(plan, k) for k in plan.__dataclass_fields__},
                     'fps_definition': 'forward + hybrid score + open-set prediction, '
                                       'tensors on the device, batch 1'},
        'archs': {},
    }
    code = 0
    try:
        log(f'peak: {plan.peak_n}x{plan.peak_n} fp32 matmul on {device}')
        peak = MatmulPeak(device, plan.peak_n)
        results['peak_gflops_per_s'] = peak.measure(5)
        for arch in archs:
            model, meta = ckpt_model if ckpt_model else _random_model(arch, args.seed)
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            results['archs'][arch] = bench_arch(arch, model, meta, plan, device, peak,
                                                args.seed, args.bf16, log)
            if args.reference and arch == 'ldn121':
                try:
                    results['reference'] = bench_reference(
                        Path(args.reference), state, model, meta, plan, device, args.seed, log)
                except (ImportError, FileNotFoundError, RuntimeError, AttributeError) as exc:
                    results['reference'] = {'skipped': f'{type(exc).__name__}: {exc}'}
                    code = 1
        if args.reference and 'reference' not in results:
            results['reference'] = {'skipped': 'ldn121 not among --archs'}
        if args.no_node:
            results['node'] = {'skipped': '--no-node'}
        else:
            results['conversions_ms'] = _conversions(plan, args, log)
            results['node'] = _live_node(plan, args, device, ckpt_model, log)
            if 'skipped' in results['node']:
                code = 1
    except KeyboardInterrupt:
        results['interrupted'] = True
        code = 130
    results['elapsed_s'] = time.monotonic() - start
    results['machine']['load_average_end'] = list(os.getloadavg()) \
        if hasattr(os, 'getloadavg') else None
    results['checks'] = judge(results)
    print(format_table(results))
    if args.json:
        write_json(Path(args.json), results)
        log(f'wrote {args.json}')
    return code


def _replace(plan: Plan, **changes: Any) -> Plan:
    values = {k: getattr(plan, k) for k in plan.__dataclass_fields__}
    values.update(changes)
    return Plan(**values)


def _conversions(plan: Plan, args: argparse.Namespace, log: Log) -> Dict[str, Any]:
    from ..classes import default_palette

    try:
        width = args.node_width if args.node_width < plan.node_size[1] else 0
        return bench_conversions(plan.node_size, plan.conv_reps, width, args.seed,
                                 default_palette(NUM_CLASSES), log)
    except ImportError as exc:
        return {'skipped': f'ROS Python packages missing: {exc}'}


def _live_node(plan: Plan, args: argparse.Namespace, device: Any, ckpt_model: Any,
               log: Log) -> Dict[str, Any]:
    from ..checkpoint import save_checkpoint

    try:
        import rclpy  # noqa: F401  (checks that ROS is importable before starting processes)

        from .bench_node import make_frames, run_live_bench
    except ImportError as exc:
        return {'skipped': f'ROS Python packages missing: {exc}'}
    domain = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 100
    frames = make_frames(4, plan.node_size, args.seed)
    with tempfile.TemporaryDirectory(prefix='densehybrid-bench-') as tmp:
        if args.checkpoint:
            ckpt, arch = Path(args.checkpoint).resolve(), ckpt_model[0].arch
        else:
            arch = args.node_arch
            model, meta = _random_model(arch, args.seed)
            ckpt = save_checkpoint(Path(tmp) / f'{arch}_random.pt', model, meta)
        width = args.node_width if args.node_width < plan.node_size[1] else 0
        try:
            node = run_live_bench(ckpt, frames, plan.node_frames, width,
                                  str(device), 'fp32', args.threads, domain, log)
        except RuntimeError as exc:
            return {'skipped': f'live node failed: {exc}', 'arch': arch}
    node['arch'] = arch
    return node


if __name__ == '__main__':
    sys.exit(main())
