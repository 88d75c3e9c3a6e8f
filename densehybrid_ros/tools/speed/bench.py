"""densehybrid-bench: model speed, the cost of DenseHybrid, and the cost of the ROS node.

``densehybrid-bench`` (or ``densehybrid-bench all``) measures the figures below; its other
subcommands are ``backends`` (runtimes side by side), ``auto`` (the node's default runtime against
torch fp32 on 720p frames), ``model`` (one large model's speed and memory), ``obstacles`` (the
node's object and 3-D outputs) and ``gpu-check``.

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
  same frame, timed just before in this process while the node idles; every output
  subscribed. ``node_overhead_score_only``: only ``anomaly_score`` subscribed. The latency
  until the subscriber has every output is reported next to it (``received_*``);
* ``overload_latency``: p95 stamp-to-received latency with frames arriving at 3x the node's
  processing rate / p95 at half its rate (anomaly_score subscribed; keep-newest bounds it at
  about 1 + 1/3);
* ``conversions_ms``: cv_bridge input conversion, per-output rendering and message building,
  and the output resize, at 1280x720.
* ``obstacles``: ``obstacle_cost_ms`` and ``three_d_cost_ms`` (and with depth), the node's
  object and 3-D outputs per 1280x720 frame on the embedded model's outputs, next to its
  ``frame_ms`` (``densehybrid-bench obstacles``; about 20 s).

``--reference`` times the authors' ``LadderDenseNetTH`` (imported from their checkout at run
time, never copied here) against this project's ldn121 on the same weights and inputs.
"""

import argparse
import dataclasses
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import backends as backends_cmd, gpu_check as gpu_check_cmd, model as model_cmd
from . import obstacles as obstacles_cmd
from .arch import bench_arch, MatmulPeak, random_model
from .conversions import bench_conversions
from .machine import machine_facts
from .plan import FULL, Log, NUM_CLASSES, Plan, QUICK
from .reference import bench_reference
from .targets import format_table, judge
from ..evaluation.report import write_json

EXAMPLE = '''examples:
  densehybrid-bench --json out/bench.json                 # everything (< 10 min on 2 cores)
  densehybrid-bench --quick --json out/bench_quick.json   # tiny sizes, a smoke test
  densehybrid-bench --archs ladder_resnet18 --no-node --device cuda
  densehybrid-bench --archs ldn121 --reference ~/src/DenseHybrid --no-node
  densehybrid-bench --bf16 --archs ldn121 --no-node       # adds bf16 autocast figures
  densehybrid-bench backends --archs ldn121 --size 512 1024 --threads 2
  densehybrid-bench auto                                  # default runtime vs torch, 720p
  densehybrid-bench model --arch dlv3plus_wrn38 --threads 2
  densehybrid-bench obstacles --threads 2 --json out/bench/obstacles.json   # ~20 s
  densehybrid-bench gpu-check --setup --json out/gpu_check.json   # on a CUDA machine
'''
PROG = 'densehybrid-bench'
ARCHS = ('ldn121', 'ladder_resnet18')
Handler = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------ command line
def subcommands() -> Dict[str, Tuple[str, str, Callable[[argparse.ArgumentParser], None],
                                     Handler]]:
    """Name -> (help, description, options, handler) of each subcommand."""
    return {
        'all': ('every figure below: model speed, hybrid and node overheads (the default)',
                __doc__, add_arguments, run_all),
        'backends': ('torch, ONNX Runtime and OpenVINO side by side, one process each',
                     backends_cmd.__doc__, backends_cmd.add_arguments, backends_cmd.run),
        'auto': ("the node's default runtime (auto) against torch fp32 on 720p frames",
                 backends_cmd.AUTO_DOC, backends_cmd.add_auto_arguments, backends_cmd.run_auto),
        'model': ("one architecture's forward-pass speed and peak memory (large models)",
                  model_cmd.__doc__, model_cmd.add_arguments, model_cmd.run),
        'gpu-check': ('on a CUDA machine: GPU runtimes, agreement with torch fp32, fps',
                      gpu_check_cmd.__doc__, gpu_check_cmd.add_arguments, gpu_check_cmd.run),
        'obstacles': ("cost of the node's object and 3-D outputs per 720p frame",
                      obstacles_cmd.__doc__, obstacles_cmd.add_arguments, obstacles_cmd.run),
    }


def build_parser() -> argparse.ArgumentParser:
    """Command line of densehybrid-bench: its subcommands, each with its own options."""
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=PROG, epilog=EXAMPLE, formatter_class=raw,
                                description='Speed figures of densehybrid_ros. Without a '
                                            'COMMAND: all (densehybrid-bench all --help).')
    sub = p.add_subparsers(dest='command', metavar='COMMAND')
    for name, (short, doc, options, handler) in subcommands().items():
        s = sub.add_parser(name, help=short, description=doc, formatter_class=raw,
                           epilog=EXAMPLE if name == 'all' else None)
        options(s)
        s.set_defaults(handler=handler, parser=s)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``densehybrid-bench``: run a subcommand, ``all`` when none is named."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith('-') and argv[0] not in ('-h', '--help'):
        argv.insert(0, 'all')
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:                         # said by the subcommand, with its own usage
        args.parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    args.argv = argv                    # gpu-check --setup runs it again in a fresh process
    return args.handler(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench all``."""
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
    p.add_argument('--no-node', action='store_true', help='skip the live node, the '
                                                          'conversions and the obstacle '
                                                          'figures (no ROS needed)')
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
    p.add_argument('--backends', nargs='*', help='also time these runtimes (torch onnxruntime '
                   'openvino) at 1024x512, one process each, as densehybrid-bench backends')


def run_all(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench all``: every figure, the table of targets, the JSON."""
    start = time.monotonic()

    def log(text: str) -> None:
        if not args.quiet:
            print(f'[{time.monotonic() - start:6.1f} s] {text}', file=sys.stderr, flush=True)

    import logging

    import torch

    from ...models.checkpoint import load_checkpoint
    from ...deploy.preprocess import resolve_device

    logging.getLogger('densehybrid_ros').setLevel(logging.ERROR)   # 'uncalibrated' warnings
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f'{PROG}: {exc}', file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    if args.frames:
        plan = dataclasses.replace(plan, node_frames=args.frames)
    if args.pairs:
        plan = dataclasses.replace(plan, pairs=args.pairs)
    archs = list(args.archs)
    ckpt_model = None
    if args.checkpoint:
        ckpt_model = load_checkpoint(args.checkpoint)
        archs = [ckpt_model[0].arch]
    results: Dict[str, Any] = {
        'machine': machine_facts(device),
        'settings': {'quick': args.quick, 'seed': args.seed, 'device': str(device),
                     'precision': 'fp32', 'archs': archs, 'checkpoint': args.checkpoint,
                     'plan': dataclasses.asdict(plan),
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
            model, meta = ckpt_model if ckpt_model else random_model(arch, args.seed)
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
        if args.backends:
            results['backends'] = backends_cmd.bench_backends(
                archs, args.backends, (64, 96) if args.quick else (512, 1024),
                args.pairs or (3 if args.quick else 10), args.threads or 0, args.checkpoint,
                args.seed, log=log)
        if args.no_node:
            results['node'] = {'skipped': '--no-node'}
            results['obstacles'] = {'skipped': '--no-node'}
        else:
            results['conversions_ms'] = _conversions(plan, args, log)
            results['node'] = _live_node(plan, args, device, ckpt_model, log)
            if 'skipped' in results['node']:
                code = 1
            results['obstacles'] = _obstacles(args, log)
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


def _conversions(plan: Plan, args: argparse.Namespace, log: Log) -> Dict[str, Any]:
    from ...core.classes import default_palette

    try:
        width = args.node_width if args.node_width < plan.node_size[1] else 0
        return bench_conversions(plan.node_size, plan.conv_reps, width, args.seed,
                                 default_palette(NUM_CLASSES), log)
    except ImportError as exc:
        return {'skipped': f'ROS Python packages missing: {exc}'}


def _obstacles(args: argparse.Namespace, log: Log) -> Dict[str, Any]:
    try:
        if args.quick:
            return obstacles_cmd.bench_obstacles(obstacles_cmd.QUICK_SIZE, 5, 3, seed=args.seed,
                                                 log=log)
        return obstacles_cmd.bench_obstacles(seed=args.seed, log=log)
    except ImportError as exc:
        return {'skipped': f'ROS Python packages missing: {exc}'}


def _live_node(plan: Plan, args: argparse.Namespace, device: Any, ckpt_model: Any,
               log: Log) -> Dict[str, Any]:
    from ...models.checkpoint import save_checkpoint

    try:
        import rclpy  # noqa: F401  (checks that ROS is importable before starting processes)

        from .node import make_frames, run_live_bench
    except ImportError as exc:
        return {'skipped': f'ROS Python packages missing: {exc}'}
    domain = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 100
    frames = make_frames(4, plan.node_size, args.seed)
    with tempfile.TemporaryDirectory(prefix='densehybrid-bench-') as tmp:
        if args.checkpoint:
            ckpt, arch = Path(args.checkpoint).resolve(), ckpt_model[0].arch
        else:
            arch = args.node_arch
            model, meta = random_model(arch, args.seed)
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
