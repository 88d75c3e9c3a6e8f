"""Model figures of densehybrid-bench: fps, batched cameras, hybrid_overhead, FLOP use, bf16.

Each ratio's two sides are timed interleaved (A B B A ...) so a load that drifts during the
run hits both alike; medians over the repetitions (``harness.py``).
"""

from typing import Any, Dict, Optional, Tuple

from .agreement import label_agreement, max_abs_diff, mean_abs_diff
from .harness import device_sync, interleave, median, median_seconds, percentile, repeat, \
    seconds, Stopwatch
from .machine import cpu_flags
from .plan import Log, NUM_CLASSES, Plan, Size, size_name, THRESHOLD


class MatmulPeak:
    """This machine's fp32 peak: a square matmul on the device, in GFLOP/s."""

    def __init__(self, device: Any, n: int) -> None:
        import torch

        self.device, self.n, self.sync = device, n, device_sync(device)
        gen = torch.Generator().manual_seed(0)
        self.a = torch.randn(n, n, generator=gen).to(device)
        self.b = torch.randn(n, n, generator=gen).to(device)
        self.c = torch.empty(n, n, device=device)
        self.measure(2)                                  # warm-up

    def measure(self, reps: int = 3) -> float:
        """Median GFLOP/s of ``reps`` matmuls."""
        import torch

        t = median_seconds(lambda: torch.mm(self.a, self.b, out=self.c), reps, sync=self.sync)
        return 2.0 * self.n ** 3 / t / 1e9


class Pipelines:
    """The two pipelines compared by hybrid_overhead, on one network, timed."""

    def __init__(self, net: Any, device: Any, memory_format: Any,
                 autocast_dtype: Any = None) -> None:
        self.net, self.device, self.memory_format = net, device, memory_format
        self.autocast_dtype = autocast_dtype
        self.sync = device_sync(device)

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

        def run() -> None:
            with torch.inference_mode(), self._autocast():
                forward_logits = getattr(self.net, 'forward_logits')
                forward_logits(x).argmax(1)

        return seconds(run, self.sync)

    def full(self, x: Any, keep: Optional[Dict[str, Any]] = None) -> Tuple[float, float]:
        """Seconds for (forward, forward + hybrid score + open-set prediction)."""
        import torch

        from ...core.scoring import open_set_from_labels, score_and_labels

        watch = Stopwatch(self.sync).start()
        with torch.inference_mode():
            with self._autocast():
                logits, ood_logits = self.net(x)
            t_forward = watch.lap()
            # As the Segmenter does: one pass for labels and score, logits as scratch space
            # (unless the caller keeps them).
            score, labels = score_and_labels('hybrid', logits.float(), ood_logits.float(),
                                             overwrite_logits=keep is None)
            pred = open_set_from_labels(labels.to(torch.uint8), score, THRESHOLD)
            t_full = watch.lap()
        if keep is not None:
            keep.update(logits=logits, ood_logits=ood_logits, score=score, pred=pred)
        return t_forward, t_full


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
    from ...deploy.segmenter import Segmenter

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
    # Each round: the machine's peak first, then plain and hybrid, their order alternating.
    peaks, plains, runs = interleave([lambda i: peak.measure(), lambda i: pipes.plain(x),
                                      lambda i: pipes.full(x)], plan.pairs, pinned=1)
    fwds, fulls = [r[0] for r in runs], [r[1] for r in runs]
    ratios = [f / p for f, p in zip(fulls, plains)]
    utils = [flops / t / 1e9 / p for t, p in zip(fwds, peaks)]
    p25, p75 = percentile(ratios, 25), percentile(ratios, 75)
    out['hybrid_overhead'] = {
        'value': median(ratios), 'p25': p25, 'p75': p75, 'pairs': len(ratios),
        'size': size_name(size), 'hybrid_ms': 1e3 * median(fulls),
        'plain_ms': 1e3 * median(plains), 'hybrid_forward_ms': 1e3 * median(fwds),
        'score_and_open_set_ms': 1e3 * median([f - w for f, w in zip(fulls, fwds)])}
    u25, u75 = percentile(utils, 25), percentile(utils, 75)
    out['flop_utilisation'] = {
        'value': median(utils), 'p25': u25, 'p75': u75, 'size': size_name(size),
        'model_gflop': flops / 1e9, 'forward_ms': 1e3 * median(fwds),
        'model_gflops_per_s': flops / 1e9 / median(fwds),
        'peak_gflops_per_s': median(peaks), 'peak_matmul_n': peak.n}
    out['fps'][size_name(size)] = 1.0 / median(fulls)
    for size in plan.fps_sizes[1:]:
        x = pipes.input(1, size, seed)
        log(f'{arch}: warm-up and {plan.reps} runs at {size_name(size)}')
        out['gflop_per_frame'][size_name(size)] = count_flops(pipes.net, x) / 1e9
        times = repeat(lambda: pipes.full(x)[1], plan.reps)     # the count was the warm-up
        out['fps'][size_name(size)] = 1.0 / median(times)
    for n in plan.cameras:
        if n == 1 and plan.camera_size == plan.fps_sizes[0]:
            per_batch = median(fulls)
        else:
            x = pipes.input(n, plan.camera_size, seed)
            log(f'{arch}: {n} camera(s) batched at {size_name(plan.camera_size)}')
            per_batch = median(repeat(lambda: pipes.full(x)[1], plan.reps, warmup=1))
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
    ref_times, low_times = interleave([lambda i: fp32.full(x)[1], lambda i: bf16.full(x)[1]],
                                      max(2, plan.pairs // 2))
    speedups = [r / t for r, t in zip(ref_times, low_times)]
    return {
        'speedup_vs_fp32': median(speedups), 'size': size_name(size),
        'fps': 1.0 / median(low_times),
        'score_max_abs_diff': max_abs_diff(low['score'], ref['score']),
        'score_mean_abs_diff': mean_abs_diff(low['score'], ref['score']),
        'label_agreement': label_agreement(low['logits'].argmax(1), ref['logits'].argmax(1)),
        'cpu_has_native_bf16': cpu_flags().get('avx512_bf16', False)
        or cpu_flags().get('amx_bf16', False),
    }


def random_model(arch: str, seed: int) -> Tuple[Any, Dict[str, Any]]:
    """Return a model of ``arch`` with seeded random weights and BN statistics, and its meta."""
    import torch

    from ...core.classes import default_class_names, default_palette
    from ...models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, NUM_CLASSES).eval()
    randomise_bn(model, seed)
    names = default_class_names(NUM_CLASSES)
    meta = {'class_names': names, 'palette': default_palette(NUM_CLASSES, names),
            'calibration': {'threshold': THRESHOLD, 'score_p01': -6.0, 'score_p99': 1.0,
                            'measured_on': 'densehybrid-bench (random weights)'}}
    return model, meta


def randomise_bn(model: Any, seed: int) -> None:
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
