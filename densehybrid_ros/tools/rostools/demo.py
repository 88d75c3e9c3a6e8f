"""densehybrid-demo: the whole system on the embedded model, end to end, in separate processes.

1. densehybrid-make-bag --sequence writes a sample rosbag2: one street seen from a camera driving
   towards anomalies of a held-out family, with per-object ground truth.
2. densehybrid-node starts (autostart) on the embedded default model.
3. densehybrid-replay plays the bag into the node in lock-step and records the node's outputs.
4. densehybrid-eval --recorded evaluates what the live node published (pixels, objects, and the
   node's obstacle pipeline over time), and writes pictures.
"""

import argparse
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import List, Optional

from .make_bag import SCENE_SIZE
from ..evaluation.report import sequence_line
from ..model.options import add_model_options
from ...core.transport import child_env

EXAMPLE = '''example:
  densehybrid-demo                          # 40 frames at 512 x 1024, results in out/demo/
  densehybrid-demo --frames 10 --output /tmp/demo --checkpoint my_model.pt
  densehybrid-export --format openvino --size 512 1024 --precision int8 \\
      --calibration out/demo/sample_bag --output out/export/ov_int8     # after a first run
  densehybrid-demo --backend openvino --precision int8 --artifacts out/export/ov_int8
'''
CAMERA = '/camera/image'
SPEED = 1.2              # units per frame: objects 30-60 units ahead come within a few units
SCORE_TOPIC = '/camera/densehybrid/anomaly_score'


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-demo."""
    p = argparse.ArgumentParser(prog='densehybrid-demo', description=__doc__, epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--output', default='out/demo', help='results folder (default out/demo)')
    p.add_argument('--frames', type=int, default=40, help='frames in the sample bag')
    p.add_argument('--size', type=int, nargs=2, default=SCENE_SIZE, metavar=('H', 'W'),
                   help='scene size (default %d %d, the scale the embedded model knows)'
                   % SCENE_SIZE)
    p.add_argument('--seed', type=int, help='sequence seed (default: the evaluation range)')
    add_model_options(p)
    p.add_argument('--json', help='also write the metrics JSON here')
    return p


def node_command(args: argparse.Namespace) -> List[str]:
    """Build the densehybrid-node command line from the demo's options."""
    params = {'input_topics': f'[{CAMERA}]', 'device': args.device,
              'checkpoint': args.checkpoint, 'precision': args.precision,
              'backend': args.backend, 'artifacts': ','.join(args.artifacts),
              'inference_width': args.inference_width}
    cmd = _tool('ros.main') + ['--autostart', '--ros-args']
    for name, value in params.items():
        if value:                      # empty: the node's default (the embedded model, ...)
            cmd += ['-p', f'{name}:={value}']
    return cmd


def _tool(module: str) -> List[str]:
    return [sys.executable, '-m', f'densehybrid_ros.{module}']


def _run(step: str, cmd: List[str], env: dict) -> None:
    print(f'[demo] {step}', flush=True)
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{step} failed (exit {proc.returncode}): {" ".join(cmd)}')


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # A private domain unless the user chose one: keep off a shared graph.
    env = child_env(int(os.environ.get('ROS_DOMAIN_ID', 50 + os.getpid() % 50)))
    started = time.monotonic()
    bag, live = out / 'sample_bag', out / 'live_bag'
    make_bag = _tool('tools.rostools.make_bag') + [
        '--sequence', '--speed', str(SPEED), '--output', str(bag), '--frames', str(args.frames),
        '--size', *map(str, args.size)]
    if args.seed is not None:
        make_bag += ['--seed', str(args.seed)]
    node_cmd = node_command(args)
    try:
        _run('writing the sample bag', make_bag, env)
        print('[demo] starting the node (log: node.log)', flush=True)
        with open(out / 'node.log', 'w') as log:
            node = subprocess.Popen(node_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            print('[demo] replaying the bag into the node and recording its outputs', flush=True)
            replay = subprocess.Popen(
                _tool('tools.rostools.replay') + [
                    str(bag), '--wait-for', SCORE_TOPIC, '--record', str(live),
                    '--wait-subscribers', '120', '--wait-timeout', '120'], env=env)
            while replay.poll() is None:
                if node.poll() is not None:         # the node died: say why, stop waiting
                    replay.terminate()
                    replay.wait()
                    tail = (out / 'node.log').read_text().strip().splitlines()[-5:]
                    raise RuntimeError('the node exited (exit %s):\n  %s'
                                       % (node.returncode, '\n  '.join(tail)))
                time.sleep(0.5)
            if replay.returncode != 0:
                raise RuntimeError(f'replay failed (exit {replay.returncode})')
        finally:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
        eval_cmd = _tool('tools.evaluation.eval_bag') + [str(live), '--recorded', '--output',
                                                         str(out / 'eval')]
        if args.checkpoint:
            eval_cmd += ['--checkpoint', args.checkpoint]
        _run('evaluating what the live node published', eval_cmd, env)
    except RuntimeError as exc:
        print(f'densehybrid-demo: error: {exc}', file=sys.stderr)
        return 1
    metrics = json.loads((out / 'eval' / 'metrics.json').read_text())
    anomaly, open_set = metrics.get('anomaly') or {}, metrics.get('open_set') or {}
    instances = (metrics.get('components') or {}).get('instances') or {}
    summary = {
        'frames': metrics.get('frames'), 'seconds': round(time.monotonic() - started, 1),
        'ap': anomaly.get('ap'), 'auroc': anomaly.get('auroc'), 'fpr95': anomaly.get('fpr95'),
        'open_miou': open_set.get('open_miou'), 'closed_miou': open_set.get('closed_miou'),
        'objects_f1': instances.get('f1_mean'), 'objects_ppv': instances.get('ppv'),
        'sequence': metrics.get('sequence'),
        'pictures': str(out / 'eval' / 'frames'),
        'megabytes_written': round(_megabytes(out), 1),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f'[demo] done in {summary["seconds"]} s: AP {_fmt(summary["ap"])}, '
          f'FPR95 {_fmt(summary["fpr95"])}, open-mIoU {_fmt(summary["open_miou"])}; objects '
          f'(instances) F1 {_fmt(summary["objects_f1"])}, PPV {_fmt(summary["objects_ppv"])}')
    if summary['sequence']:
        print(f'[demo] {sequence_line(summary["sequence"])}')
    print(f'[demo] overlay, heatmap and open-set pictures: {summary["pictures"]}/')
    print(f'[demo] {summary["megabytes_written"]} MB written to {out}/ (sample bag, recording, '
          f'evaluation); delete it when done')
    return 0


def _megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) / 1e6


def _fmt(value: object) -> str:
    return f'{value:.3f}' if isinstance(value, float) else str(value)


if __name__ == '__main__':
    sys.exit(main())
