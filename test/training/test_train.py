"""densehybrid-train: the loss, a tiny run that learns, resume, torchrun DDP, folder errors."""

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from densehybrid_ros.models.checkpoint import load_checkpoint, save_checkpoint
from densehybrid_ros.models import build_model
from densehybrid_ros.training.train import load_state, lr_at, main
from densehybrid_ros.training.data import EpochSampler

REPO = Path(__file__).resolve().parents[2]
TINY = ['--arch', 'ladder_resnet18_half', '--batch-size', '2', '--crop', '48', '64',
        '--scale', '0.8', '1.2', '--scene-size', '64', '96', '--val-size', '64', '96',
        '--train-scenes', '6', '--val-scenes', '3', '--calib-scenes', '3', '--workers', '0',
        '--threads', '2', '--no-progress', '--warmup', '2', '--save-every', '2',
        # Scenes prepared in this process: a forked pool child of a pytest worker whose ROS probe
        # threads run can deadlock (it hung a CI run for 600 s); test_synthetic covers the pool.
        '--prepare-workers', '1']


def _run(tmp_path: Path, *extra: str, name: str = 'run') -> dict:
    out = tmp_path / name
    rc = main(['synthetic', '--output', str(out), '--json', str(out / 'm.json'),
               '--cache', str(tmp_path / 'cache'), *TINY, *extra])
    assert rc == 0
    return json.loads((out / 'm.json').read_text()) if (out / 'm.json').exists() else {}


def test_schedule_and_sampler():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(99, 100, 1.0, 10) < 0.05
    keys = list(EpochSampler(10, 2, 0, 1, 0, 0, 12))
    assert len(keys) == 24 and {e for e, _ in keys} == {0, 1, 2}
    tail = list(EpochSampler(10, 2, 0, 1, 0, 7, 12))
    assert tail == keys[14:]
    ranks = [set(EpochSampler(10, 2, r, 2, 0, 0, 2)) for r in (0, 1)]
    assert not ranks[0] & ranks[1]


# ------------------------------------------------------------------------------ training
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('train')
    report = _run(tmp, '--iters', '30', '--lr', '3e-3', '--seed', '1')
    return tmp, report


def test_tiny_run_lowers_the_loss_and_writes_a_checkpoint(trained):
    tmp, report = trained
    assert report['iterations'] == 30
    assert report['loss_last'] < 0.8 * report['loss_first']
    model, meta = load_checkpoint(report['checkpoint'])
    assert meta['arch'] == 'ladder_resnet18_half' and meta['class_names'][0] == 'road'
    cal = meta['calibration']
    assert cal['score_p01'] <= cal['threshold'] <= cal['score_p99'] or cal['tpr'] >= 0.95
    metrics = meta['train']['metrics']
    for key in ('miou', 'ap', 'auroc', 'fpr95', 'open_miou'):
        assert key in metrics
    for kind in ('hybrid', 'generative', 'discriminative'):
        assert 0.0 <= metrics[kind]['ap'] <= 1.0
    assert '--iters 30' in meta['train']['command']


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    common = ['--iters', '5', '--no-prepare', '--val-scenes', '1', '--calib-scenes', '1']
    _run(tmp_path, *common, '--stop-after', '3', name='a')
    assert load_state(tmp_path / 'a' / 'last.pt')['iteration'] == 3
    assert not (tmp_path / 'a' / 'model.pt').exists()
    _run(tmp_path, *common, '--resume', name='a')
    _run(tmp_path, *common, name='b')
    wa = torch.load(tmp_path / 'a' / 'last.pt', weights_only=True)
    wb = torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)
    assert wa['iteration'] == wb['iteration'] == 5
    for k, v in wb['model'].items():
        assert torch.allclose(wa['model'][k].float(), v.float(), atol=1e-5), k


def test_a_stage_records_every_stage_before_it(trained, tmp_path):
    first = trained[1]['checkpoint']
    _run(tmp_path, '--iters', '1', '--init', first, '--val-scenes', '1', '--calib-scenes', '1',
         name='second')
    _run(tmp_path, '--iters', '1', '--init', str(tmp_path / 'second' / 'model.pt'),
         '--val-scenes', '1', '--calib-scenes', '1', '--max-inference-width', '80', name='third')
    _, meta = load_checkpoint(tmp_path / 'third' / 'model.pt')
    assert meta['max_inference_width'] == 80
    assert 'max_inference_width' not in load_checkpoint(tmp_path / 'second' / 'model.pt')[1]
    stages = meta['train']['stages']
    assert [s['init'] for s in stages] == [None, first, str(tmp_path / 'second' / 'model.pt')]
    assert stages[0]['command'] == load_checkpoint(first)[1]['train']['command']
    assert stages[0]['iterations'] == 30 and stages[-1]['command'] == meta['train']['command']
    assert all(0.0 <= s['miou'] <= 1.0 for s in stages)


def test_finetune_heads_only_from_a_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model('ladder_resnet18_half', 19)
    init = save_checkpoint(tmp_path / 'init.pt', model, {})
    _run(tmp_path, '--iters', '2', '--init', str(init), '--finetune', 'heads',
         '--val-scenes', '1', '--calib-scenes', '2', '--calib-family', 'varied',
         '--calib-target-fpr', '0.02')
    # The model being calibrated has no threshold yet: no 'uncalibrated checkpoint' warning.
    assert 'no calibrated threshold' not in capsys.readouterr().err
    tuned, meta = load_checkpoint(tmp_path / 'run' / 'model.pt')
    cal = meta['calibration']
    assert 'calibration 2 scenes (varied family' in cal['measured_on']
    assert cal['target_fpr'] == 0.02 and cal['fpr'] <= 0.02 and 'target_tpr' not in cal
    # init had no training record: the file records this stage only
    assert [s['command'] for s in meta['train']['stages']] == [meta['train']['command']]
    before = model.state_dict()
    for k, v in tuned.state_dict().items():
        if 'running' in k or 'num_batches' in k:
            continue                                  # BatchNorm statistics always update
        changed = not torch.equal(before[k], v)
        assert changed == k.startswith(('logits.', 'logits_ood.')), k


def _cityscapes(root: Path, splits=('train', 'val'), n=3) -> Path:
    from densehybrid_ros.data.synthetic import make_scene
    for split in splits:
        for i in range(n):
            d = root / 'leftImg8bit' / split / 'city'
            g = root / 'gtFine' / split / 'city'
            d.mkdir(parents=True, exist_ok=True)
            g.mkdir(parents=True, exist_ok=True)
            scene = make_scene(i, (48, 64))
            cv2.imwrite(str(d / f'city_{i}_0_leftImg8bit.png'), scene['image'][..., ::-1])
            cv2.imwrite(str(g / f'city_{i}_0_gtFine_labelTrainIds.png'), scene['label'])
    return root


def test_cityscapes_folder_run(tmp_path):
    root = _cityscapes(tmp_path / 'cs')
    negs = tmp_path / 'neg'
    negs.mkdir()
    cv2.imwrite(str(negs / 'n.jpg'), np.random.default_rng(0).integers(
        0, 255, (40, 40, 3), dtype=np.uint8))
    rc = main([str(root), '--negatives', str(negs), '--output', str(tmp_path / 'o'),
               '--iters', '2', *TINY])
    assert rc == 0
    _, meta = load_checkpoint(tmp_path / 'o' / 'model.pt')
    assert 'val' in meta['calibration']['measured_on']


def test_drive_frames_join_the_synthetic_training_scenes(tmp_path):
    from densehybrid_ros.data.synthetic import SequenceFrameCache
    from densehybrid_ros.training.data import build_data
    from densehybrid_ros.training.train import build_parser
    args = build_parser().parse_args(['synthetic', '--cache', str(tmp_path / 'cache'), *TINY,
                                      '--drive-frames', '4'])
    train_set, _, _, desc = build_data(args, 0)
    assert len(train_set) == 6 + 4 and '+ 4 drive frames (train obstacles)' in desc
    drives = SequenceFrameCache(4, (64, 96), 'train', tmp_path / 'cache')
    assert all(drives.path(i).is_file() for i in range(4))           # prepared with the scenes
    np.testing.assert_array_equal(train_set.base[7]['image'], drives[1]['image'])
    batch = train_set[(0, 8)]                               # a crop of a drive frame, negative in
    assert batch['image'].shape == (3, 48, 64) and batch['outlier'].any()


def test_small_outlier_weights_reach_the_training_batches(tmp_path, capsys):
    from densehybrid_ros.training.data import build_data, outlier_weights
    from densehybrid_ros.training.train import build_parser
    args = build_parser().parse_args(['synthetic', '--cache', str(tmp_path / 'cache'), *TINY,
                                      '--small-outlier-weight', '3', '--paste-scale', '0.1',
                                      '0.3'])
    train_set, _, _, _ = build_data(args, 0)
    item = train_set[(0, 1)]
    out = item['outlier'].numpy()
    assert out.any()
    np.testing.assert_array_equal(item['outlier_weight'].numpy(),
                                  outlier_weights(out, 1024.0, 3.0))
    assert item['outlier_weight'].numpy()[out == 1].max() > 1.0      # a small paste weighs more
    plain = build_data(build_parser().parse_args(['synthetic', '--cache',
                                                  str(tmp_path / 'cache'), *TINY]), 0)[0]
    assert 'outlier_weight' not in plain[(0, 1)]
    _run(tmp_path, '--iters', '2', '--small-outlier-weight', '3', name='weighted')
    with pytest.raises(SystemExit) as stop:
        main(['synthetic', '--output', str(tmp_path / 'o'), *TINY,
              '--small-outlier-weight', '0.5'])
    assert stop.value.code == 2
    assert '--small-outlier-weight must be at least 1' in capsys.readouterr().err


def test_drive_frames_need_synthetic_data(tmp_path, capsys):
    root = _cityscapes(tmp_path / 'cs')
    rc = main([str(root), '--output', str(tmp_path / 'o'), '--iters', '2', *TINY,
               '--drive-frames', '4'])
    assert rc == 2
    assert "--drive-frames adds synthetic drive frames: it needs the 'synthetic'" in \
        capsys.readouterr().err


def _no_label(root):
    next((root / 'gtFine' / 'train').rglob('*.png')).unlink()


def _bad_size(root):
    cv2.imwrite(str(next((root / 'gtFine' / 'train').rglob('*.png'))),
                np.zeros((5, 5), np.uint8))


@pytest.mark.parametrize('case, message', [
    ('no_label', 'no label'), ('bad_size', 'size mismatch'), ('empty_negatives', 'no images'),
    ('no_val', 'leftImg8bit/val')])
def test_bad_folders_fail_before_training(tmp_path, capsys, case, message):
    root = _cityscapes(tmp_path / 'cs', splits=('train',) if case == 'no_val' else
                       ('train', 'val'))
    negs = tmp_path / 'neg'
    negs.mkdir()
    if case != 'empty_negatives':
        cv2.imwrite(str(negs / 'n.png'), np.zeros((8, 8, 3), np.uint8))
    {'no_label': _no_label, 'bad_size': _bad_size}.get(case, lambda r: None)(root)
    rc = main([str(root), '--negatives', str(negs), '--output', str(tmp_path / 'o'),
               '--iters', '2', *TINY])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'o' / 'last.pt').exists()


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        main(['--help'])
    assert 'example' in capsys.readouterr().out


# 9 s here; once in a clean-clone run on two busy workers the two gloo ranks hung for the whole
# 300 s timeout without a line of output (not reproduced since): a short timeout and one rerun
@pytest.mark.flaky(reruns=1)
def test_torchrun_two_processes_on_cpu(tmp_path):
    torchrun = Path(sys.executable).parent / 'torchrun'
    if not torchrun.exists():
        torchrun = shutil.which('torchrun')
    if torchrun is None:
        pytest.skip('torchrun not installed')
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    out = tmp_path / 'ddp'
    proc = subprocess.run(
        [str(torchrun), '--standalone', '--nproc_per_node', '2', '-m',
         'densehybrid_ros.training.train', 'synthetic', '--output', str(out),
         '--cache', str(tmp_path / 'cache'), '--iters', '3',
         *TINY, '--threads', '1', '--json', str(out / 'm.json')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((out / 'm.json').read_text())
    _, meta = load_checkpoint(report['checkpoint'])
    assert meta['train']['processes'] == 2 and report['iterations'] == 3


def test_training_figures_come_from_the_segmenter_path(trained):
    """The calibration stored in model.pt is what the Segmenter gives on the same images."""
    from densehybrid_ros.deploy.segmenter import Segmenter
    from densehybrid_ros.training.train import build_parser
    from densehybrid_ros.training.data import build_data
    tmp, report = trained
    model, meta = load_checkpoint(report['checkpoint'])
    segmenter = Segmenter.from_model(model, meta, device='cpu')
    args = build_parser().parse_args(['synthetic', '--cache', str(tmp / 'cache'), *TINY,
                                      '--seed', '1', '--no-prepare'])
    _, calib, _, _ = build_data(args, 0)
    samples = [calib.sample(i) for i in range(len(calib))]
    scores = np.concatenate([r.score.ravel() for r in segmenter([s['image'] for s in samples],
                                                                ('score',))])
    anomaly = np.concatenate([s['anomaly'].ravel() for s in samples])
    cal = meta['calibration']
    assert cal['anomaly_pixels'] == int((anomaly == 1).sum())
    assert cal['tpr'] == float(np.mean(scores[anomaly == 1] > cal['threshold']))
    assert cal['fpr'] == float(np.mean(scores[anomaly == 0] > cal['threshold']))


@pytest.mark.parametrize('case, message', [
    ('junk', 'densehybrid-train: error: '),
    ('classes', 'has 19 classes, not 5 (--num-classes)'),
    ('resume', '--resume: '),
])
def test_bad_start_gives_an_error_line_not_a_traceback(tmp_path, capsys, case, message):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint')
    good = save_checkpoint(tmp_path / 'good.pt', build_model('ladder_resnet18_half', 19), {})
    extra = {'junk': ['--init', str(junk)], 'classes': ['--init', str(good)],
             'resume': ['--resume']}[case]
    args = ['synthetic', '--output', str(tmp_path / 'o'), '--iters', '2', *TINY, *extra]
    if case == 'classes':
        args += ['--num-classes', '5']
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
    assert not (tmp_path / 'o' / 'last.pt').exists() and not (tmp_path / 'o' / 'model.pt').exists()


def test_ctrl_c_exits_130_even_with_a_planned_stop(tmp_path):
    """Ctrl-C is an interruption (130) whether or not --stop-after / --max-time were given."""
    import signal
    import time
    out = tmp_path / 'o'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'densehybrid_ros.training.train', 'synthetic', '--output', str(out),
         '--cache', str(tmp_path / 'cache'), *TINY, '--iters', '100000', '--stop-after', '90000',
         '--val-scenes', '1', '--calib-scenes', '1'], env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / 'last.pt').exists() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert 'continue with --resume' in stdout and 'Traceback' not in stderr


def test_the_checkpoint_records_the_image_domain_it_was_trained_on(trained):
    """Issue 24: the node and densehybrid-segment read it to warn about a domain mismatch."""
    from densehybrid_ros.core.domain import model_domain
    _, report = trained
    _, meta = load_checkpoint(report['checkpoint'])
    assert meta['train']['domain'] == 'synthetic' and model_domain(meta) == 'synthetic'
