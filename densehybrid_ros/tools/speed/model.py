"""Model-only speed and memory: fps of one architecture's forward pass and the peak RSS.

For models too large for the interleaved repetitions of ``densehybrid-bench all`` (the
137 M-parameter ``dlv3plus_wrn38`` takes seconds per 1024x512 frame on 2 cores): random weights
(speed does not depend on training), batch norm folded into the convolutions, channels_last,
``inference_mode``, batch 1, fp32, ``--warmup`` passes then ``--reps`` timed passes per size; the
peak resident set size (``getrusage``, the whole process: weights, the folded copy, activations)
after each size. Next to wall time it records the process CPU time per pass: on a shared machine,
CPU seconds / threads estimates what the pass would take with the cores to itself. ``fps_median``
is of the median pass (the mean of the middle two for an even ``--reps``), ``fps_best`` of the
fastest.

    densehybrid-bench model --arch dlv3plus_wrn38 --threads 2
    densehybrid-bench model --arch ldn121 --widths 1024 --json ldn.json
"""

import argparse
import json
import platform
import resource
import sys
from typing import Any, Dict, Sequence, Tuple

import torch

from .harness import median, repeat, Stopwatch
from ...models import ARCHS, build_model
from ...models.fusion import fuse_for_inference

PROG = 'densehybrid-bench model'


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_model(arch: str, sizes: Sequence[Tuple[int, int]], reps: int = 2, warmup: int = 1,
               fuse: bool = True, channels_last: bool = True, seed: int = 0) -> Dict[str, Any]:
    """Seconds per frame and peak RSS of ``arch``'s forward pass at each ``(H, W)``."""
    torch.manual_seed(seed)
    model = build_model(arch, 19).eval()
    if fuse:
        model = fuse_for_inference(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    out: Dict[str, Any] = {'arch': arch, 'fused': fuse, 'channels_last': channels_last,
                           'parameters': sum(p.numel() for p in model.parameters()),
                           'rss_after_load_mib': round(peak_rss_mib(), 1), 'sizes': {}}
    for h, w in sizes:
        x = torch.rand(1, 3, h, w).contiguous(memory_format=fmt)

        def one_pass() -> Tuple[float, float]:
            watch = Stopwatch().start()
            model(x)
            return watch.lap(), watch.cpu()

        with torch.inference_mode():
            passes = repeat(one_pass, reps, warmup)
        times, cpu = [t for t, _ in passes], [c for _, c in passes]
        out['sizes'][f'{w}x{h}'] = {'seconds': [round(t, 3) for t in times],
                                    'cpu_seconds': [round(t, 3) for t in cpu],
                                    'fps_median': round(1 / median(times), 4),
                                    'fps_best': round(1 / min(times), 4),
                                    'peak_rss_mib': round(peak_rss_mib(), 1)}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench model``."""
    p.add_argument('--arch', default='dlv3plus_wrn38', choices=sorted(ARCHS),
                   help='architecture to time (default dlv3plus_wrn38)')
    p.add_argument('--widths', nargs='+', type=int, default=[1024, 2048],
                   help='input widths (default: 1024 2048)')
    p.add_argument('--aspect', type=float, default=0.5,
                   help='height / width (default 0.5, as Cityscapes)')
    p.add_argument('--reps', type=int, default=2, help='timed passes per size (default 2)')
    p.add_argument('--warmup', type=int, default=1, help='untimed passes first (default 1)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--no-fuse', action='store_true', help='do not fold BatchNorm')
    p.add_argument('--json', help='write the figures here too')


def run(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench model``: print one line per size and the JSON."""
    sizes = [(round(w * args.aspect), w) for w in args.widths]
    if args.reps < 1 or args.warmup < 0 or min(min(hw) for hw in sizes) < 8:
        print(f'{PROG}: error: need --reps >= 1 and sizes of at least 8x8, got '
              f'--reps {args.reps} and {", ".join(f"{w}x{h}" for h, w in sizes)}',
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    result = time_model(args.arch, sizes, args.reps, args.warmup, fuse=not args.no_fuse)
    result.update(threads=torch.get_num_threads(), torch=torch.__version__,
                  cpu=platform.processor() or platform.machine())
    for size, figs in result['sizes'].items():
        print(f'{args.arch} {size} fp32 {"fused" if result["fused"] else "unfused"}: '
              f'{figs["fps_median"]:.3f} fps (median of {len(figs["seconds"])}; CPU '
              f'{sum(figs["cpu_seconds"]) / len(figs["cpu_seconds"]):.1f} s per pass), '
              f'peak RSS {figs["peak_rss_mib"]:.0f} MiB', flush=True)
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    print(text)
    return 0
