"""densehybrid-eval: same figures as the Segmenter + sklearn, recorded outputs, shards, errors."""

import json
import math
from pathlib import Path
import shutil
from typing import Dict, List

import cv2
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, jaccard_score, roc_auc_score, roc_curve

from densehybrid_ros.data.bag_writer import BagWriter
from densehybrid_ros.data.bags import BagReader
from densehybrid_ros.core.outputs import output_topics
from densehybrid_ros.models.checkpoint import load_checkpoint
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.deploy.segmenter import Segmenter
from densehybrid_ros.core.instances import find_instances
from densehybrid_ros.metrics.anomaly import fpr_at_tpr
from densehybrid_ros.metrics.components import ComponentMetrics, scaled_min_sizes
from densehybrid_ros.tools.evaluation import eval_bag
from densehybrid_ros.tools.evaluation.datasets import smiyc_track
from densehybrid_ros.tools.evaluation.results import ModelResults
from densehybrid_ros.tools.rostools.make_bag import write_sample_bag

SIZE = (32, 64)
FRAMES = 4
SEED = 4242
TOL = 0.002


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory) -> Path:
    """A 4-frame sample bag of 32 x 64 synthetic scenes with labels."""
    path = tmp_path_factory.mktemp('bags') / 'sample'
    write_sample_bag(str(path), FRAMES, SIZE, rate=10.0, seed=SEED)
    return path


def run_eval(tmp_path: Path, *argv: str, name: str = 'out') -> Dict:
    """Run densehybrid-eval in-process; returns metrics.json."""
    out = tmp_path / name
    code = eval_bag.main([*argv, '--output', str(out), '--quiet', '--device', 'cpu',
                          '--backend', 'torch'])
    assert code == 0
    return json.loads((out / 'metrics.json').read_text())


@pytest.fixture(scope='module')
def baseline(sample_bag, tiny_checkpoint, tmp_path_factory) -> Dict:
    """One evaluation of the sample bag, with an output bag of the result topics."""
    tmp = tmp_path_factory.mktemp('baseline')
    figures = run_eval(tmp, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--output-bag', str(tmp / 'results'))
    figures['_dir'] = str(tmp / 'out')
    return figures


def test_eval_equals_segmenter_and_sklearn_on_the_same_frames(baseline, tiny_checkpoint):
    segmenter = Segmenter(str(tiny_checkpoint), device='cpu')
    scores, anomalies, y_true, y_pred, inl_true, inl_sem = [], [], [], [], [], []
    for i in range(FRAMES):
        scene = make_scene(SEED + i, SIZE, anomaly_family='eval')
        result = segmenter([scene['image']])[0]
        keep = scene['anomaly'] != 255
        scores.append(result.score[keep])
        anomalies.append(scene['anomaly'][keep] == 1)
        truth = np.where(scene['anomaly'] == 1, 19, scene['label']).astype(int)
        valid = keep & (truth != 255)
        y_true.append(truth[valid])
        y_pred.append(np.where(result.open_set == 255, 19, result.open_set)[valid])
        inl = valid & (truth < 19)
        inl_true.append(truth[inl])
        inl_sem.append(result.semantic[inl])
    score, is_anomaly = np.concatenate(scores), np.concatenate(anomalies)
    fpr, tpr, _ = roc_curve(is_anomaly, score, drop_intermediate=False)
    got = baseline['anomaly']
    assert baseline['frames'] == FRAMES and got['pixels'] == score.size
    assert got['ap'] == pytest.approx(average_precision_score(is_anomaly, score), abs=TOL)
    assert got['auroc'] == pytest.approx(roc_auc_score(is_anomaly, score), abs=TOL)
    assert got['fpr95'] == pytest.approx(fpr_at_tpr(fpr, tpr), abs=TOL)
    flagged = score > -2.0                                    # the checkpoint's threshold
    assert got['at_threshold']['threshold'] == -2.0
    assert got['at_threshold']['tpr'] == pytest.approx(flagged[is_anomaly].mean(), abs=TOL)
    assert got['at_threshold']['fpr'] == pytest.approx(flagged[~is_anomaly].mean(), abs=TOL)
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    iou = jaccard_score(y_true, y_pred, labels=list(range(20)), average=None, zero_division=0)
    present = np.isin(np.arange(20), np.union1d(y_true, y_pred))
    open_set = baseline['open_set']
    assert open_set['open_miou'] == pytest.approx(iou[:19][present[:19]].mean(), abs=1e-9)
    assert open_set['anomaly_iou'] == pytest.approx(iou[19], abs=1e-9)
    inl_true, inl_sem = np.concatenate(inl_true), np.concatenate(inl_sem)
    closed = jaccard_score(inl_true, inl_sem, labels=list(range(19)), average=None,
                           zero_division=0)
    seen = np.isin(np.arange(19), np.union1d(inl_true, inl_sem))
    assert open_set['closed_miou'] == pytest.approx(closed[seen].mean(), abs=1e-9)


def test_outputs_are_written(baseline) -> None:
    out = Path(baseline['_dir'])
    import csv
    with (out / 'frames.csv').open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r['index']) for r in rows] == list(range(FRAMES))
    assert sum(int(r['anomaly_pixels']) for r in rows) == baseline['anomaly']['anomaly_pixels']
    assert sum(int(r['anomalies_rejected']) for r in rows) == \
        baseline['unknown_mask_counts'][0]
    for name in ('metrics.json', 'state.npz', 'pr_curve.png', 'roc_curve.png',
                 'score_histogram.png', 'frames/000000_overlay.png',
                 'frames/000000_anomaly_heatmap.png', 'frames/000002_open_set_color.png'):
        assert (out / name).is_file(), name
    assert not (out / 'frames/000003_overlay.png').exists()          # --pictures 3
    assert cv2.imread(str(out / 'frames/000000_overlay.png')).shape == SIZE + (3,)
    with BagReader(baseline['output_bag']) as reader:
        topics = reader.topics
    for name, _ in (('semantic', 0), ('semantic_color', 0), ('anomaly_score', 0),
                    ('anomaly_heatmap', 0), ('open_set', 0), ('anomaly_mask', 0),
                    ('overlay', 0)):
        assert topics[output_topics(['/camera/image'])['/camera/image'][name]][1] == FRAMES, name
    assert topics['/camera/semantic_label'][1] == FRAMES            # labels copied along
    assert '/camera/image' not in topics                            # without --copy-images


def test_recorded_outputs_give_the_same_figures(baseline, tmp_path) -> None:
    recorded = run_eval(tmp_path, baseline['output_bag'])             # auto-detected
    assert recorded['source'] == 'recorded bag'
    at_threshold = baseline['anomaly'].pop('at_threshold')    # needs the model's threshold
    assert 'at_threshold' not in recorded['anomaly']
    for key in ('anomaly', 'open_set', 'score_stats', 'frames', 'unknown_mask'):
        assert recorded[key] == baseline[key], key
    for key in ('tpr', 'fpr'):             # the node's mask is the thresholded score
        assert recorded['unknown_mask'][key] == pytest.approx(at_threshold[key], abs=TOL)
    baseline['anomaly']['at_threshold'] = at_threshold
    # the node's mask is its open_set topic: the same components as the model's mask
    assert recorded['components']['mask'] == baseline['components']['mask']
    explicit = run_eval(tmp_path, baseline['output_bag'], '--recorded', name='explicit')
    assert explicit['anomaly'] == recorded['anomaly']
    for name in ('overlay', 'heatmap', 'open_set', 'semantic'):     # pictures from the topics
        picture = f'frames/000001_{name}.png'
        assert np.array_equal(cv2.imread(str(tmp_path / 'out' / picture)),
                              cv2.imread(str(Path(baseline['_dir']) / picture))), name


def test_shards_merge_to_the_same_totals(sample_bag, tiny_checkpoint, baseline,
                                         tmp_path) -> None:
    shards = [run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--shard', f'{i}/2', '--pictures', '0', name=f's{i}') for i in range(2)]
    assert [s['frames'] for s in shards] == [2, 2]
    assert eval_bag.main(['merge', str(tmp_path / 's1'), str(tmp_path / 's0'),
                          '--output', str(tmp_path / 'all'), '--threshold-from-tpr', '0.95',
                          '--checkpoint', str(tiny_checkpoint)]) == 0
    merged = json.loads((tmp_path / 'all' / 'metrics.json').read_text())
    assert 'calibrated checkpoint' in merged['open_set'].pop('note')
    for key in ('anomaly', 'open_set', 'score_stats', 'frames', 'components'):
        assert merged[key] == baseline[key], key
    assert (tmp_path / 'all' / 'pr_curve.png').is_file()
    table = (tmp_path / 'all' / 'frames.csv').read_text().splitlines()
    assert [int(line.split(',')[0]) for line in table[1:]] == list(range(FRAMES))
    assert Path(merged['calibrated_checkpoint']).is_file()
    assert merged['calibration']['tpr'] >= 0.95


def test_object_figures_are_the_components_of_mask_and_instances(sample_bag, tiny_checkpoint,
                                                                 tmp_path, capsys) -> None:
    """metrics.json holds SMIYC's figures of the Segmenter's mask and instances, frame by frame.

    (Shards merge to the same component figures: test_shards_merge_to_the_same_totals here,
    with non-trivial figures in test/metrics/test_evaluation.py.)
    """
    segmenter = Segmenter(str(tiny_checkpoint), device='cpu')
    scenes = [make_scene(SEED + i, SIZE, anomaly_family='eval') for i in range(FRAMES)]
    results = [segmenter([scene['image']])[0] for scene in scenes]
    # a threshold that flags a fifth of the pixels: the random tiny model finds some objects
    threshold = float(np.quantile(np.concatenate([r.score.ravel() for r in results]), 0.8))
    min_sizes = scaled_min_sizes(*SIZE)
    assert min_sizes == (1, 1)                    # 32 x 64 is 1/1024 of SMIYC's frames
    expect = {'mask': ComponentMetrics(*min_sizes), 'instances': ComponentMetrics(*min_sizes)}
    for scene, r in zip(scenes, results):
        expect['mask'].update(r.score > threshold, scene['anomaly'])
        ids = find_instances(r.score, r.semantic, threshold).ids
        expect['instances'].update(ids, scene['anomaly'])
    got = run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                   '--threshold', repr(threshold), '--pictures', '0')['components']
    assert 'objects (mask): F1 ' in capsys.readouterr().out
    assert got['track'] == 'anomaly'
    assert got['size_filters']['by_frame_size'] == {
        '32x64': {'frames': FRAMES, 'min_pred_size': 1, 'min_gt_size': 1}}
    mask, instances = (expect[name].compute() for name in ('mask', 'instances'))
    assert mask['pred_components'] > 0 and mask['gt_components'] > 0      # plausible figures
    assert 0.0 < mask['siou'] < 1.0 and 0.0 < mask['ppv'] < 1.0 and 0.0 <= mask['f1_mean'] < 1.0
    # instances are mask components the obstacle rule keeps (the random model sees no road)
    assert instances['pred_components'] <= mask['pred_components']
    assert instances['gt_components'] == mask['gt_components']
    for name, metrics in expect.items():
        want = metrics.compute()
        for key in ('tp', 'fn', 'fp', 'gt_components', 'pred_components', 'frames'):
            assert got[name][key] == want[key], (name, key)
        for key in ('f1_mean', 'siou', 'siou_pred', 'ppv'):       # NaN is null in the JSON
            value = math.nan if got[name][key] is None else got[name][key]
            assert value == pytest.approx(want[key], abs=1e-12, nan_ok=True), (name, key)


def test_merge_rejects_duplicate_or_foreign_shards(sample_bag, tiny_checkpoint, tmp_path,
                                                   capsys) -> None:
    run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--shard', '0/2',
             '--pictures', '0', '--frames', '1', name='s0')
    assert eval_bag.main(['merge', str(tmp_path / 's0'), str(tmp_path / 's0')]) == 2
    assert 'the same shard appears twice' in capsys.readouterr().err
    assert eval_bag.main(['merge', str(tmp_path / 's0'), str(tmp_path)]) == 2
    assert 'not a densehybrid-eval output' in capsys.readouterr().err


def test_threshold_from_tpr_writes_a_calibrated_copy(sample_bag, tiny_checkpoint,
                                                     tmp_path) -> None:
    figures = run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--threshold-from-tpr', '0.95', '--pictures', '0', '--frames', '2')
    copy = Path(figures['calibrated_checkpoint'])
    assert copy.parent == tmp_path / 'out' and copy.is_file()
    _, meta = load_checkpoint(copy)
    calibration = meta['calibration']
    assert calibration['threshold'] == figures['calibration']['threshold']
    assert calibration['tpr'] >= 0.95 and calibration['previous_threshold'] == -2.0
    _, original = load_checkpoint(tiny_checkpoint)
    assert original['calibration']['threshold'] == -2.0               # original untouched


def test_threshold_from_fpr_keeps_the_inlier_budget(sample_bag, tiny_checkpoint,
                                                    tmp_path) -> None:
    figures = run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--threshold-from-fpr', '0.01', '--pictures', '0', '--frames', '2')
    _, meta = load_checkpoint(Path(figures['calibrated_checkpoint']))
    calibration = meta['calibration']
    assert calibration['target_fpr'] == 0.01 and calibration['fpr'] <= 0.01
    assert calibration['threshold'] == figures['calibration']['threshold']


def test_without_labels_writes_the_bag_and_score_statistics(sample_bag, tiny_checkpoint,
                                                            tmp_path) -> None:
    figures = run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--no-labels', '--output-bag', str(tmp_path / 'res'), '--copy-images',
                       '--frames', '2', '--bag-storage', 'sqlite3')
    assert 'anomaly' not in figures and 'open_set' not in figures
    assert figures['score_stats']['pixels'] == 2 * SIZE[0] * SIZE[1]
    assert (tmp_path / 'out' / 'score_histogram.png').is_file()
    with BagReader(tmp_path / 'res') as reader:
        assert reader.topics['/camera/densehybrid/anomaly_score'][1] == 2
        assert reader.topics['/camera/image'][1] == 2


def test_ctrl_c_keeps_the_finished_frames(sample_bag, tiny_checkpoint, tmp_path,
                                          monkeypatch) -> None:
    real, calls = ModelResults.results, []

    def interrupt_third(self, frames):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, frames)

    monkeypatch.setattr(ModelResults, 'results', interrupt_third)
    code = eval_bag.main([str(sample_bag), '--checkpoint', str(tiny_checkpoint), '--quiet',
                          '--output', str(tmp_path / 'out'),
                          '--device', 'cpu', '--backend', 'torch'])
    figures = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert code == 130 and figures['interrupted'] and figures['frames'] == 2
    assert len((tmp_path / 'out' / 'frames.csv').read_text().splitlines()) == 3
    assert figures['anomaly']['pixels'] > 0


def _write_bag(path: Path, frames: List[Dict], storage: str = 'mcap') -> None:
    """Write frames of (topic -> (array, encoding)) at stamp = index, in the given order."""
    with BagWriter(path, storage=storage) as bag:
        for stamp, topic, array, encoding in frames:
            bag.write_image(topic, array, encoding, stamp, 'cam')


def test_labels_are_joined_by_header_stamp_not_by_order(tiny_checkpoint, tmp_path) -> None:
    scenes = [make_scene(SEED + i, SIZE, anomaly_family='eval') for i in range(3)]
    msgs = []
    for i in (2, 0, 1):                     # labels first, in another order than the images
        msgs.append((i + 1, '/cam/anomaly_label', scenes[i]['anomaly'], 'mono8'))
    msgs.append((99, '/cam/anomaly_label', scenes[0]['anomaly'], 'mono8'))   # never matched
    for i in range(3):
        msgs.append((i + 1, '/cam/image', scenes[i]['image'], 'rgb8'))
    _write_bag(tmp_path / 'shuffled', msgs)
    figures = run_eval(tmp_path, str(tmp_path / 'shuffled'), '--checkpoint',
                       str(tiny_checkpoint), '--pictures', '0')
    assert figures['frames'] == 3 and figures['anomaly_frames'] == 3
    assert figures['unmatched_messages'] == 1
    pixels = sum(int((s['anomaly'] != 255).sum()) for s in scenes)
    assert figures['anomaly']['pixels'] == pixels


def test_compressed_images_are_evaluated(tiny_checkpoint, tmp_path) -> None:
    write_sample_bag(str(tmp_path / 'jpeg'), 2, SIZE, seed=SEED, image_format='jpeg',
                     storage='sqlite3')
    figures = run_eval(tmp_path, str(tmp_path / 'jpeg'), '--checkpoint', str(tiny_checkpoint),
                       '--pictures', '1', '--output-bag', str(tmp_path / 'res'))
    assert figures['frames'] == 2 and figures['anomaly']['pixels'] > 0
    assert figures['topics']['image'] == '/camera/image/compressed'
    assert figures['topics']['label'] == '/camera/semantic_label'
    with BagReader(tmp_path / 'res') as reader:       # results where the node puts them
        assert reader.topics['/camera/densehybrid/anomaly_score'][1] == 2


@pytest.mark.parametrize('encoding, convert, error', [
    ('mono8', lambda rgb: rgb[..., 1], None),                  # grey cameras, as the node
    ('bgra8', lambda rgb: np.dstack([rgb[..., ::-1], np.full(SIZE, 255, np.uint8)]), None),
    ('mono16', lambda rgb: rgb[..., 1].astype(np.uint16) * 256,
     "unsupported encoding 'mono16'"),                          # refused as the node does
])
def test_camera_encodings(tiny_checkpoint, tmp_path, capsys, encoding, convert, error) -> None:
    scene = make_scene(SEED, SIZE, anomaly_family='eval')
    _write_bag(tmp_path / 'cam', [(3, '/cam/image', convert(scene['image']), encoding),
                                  (3, '/cam/anomaly_label', scene['anomaly'], 'mono8')])
    code = eval_bag.main([str(tmp_path / 'cam'), '--checkpoint', str(tiny_checkpoint),
                          '--output', str(tmp_path / 'o'), '--quiet',
                          '--device', 'cpu', '--backend', 'torch'])
    if error:
        assert code == 2 and error in capsys.readouterr().err
    else:
        assert code == 0


def _benchmark(root: Path, layout: str) -> int:
    """Write a 2-image benchmark folder of the given layout; returns its valid label pixels."""
    valid = 0
    for i in range(2):
        scene = make_scene(SEED + i, SIZE, anomaly_family='eval')
        anomaly = scene['anomaly']
        if layout == 'smiyc':
            image, label = root / 'images' / f'v{i}.jpg', \
                root / 'labels_masks' / f'v{i}_labels_semantic.png'
        elif layout == 'fishyscapes':
            image, label = root / 'images' / f'{i}.png', root / 'labels' / f'{i}_labels.png'
        elif layout == 'fishyscapes-authors':
            image = root / 'leftImg8bit' / 'city' / f'{i}_leftImg8bit.png'
            label = root / 'ood' / 'city' / f'{i}_ood_segmentation.png'
            anomaly = np.where(anomaly == 255, 2, anomaly).astype(np.uint8)
        else:
            image = root / 'test' / 'images' / 'test' / 't5' / f'{i}.png'
            label = root / 'test' / 'annotations' / 'test' / 't5' / f'{i}.png'
            anomaly = np.where(anomaly == 1, 14, np.where(anomaly == 255, 4, 7)).astype(np.uint8)
        for path, array in ((image, cv2.cvtColor(scene['image'], cv2.COLOR_RGB2BGR)),
                            (label, anomaly)):
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), array)
        valid += int((scene['anomaly'] != 255).sum())
    if layout == 'smiyc':            # a test image without a label is skipped
        cv2.imwrite(str(root / 'images' / 'test0.jpg'), np.zeros(SIZE + (3,), np.uint8))
    return valid


@pytest.mark.parametrize('layout', ['smiyc', 'fishyscapes', 'fishyscapes-authors',
                                    'streethazards'])
def test_benchmark_folders(tiny_checkpoint, tmp_path, layout) -> None:
    root = tmp_path / f'dataset_{layout}'
    valid = _benchmark(root, layout)
    figures = run_eval(tmp_path, str(root), '--checkpoint', str(tiny_checkpoint),
                       '--pictures', '1')
    assert figures['source'] == layout.split('-')[0] and figures['frames'] == 2
    assert 'open_set' not in figures           # no Cityscapes ids in these benchmarks
    assert figures['anomaly']['pixels'] == valid
    assert (tmp_path / 'out' / 'roc_curve.png').is_file()
    assert figures['components']['track'] == 'anomaly'
    assert figures['components']['mask']['frames'] == 2


@pytest.mark.parametrize('argv, track', [([], 'obstacle'),
                                         (['--component-track', 'anomaly'], 'anomaly')])
def test_obstacle_track_folders_are_scored_with_its_size_filters(tiny_checkpoint, tmp_path,
                                                                 argv, track) -> None:
    root = tmp_path / 'dataset_ObstacleTrack'
    _benchmark(root, 'smiyc')
    figures = run_eval(tmp_path, str(root), '--checkpoint', str(tiny_checkpoint),
                       '--pictures', '0', *argv)
    reference = figures['components']['size_filters']['reference']
    assert figures['components']['track'] == track
    assert (reference['min_pred_size'], reference['min_gt_size']) == \
        {'obstacle': (50, 10), 'anomaly': (500, 100)}[track]


@pytest.mark.parametrize('layout, folder, track', [
    ('smiyc', 'dataset_ObstacleTrack', 'obstacle'), ('smiyc', 'dataset_LostAndFound', 'obstacle'),
    ('smiyc', 'dataset_AnomalyTrack', 'anomaly'), ('fishyscapes', 'obstacles', 'anomaly'),
])
def test_smiyc_scores_obstacle_and_lost_and_found_data_by_the_obstacle_track(
        layout, folder, track) -> None:
    assert smiyc_track(layout, Path(folder)) == track


@pytest.mark.parametrize('raw, anomaly, label', [
    # StreetHazards annotation id -> (anomaly map, 12-class label), as the authors map them
    (1, 0, 0), (3, 0, 2), (4, 255, 255), (5, 0, 3), (13, 0, 11), (14, 1, 255), (0, 0, 255),
])
def test_streethazards_ids_follow_the_authors(tmp_path, raw, anomaly, label) -> None:
    from densehybrid_ros.tools.evaluation.datasets import load_labels
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((2, 2), raw, np.uint8))
    got = load_labels('streethazards', tmp_path / 'a.png')
    assert (got['anomaly'] == anomaly).all() and (got['label'] == label).all()


def _corrupt(bag: Path, tmp_path: Path, how: str) -> Path:
    target = tmp_path / f'bag_{how}'
    shutil.copytree(bag, target)
    data = next(target.glob('*.mcap'))
    raw = data.read_bytes()
    if how == 'truncated':
        data.write_bytes(raw[:len(raw) // 2])
    elif how == 'garbage':
        data.write_bytes(b'\x89MCAP0\r\n' + bytes(range(256)) * 40)
    elif how == 'truncated-file':
        (tmp_path / 'cut.mcap').write_bytes(raw[:len(raw) * 2 // 3])
        return tmp_path / 'cut.mcap'
    return target


@pytest.mark.parametrize('how, argv, message', [
    ('truncated', [], 'corrupt, truncated or not a bag'),
    ('garbage', [], 'corrupt, truncated or not a bag'),
    ('truncated-file', [], 'corrupt'),
    ('fine', ['--image-topic', '/front/image_raw'],
     "image topic '/front/image_raw' is not in .* topics: /camera/anomaly_label"),
    ('fine', ['--label-topic', 'nope'], "label topic 'nope' is not in"),
    ('fine', ['--shard', '2/2'], r'--shard 2/2: need 0 <= i < n'),
    ('fine', ['--shard', 'x'], '--shard must look like i/n'),
    ('fine', ['--threshold-from-tpr', '1.5'], r'must be in \(0, 1\]'),
    ('fine', ['--recorded'], "score topic 'densehybrid/anomaly_score' is not in"),
    ('fine', ['--checkpoint', '/nonexistent.pt'], 'checkpoint not found'),
])
def test_bad_bags_and_options_give_clear_errors(sample_bag, tiny_checkpoint, tmp_path, capsys,
                                                how, argv, message) -> None:
    bag = sample_bag if how == 'fine' else _corrupt(sample_bag, tmp_path, how)
    ckpt = [] if '--checkpoint' in argv else ['--checkpoint', str(tiny_checkpoint)]
    code = eval_bag.main([str(bag), *ckpt, *argv, '--output', str(tmp_path / 'o'), '--quiet',
                          '--device', 'cpu', '--backend', 'torch'])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith('densehybrid-eval: error:')
    import re
    assert re.search(message, err), err


def test_label_size_mismatch_is_a_clear_error(tiny_checkpoint, tmp_path, capsys) -> None:
    scene = make_scene(SEED, SIZE, anomaly_family='eval')
    _write_bag(tmp_path / 'bad', [(5, '/cam/image', scene['image'], 'rgb8'),
                                  (5, '/cam/anomaly_label', scene['anomaly'][:, :32], 'mono8')])
    code = eval_bag.main([str(tmp_path / 'bad'), '--checkpoint', str(tiny_checkpoint),
                          '--output', str(tmp_path / 'o'), '--quiet',
                          '--device', 'cpu', '--backend', 'torch'])
    assert code == 2
    assert 'anomaly is 32x32 but the image is 64x32' in capsys.readouterr().err


@pytest.mark.parametrize('make, message', [
    (lambda p: p.mkdir(), 'cannot tell what'),
    (lambda p: None, 'input not found'),
    (lambda p: (p / 'images').mkdir(parents=True) or (p / 'labels_masks').mkdir(),
     'holds no images'),
])
def test_unknown_inputs_give_clear_errors(tmp_path, capsys, make, message) -> None:
    path = tmp_path / 'input'
    make(path)
    assert eval_bag.main([str(path), '--output', str(tmp_path / 'o'), '--quiet']) == 2
    assert message in capsys.readouterr().err


def test_help_shows_examples(capsys) -> None:
    for argv in (['--help'], ['merge', '--help']):
        with pytest.raises(SystemExit):
            eval_bag.main(argv)
        assert 'example' in capsys.readouterr().out


def test_make_bag_and_eval_run_without_ros(tiny_checkpoint, tmp_path, run_without_ros) -> None:
    """The offline tools need rosbags only: every ROS Python package blocked, they still work."""
    run_without_ros(f'''
        from densehybrid_ros.tools.evaluation import eval_bag
        from densehybrid_ros.tools.rostools import make_bag as make_sample_bag
        bag, out = {str(tmp_path / 'bag')!r}, {str(tmp_path / 'out')!r}
        assert make_sample_bag.main(['--output', bag, '--frames', '1', '--size', '16', '24']) == 0
        assert eval_bag.main([bag, '--checkpoint', {str(tiny_checkpoint)!r}, '--output', out,
                              '--device', 'cpu', '--backend', 'torch', '--quiet']) == 0
    ''')
    assert (tmp_path / 'out' / 'metrics.json').is_file()


def test_a_broken_message_mid_bag_keeps_the_frames_before_it(tiny_checkpoint, tmp_path,
                                                             capsys) -> None:
    scenes = [make_scene(SEED + i, SIZE, anomaly_family='eval') for i in range(3)]
    with BagWriter(tmp_path / 'broken', storage='sqlite3') as bag:
        for i, scene in enumerate(scenes):
            stamp = (i + 1) * 10 ** 8
            if i == 2:
                bag.write_raw('/cam/image', 'sensor_msgs/msg/Image', b'\x00\x01\x00\x00junk',
                              stamp)
            else:
                bag.write_image('/cam/image', scene['image'], 'rgb8', stamp, 'cam')
            bag.write_image('/cam/anomaly_label', scene['anomaly'], 'mono8', stamp, 'cam')
    code = eval_bag.main([str(tmp_path / 'broken'), '--checkpoint', str(tiny_checkpoint),
                          '--output', str(tmp_path / 'o'), '--quiet',
                          '--device', 'cpu', '--backend', 'torch'])
    err = capsys.readouterr().err
    assert code == 2
    assert 'a message on /cam/image cannot be decoded as sensor_msgs/msg/Image' in err
    assert 'the metrics of the 2 frames before it are in' in err
    assert not (tmp_path / 'o').exists()             # a failed run: aside, in <output>.partial
    figures = json.loads((tmp_path / 'o.partial' / 'metrics.json').read_text())
    assert figures['frames'] == 2 and 'cannot be decoded' in figures['error']


def test_labels_next_to_the_chosen_camera_are_used(tiny_checkpoint, tmp_path) -> None:
    left = make_scene(SEED, SIZE, anomaly_family='eval')
    right = make_scene(SEED + 1, SIZE, anomaly_family='eval')
    msgs = []
    for ns, scene in (('/left', left), ('/right', right)):
        msgs += [(7, f'{ns}/image', scene['image'], 'rgb8'),
                 (7, f'{ns}/anomaly_label', scene['anomaly'], 'mono8')]
    _write_bag(tmp_path / 'stereo', msgs)
    figures = run_eval(tmp_path, str(tmp_path / 'stereo'), '--image-topic', '/right/image',
                       '--checkpoint', str(tiny_checkpoint), '--pictures', '0')
    assert figures['topics'] == {'image': '/right/image', 'anomaly': '/right/anomaly_label'}
    assert figures['anomaly']['anomaly_pixels'] == int((right['anomaly'] == 1).sum())


def test_batched_inference_gives_the_same_figures(baseline, sample_bag, tiny_checkpoint,
                                                  tmp_path) -> None:
    batched = run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint),
                       '--batch', '3', '--prefetch', '0', '--pictures', '0')
    assert batched['frames'] == FRAMES
    for key in ('ap', 'auroc', 'fpr95'):
        assert batched['anomaly'][key] == pytest.approx(baseline['anomaly'][key], abs=1e-4)
    assert batched['open_set']['open_miou'] == pytest.approx(baseline['open_set']['open_miou'],
                                                             abs=1e-3)


def test_a_failed_run_leaves_the_earlier_results_intact(sample_bag, tiny_checkpoint, tmp_path,
                                                        capsys) -> None:
    """Issue 15: a failing eval once cut frames.csv to its header next to the old metrics."""
    run_eval(tmp_path, str(sample_bag), '--checkpoint', str(tiny_checkpoint), name='o')
    out = tmp_path / 'o'
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}
    scene = make_scene(SEED, SIZE, anomaly_family='eval')
    _write_bag(tmp_path / 'bad', [(5, '/cam/image', scene['image'], 'rgb8'),
                                  (5, '/cam/anomaly_label', scene['anomaly'][:, :32], 'mono8')])
    assert eval_bag.main([str(tmp_path / 'bad'), '--checkpoint', str(tiny_checkpoint),
                          '--output', str(out), '--quiet',
                          '--device', 'cpu', '--backend', 'torch']) == 2
    assert 'labels must have the image size' in capsys.readouterr().err
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}
    assert after == before and len(before) > 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad', 'o']    # no staging left


@pytest.mark.parametrize('argv, message', [
    (['--backend', 'tensorflow'], "unknown backend 'tensorflow'"),
    (['--backend', 'onnxruntime', '--precision', 'int8'], 'precision must be one of'),
])
def test_backend_and_precision_reach_the_segmenter(sample_bag, tiny_checkpoint, tmp_path,
                                                   capsys, argv, message) -> None:
    code = eval_bag.main([str(sample_bag), '--checkpoint', str(tiny_checkpoint), *argv,
                          '--output', str(tmp_path / 'o'), '--quiet', '--device', 'cpu'])
    assert code == 2 and message in capsys.readouterr().err
