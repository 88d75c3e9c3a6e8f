"""DenseHybrid training: closed-set segmentation plus the hybrid open-set objective.

The loss is :func:`densehybrid_ros.training.losses.densehybrid_loss`, the data sets come from
:mod:`densehybrid_ros.training.data`, what a finished run measures and records from
:mod:`densehybrid_ros.training.report`; this module is the run itself (``_run`` reads its phases
top to bottom, nanoGPT style, with the loop and resume beside it).

The same command runs single-process or under ``torchrun`` (DDP: gloo on CPU, nccl on GPU).
Training state goes to ``OUTPUT/last.pt`` every ``--save-every`` iterations and on interruption;
``--resume`` continues from it. At the end, rank 0 calibrates on a held-out split (threshold at
95 % TPR or at ``--calib-target-fpr``, heatmap range) and evaluates, and writes
``OUTPUT/model.pt`` (a project checkpoint). Ctrl-C or SIGTERM stops every rank after the same
step, saves last.pt and exits 128 + the signal (Ctrl-C: 130) with one line (:mod:`.interrupt`);
under torchrun, torchrun adds its own traceback and exit 1, which ``--nproc-per-node N`` (the
same agent, run in-process) avoids.
"""

import argparse
from contextlib import nullcontext
from dataclasses import dataclass, field
import json
import math
import multiprocessing
import os
from pathlib import Path
import shlex
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..core.classes import default_class_names, default_palette
from ..core.domain import training_domain
from ..data.cityscapes import DatasetError
from ..data.synthetic import TRAINING_FAMILIES
from .losses import densehybrid_loss
from ..models import ARCHS, build_model, DenseHybridModel
from .data import build_data, EpochSampler, median_frequency_weights, TrainSet
from .interrupt import agree_to_stop, launch, PLANNED, SIGNALLED, StopSignals
from .report import (calibrate_model, earlier_stages, evaluate, format_metrics, stage_record,
                     training_segmenter)

STATE_FORMAT = 'densehybrid_ros/training/train-state/1'

EXAMPLE = '''examples (the embedded default model's staged recipe is in models/MODEL_CARD.md):
  densehybrid-train synthetic --iters 1130 --energy-margin -5 --class-weights sqrt \\
      --cache runs/cache --output runs/default --json runs/default/metrics.json
  densehybrid-train synthetic --init runs/default/model.pt --scene-size 512 1024 \\
      --crop 192 384 --val-size 512 1024 --energy-margin -5 --inlier-margin 5 --beta 0.06 \\
      --disc-weight 0.3 --iters 500 --lr 3e-4 --cache runs/cache --output runs/stage2
  densehybrid-train synthetic ... --resume          # continue after an interruption
  densehybrid-train synthetic --nproc-per-node 2 --iters 100 --output runs/ddp   # DDP
  densehybrid-train /data/cityscapes --negatives /data/ade20k/images \\
      --init models/densehybrid_ladder_resnet18_synthetic.pt --finetune heads --output runs/cs
'''


# ------------------------------------------------------------------------- distributed etc.
def setup_distributed(device_arg: str) -> Tuple[int, int, torch.device]:
    """Init the process group when launched by torchrun; returns (rank, world, device)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if device_arg == 'auto':
        device_arg = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device_arg)
    if device.type == 'cuda':
        device = torch.device('cuda', local if device.index is None else device.index)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return rank, world, device


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def lr_at(it: int, total: int, base: float, warmup: int, final: float = 0.01) -> float:
    """Linear warm-up, then cosine decay to ``final * base``."""
    if it < warmup:
        return base * (it + 1) / warmup
    t = min(1.0, (it - warmup) / max(1, total - warmup))
    return base * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t)))


def _plain_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}


def save_state(path: Path, model: DenseHybridModel, optimizer: torch.optim.Optimizer,
               iteration: int, args: argparse.Namespace, elapsed: float) -> None:
    """Write the resumable training state atomically."""
    state = {'format': STATE_FORMAT, 'arch': model.arch, 'num_classes': model.num_classes,
             'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
             'iteration': iteration, 'args': _plain_args(args), 'elapsed': elapsed}
    tmp = path.with_suffix('.tmp')
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> Dict[str, Any]:
    """Read a training state written by :func:`save_state`."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
        raise ValueError(f'{path} is not a densehybrid_ros training state')
    return state


# ------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    """Build the ``densehybrid-train`` command line."""
    p = argparse.ArgumentParser(
        prog='densehybrid-train', description=__doc__.split('\n')[0], epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data', help="'synthetic' or a Cityscapes-format folder "
                                '(leftImg8bit/<split>/, gtFine/<split>/ *_labelTrainIds.png)')
    p.add_argument('--output', default='runs/train', help='folder for last.pt and model.pt')
    p.add_argument('--json', help='write the final metrics as JSON here')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the weights, the sample order and the pasted negatives '
                        '(default 0)')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:1 ...')
    p.add_argument('--arch', default='ladder_resnet18_half',
                   help=f'architecture of a new model: {", ".join(sorted(ARCHS))} (default '
                        "ladder_resnet18_half, the embedded model's; --init keeps its own)")
    p.add_argument('--num-classes', type=int, default=19,
                   help='closed-set classes (default 19, Cityscapes train ids)')
    p.add_argument('--init', '--checkpoint', dest='init',
                   help='start from this project checkpoint (imported official ones too)')
    p.add_argument('--finetune', choices=('all', 'heads'), default='all',
                   help='train every weight, or only the two heads')
    p.add_argument('--resume', action='store_true', help='continue from OUTPUT/last.pt')
    p.add_argument('--iters', type=int, default=1800, help='total optimisation steps')
    p.add_argument('--batch-size', type=int, default=8, help='per process')
    p.add_argument('--crop', type=int, nargs=2, default=(128, 256), metavar=('H', 'W'),
                   help='training crop size, after the scale jitter (default 128 256)')
    p.add_argument('--scale', type=float, nargs=2, default=(0.75, 1.25), metavar=('MIN', 'MAX'),
                   help='random rescale range of a sample before cropping (default 0.75 1.25)')
    p.add_argument('--lr', type=float, default=1.5e-3,
                   help='peak AdamW learning rate; cosine decay to 1 %% of it (default 1.5e-3)')
    p.add_argument('--weight-decay', type=float, default=1e-4,
                   help='AdamW weight decay (default 1e-4)')
    p.add_argument('--warmup', type=int, default=100,
                   help='iterations of linear learning-rate warm-up (default 100)')
    p.add_argument('--beta', type=float, default=0.03, help='generative term weight')
    p.add_argument('--disc-weight', type=float, help='dataset-head weight (default 10*beta)')
    p.add_argument('--ce-weight', type=float, default=1.0,
                   help='closed-set cross-entropy term weight (default 1.0)')
    p.add_argument('--energy-margin', type=float, help='optional margin on outlier logsumexp')
    p.add_argument('--inlier-margin', type=float,
                   help='optional: also push inlier logsumexp above this (hinge, weight beta)')
    p.add_argument('--inlier-power', type=float, default=1.0,
                   help='power of that hinge: 2 pushes the low tail of inlier logsumexp (class '
                        'boundaries) harder than pixels just below the margin')
    p.add_argument('--small-outlier-weight', type=float, metavar='MAX',
                   help='weigh outlier pixels in the open-set terms by sqrt(AREA / pixels of '
                        'their 8-connected component in the crop), clipped to [1, MAX]: far, '
                        'small obstacles pull as hard as near ones (default: all alike)')
    p.add_argument('--small-outlier-area', type=float, default=1024.0, metavar='AREA',
                   help='component size in crop pixels from which the weight is 1 (default '
                        '1024, 32 x 32)')
    p.add_argument('--class-weights', choices=('none', 'sqrt'), default='none',
                   help="closed-set CE class weights: none (the authors' loss) or sqrt of "
                        'median frequency / frequency over the training labels (rare classes up)')
    p.add_argument('--negatives', default='synthetic',
                   help="negative images folder, or 'synthetic' (the training anomaly family)")
    p.add_argument('--negative-family', default='train', choices=sorted(TRAINING_FAMILIES),
                   help="procedural negatives for --negatives synthetic: 'train' (the embedded "
                        "model's) or 'varied' (varied shapes, 1/f textures, scene parts, "
                        'log-uniform scale, on the road, partly occluded)')
    p.add_argument('--negative-masks', help='instance masks for --negatives (same stems, .png)')
    p.add_argument('--paste-scale', type=float, nargs=2, default=(0.05, 0.5),
                   metavar=('MIN', 'MAX'),
                   help="pasted patch size relative to the crop's shorter side")
    p.add_argument('--scene-size', type=int, nargs=2, default=(256, 512), metavar=('H', 'W'),
                   help='synthetic data: size the training scenes are generated at '
                        '(default 256 512)')
    p.add_argument('--train-scenes', type=int, default=2000,
                   help='synthetic data: training scenes, seeds 0..N-1 (default 2000)')
    p.add_argument('--drive-frames', type=int, default=0, metavar='N',
                   help='synthetic data: add N frames of driving sequences (4 per street, '
                        'obstacles of --negative-family standing on the road 30-60 units '
                        'ahead, at --scene-size) to the training scenes (default 0)')
    p.add_argument('--val-scenes', type=int, default=200,
                   help='synthetic data: validation scenes of the held-out eval family '
                        '(default 200)')
    p.add_argument('--calib-scenes', type=int, default=100,
                   help='synthetic data: calibration scenes for the threshold (default 100)')
    p.add_argument('--calib-family', default='train', choices=(*TRAINING_FAMILIES, 'eval'),
                   help="anomaly family of the calibration scenes: a training family ('varied' "
                        "for a model trained on it) or 'eval' (then eval is not held out)")
    p.add_argument('--calib-target-fpr', type=float,
                   help='threshold rule: flag the most calibration anomalies while flagging at '
                        'most this fraction of inlier pixels (default: flag 95 %% of anomalies)')
    p.add_argument('--max-inference-width', type=int,
                   help='widest native input the model is meant for, stored in the '
                        'checkpoint: wider cameras run downscaled to it when the node has '
                        'inference_width 0 (measured for the embedded model: 1024)')
    p.add_argument('--val-size', type=int, nargs=2, default=(256, 512), metavar=('H', 'W'),
                   help='synthetic data: size of the validation and calibration scenes '
                        '(default 256 512)')
    p.add_argument('--val-split', default='val', help='held-out split of a folder data set')
    p.add_argument('--cache', help='folder caching generated synthetic scenes (.npz)')
    p.add_argument('--no-prepare', action='store_true',
                   help='do not pre-generate the scene cache before training')
    p.add_argument('--prepare-workers', type=int, default=os.cpu_count() or 1, metavar='N',
                   help='processes that pre-generate the scene cache (default: one per CPU)')
    p.add_argument('--workers', type=int, default=1, help='data loader processes')
    p.add_argument('--threads', type=int, help='torch threads per process')
    p.add_argument('--save-every', type=int, default=100, metavar='N',
                   help='write OUTPUT/last.pt every N iterations (default 100)')
    p.add_argument('--stop-after', type=int,
                   help='stop (as if interrupted) after this many iterations in this run')
    p.add_argument('--max-time', type=float, help='stop (resumable) after this many seconds')
    p.add_argument('--no-amp', action='store_true', help='no mixed precision on GPU')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--nproc-per-node', type=int, default=1, metavar='N',
                   help='train in N processes (DDP) under the torchrun agent, run in this '
                        'process so Ctrl-C ends with one line and exit 130 (plain torchrun '
                        'prints its own traceback and exits 1)')
    return p


class TrainError(ValueError):
    """A run that cannot start as asked (bad --init, --resume with nothing to resume)."""


@dataclass
class Progress:
    """Where the training loop ended: iteration, seconds, losses and why it stopped."""

    iteration: int
    elapsed: float
    losses: List[float] = field(default_factory=list)
    stopped: Optional[str] = None   # None: all --iters done; 'signal' (Ctrl-C, SIGTERM); 'planned'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``densehybrid-train``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.small_outlier_weight is not None and not (args.small_outlier_weight >= 1.0
                                                      and args.small_outlier_area > 0):
        parser.error('--small-outlier-weight must be at least 1 and --small-outlier-area '
                     'positive')
    if args.nproc_per_node > 1 and 'LOCAL_RANK' not in os.environ:   # the launcher, not a rank
        return launch(args.nproc_per_node, 'densehybrid_ros.training.train',
                      sys.argv[1:] if argv is None else list(argv), 'densehybrid-train')
    signals = StopSignals(int(os.environ.get('WORLD_SIZE', '1')))
    rank = int(os.environ.get('RANK', '0'))
    world = 1
    try:
        rank, world, device = setup_distributed(args.device)
        return _run(args, rank, world, device, argv, signals)
    except (DatasetError, CheckpointError, TrainError) as exc:
        if rank == 0:                     # every rank fails alike: one line, not one per rank
            print(f'densehybrid-train: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:             # outside the loop: data, calibration, evaluation
        if rank == 0:
            state = Path(args.output) / 'last.pt'
            saved = f'{state} holds the last saved state (--resume)' if state.is_file() \
                else 'nothing saved'
            print(f'densehybrid-train: interrupted; {saved}', file=sys.stderr)
        return signals.exit_code
    finally:
        signals.in_loop = False           # a late signal must not cut the teardown short
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
        signals.restore()


def _run(args: argparse.Namespace, rank: int, world: int, device: torch.device,
         argv: Optional[Sequence[str]], signals: StopSignals) -> int:
    """One run, phase by phase: data, model, train; then rank 0 calibrates, evaluates, saves."""
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(args.seed)
    out = Path(args.output)
    state_path = out / 'last.pt'
    if args.resume and not state_path.is_file():     # never start from scratch silently
        raise TrainError(f'--resume: {state_path} does not exist (nothing to continue; run '
                         f'without --resume to start a new run there)')
    out.mkdir(parents=True, exist_ok=True)

    # -- data: fails on bad folders before any training
    train_set, calib_set, val_set, data_desc = build_data(args, rank)
    _barrier(world)

    # -- model and optimiser, restored from last.pt with --resume
    model, class_names = init_model(args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=args.lr, weight_decay=args.weight_decay)
    start, elapsed = 0, 0.0
    if args.resume:
        start, elapsed = resume(state_path, model, optimizer, rank)

    # -- train (every rank)
    progress = train(args, model, optimizer, train_set, device, rank, world, start, elapsed,
                     state_path, signals)
    if progress.stopped:
        if rank == 0:
            save_state(state_path, model, optimizer, progress.iteration, args, progress.elapsed)
            print(f'stopped at iteration {progress.iteration}/{args.iters}; state saved to '
                  f'{state_path}; continue with --resume', flush=True)
        return signals.exit_code if progress.stopped == 'signal' else 0
    _barrier(world)
    if rank != 0:
        return 0

    # -- calibrate and evaluate through the Segmenter (rank 0), then save model.pt
    print('calibrating ...', flush=True)
    segmenter = training_segmenter(model, device)
    calibration = calibrate_model(segmenter, calib_set,
                                  measured_on=f'{len(calib_set)} held-out images: {data_desc}',
                                  target_fpr=args.calib_target_fpr)
    print('evaluating ...', flush=True)
    metrics = evaluate(model, val_set, device, args.num_classes, calibration['threshold'])
    command = 'densehybrid-train ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    meta = {
        'class_names': class_names,
        'palette': default_palette(args.num_classes, class_names),
        'calibration': calibration,
        **({'max_inference_width': args.max_inference_width} if args.max_inference_width
           else {}),
        'train': {'command': command, 'data': data_desc, 'domain': training_domain(args.data),
                  'iterations': progress.iteration,
                  'epochs': round(progress.iteration * args.batch_size * world
                                  / max(1, len(train_set)), 2),
                  'seed': args.seed, 'processes': world, 'device': str(device),
                  'hours': round(progress.elapsed / 3600, 3), 'init': args.init,
                  'finetune': args.finetune, 'args': _plain_args(args), 'metrics': metrics},
    }
    meta['train']['stages'] = [*earlier_stages(args.init), stage_record(meta['train'])]
    model.cpu()
    path = save_checkpoint(out / 'model.pt', model, meta)
    losses = progress.losses
    k = max(1, min(5, len(losses) // 3))
    report = {'checkpoint': str(path), 'calibration': calibration, 'metrics': metrics,
              'iterations': progress.iteration, 'hours': meta['train']['hours'],
              'loss_first': float(np.mean(losses[:k])) if losses else None,
              'loss_last': float(np.mean(losses[-k:])) if losses else None}
    print(json.dumps({k: report[k] for k in ('checkpoint', 'iterations', 'hours')}))
    print(format_metrics(metrics, calibration))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def init_model(args: argparse.Namespace) -> Tuple[DenseHybridModel, List[str]]:
    """Build the model to train (--init checkpoint or a new --arch); returns it and class names."""
    class_names = default_class_names(args.num_classes)
    if args.init:
        model, meta = load_checkpoint(args.init, 'cpu')     # CheckpointError: an error line
        if model.num_classes != args.num_classes:
            raise TrainError(f'{args.init} has {model.num_classes} classes, not '
                             f'{args.num_classes} (--num-classes)')
        class_names = list(meta.get('class_names') or class_names)
    else:
        model = build_model(args.arch, args.num_classes)
    if args.finetune == 'heads':
        for name, prm in model.named_parameters():
            prm.requires_grad = name.startswith(model.head_prefixes)
    return model, class_names


def resume(state_path: Path, model: DenseHybridModel, optimizer: torch.optim.Optimizer,
           rank: int) -> Tuple[int, float]:
    """Load last.pt into the model and optimiser; returns (iteration, seconds so far)."""
    try:
        state = load_state(state_path)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise TrainError(f'--resume: cannot continue from {state_path}: {exc}') from None
    if rank == 0:
        print(f'resuming from {state_path} at iteration {state["iteration"]}', flush=True)
    return int(state['iteration']), float(state.get('elapsed', 0.0))


def train(args: argparse.Namespace, model: DenseHybridModel, optimizer: torch.optim.Optimizer,
          train_set: 'TrainSet', device: torch.device, rank: int, world: int, start: int,
          elapsed: float, state_path: Path, signals: StopSignals) -> Progress:
    """Run the optimisation loop from iteration ``start``; saves last.pt every --save-every.

    A signal (``signals``) or a planned stop ends the loop after the step every rank agrees on.
    """
    model.to(device)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    sampler = EpochSampler(len(train_set), args.batch_size, rank, world, args.seed, start,
                           args.iters)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler,
                        num_workers=args.workers, drop_last=True, pin_memory=False,
                        persistent_workers=False,
                        multiprocessing_context='fork' if args.workers else None)
    class_weights = None
    if args.class_weights == 'sqrt':
        class_weights = median_frequency_weights(train_set.base, args.num_classes).to(device)
        if rank == 0:
            print('class weights: ' + ' '.join(f'{w:.2f}' for w in class_weights.tolist()),
                  flush=True)
    amp = device.type == 'cuda' and not args.no_amp
    scaler = torch.amp.GradScaler('cuda', enabled=amp)
    progress = Progress(start, elapsed)
    t0 = time.time()
    bar = None
    if rank == 0 and not args.no_progress and start < args.iters:
        from tqdm import tqdm
        bar = tqdm(total=args.iters, initial=start, desc='train', dynamic_ncols=True)
    signals.in_loop = True
    try:
        net.train()
        for batch in loader:
            lr = lr_at(progress.iteration, args.iters, args.lr, args.warmup)
            for group in optimizer.param_groups:
                group['lr'] = lr
            x = batch['image'].to(device, non_blocking=True)
            label = batch['label'].to(device, non_blocking=True)
            outlier = batch['outlier'].to(device, non_blocking=True)
            weight = batch.get('outlier_weight')
            weight = None if weight is None else weight.to(device, non_blocking=True)
            with torch.autocast('cuda', dtype=torch.float16) if amp else nullcontext():
                logits, ood = net(x)
            terms = densehybrid_loss(logits, ood, label, outlier, args.beta, args.disc_weight,
                                     args.ce_weight, args.energy_margin, class_weights,
                                     args.inlier_margin, args.inlier_power, weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms['loss']).backward()
            scaler.step(optimizer)
            scaler.update()
            progress.iteration += 1
            it = progress.iteration
            progress.losses.append(float(terms['loss'].detach()))
            if not math.isfinite(progress.losses[-1]):
                raise FloatingPointError(f'loss is not finite at iteration {it}')
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f'{progress.losses[-1]:.3f}',
                                ce=f'{float(terms["ce"]):.3f}',
                                gen=f'{float(terms["gen"]):.2f}',
                                disc=f'{float(terms["disc"]):.3f}', lr=f'{lr:.1e}')
            if rank == 0 and (it % args.save_every == 0 or it == args.iters):
                save_state(state_path, model, optimizer, it, args, elapsed + time.time() - t0)
            planned = (args.stop_after is not None and it - start >= args.stop_after) \
                or (args.max_time is not None and time.time() - t0 > args.max_time)
            wish = SIGNALLED if signals.received else PLANNED if planned else 0
            decision = agree_to_stop(wish, world, device) if it < args.iters else 0
            if decision:
                progress.stopped = 'signal' if decision == SIGNALLED else 'planned'
                break
    except KeyboardInterrupt:     # a second Ctrl-C of a single process: mid-step
        progress.stopped = 'signal'
    finally:
        signals.in_loop = False
        if bar is not None:
            bar.close()
    progress.elapsed = elapsed + time.time() - t0
    return progress


if __name__ == '__main__':
    multiprocessing.freeze_support()
    sys.exit(main())
