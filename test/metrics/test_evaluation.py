"""Evaluation state: rejection counts, component figures, shards merged equal one run, saving."""

import json

import numpy as np
import pytest

from densehybrid_ros.metrics.evaluation import (component_gt, ComponentScores, Evaluation,
                                                rejection_counts)


def test_rejection_counts_count_the_unknown_pixels_per_class() -> None:
    open_set = np.array([[255, 255, 3], [255, 0, 1]], np.uint8)
    anomaly = np.array([[1, 0, 1], [255, 0, 0]], np.uint8)              # 255: void
    assert rejection_counts(open_set, anomaly).tolist() == [1, 2, 1, 3]


def _frames(rng: np.random.Generator, n: int = 4):
    for _ in range(n):
        anomaly = (rng.random((12, 16)) < 0.2).astype(np.uint8)
        anomaly[0] = 255
        score = rng.normal(size=(12, 16)).astype(np.float32) + 2 * anomaly
        label = rng.integers(0, 3, (12, 16)).astype(np.uint8)
        open_set = np.where(score > 1.0, 255, label).astype(np.uint8)
        yield score, anomaly, label, open_set


def test_shards_merge_to_one_run_and_survive_save_and_load(tmp_path) -> None:
    frames = list(_frames(np.random.default_rng(0)))
    whole, shards = Evaluation(3), [Evaluation(3), Evaluation(3)]
    for i, (score, anomaly, label, open_set) in enumerate(frames):
        whole.add(score, anomaly, label, open_set, semantic=label)
        shards[i % 2].add(score, anomaly, label, open_set, semantic=label)
    shards[0].save(tmp_path / 'state.npz')
    summary = shards[0].summary(['a', 'b', 'c'])
    loaded = Evaluation.load(tmp_path / 'state.npz', summary)
    merged = loaded.merge(shards[1]).summary(['a', 'b', 'c'])
    assert merged == whole.summary(['a', 'b', 'c'])
    expect = sum(rejection_counts(o, a) for _, a, _, o in frames)
    assert merged['unknown_mask_counts'] == expect.tolist()
    assert merged['frames'] == merged['anomaly_frames'] == merged['semantic_frames'] == 4


def test_component_gt_maps_every_other_value_to_void() -> None:
    anomaly = np.array([[0, 1, 2, 255]], np.uint8)                     # Fishyscapes: 2 is void
    assert component_gt(anomaly).tolist() == [[0, 1, 255, 255]]
    assert component_gt(np.array([[True, False]])).tolist() == [[1, 0]]


def _object_frame(shape=(24, 32)):
    """One 4 x 4 object; the mask finds it and a 2 x 2 phantom; the instances only the object."""
    anomaly = np.zeros(shape, np.uint8)
    anomaly[4:8, 4:8] = 1
    anomaly[-1] = 255
    mask = anomaly == 1
    mask[14:16, 20:22] = True
    instances = np.where(anomaly == 1, 7, 0).astype(np.uint16)
    score = np.where(mask, 3.0, 0.0).astype(np.float32)
    return score, anomaly, {'mask': mask, 'instances': instances}


def test_component_figures_of_the_mask_and_the_instances() -> None:
    run = Evaluation(3)
    score, anomaly, predictions = _object_frame()
    run.add(score, anomaly, components=predictions)
    voided = anomaly.copy()
    voided[14:16, 20:22] = 2                         # the phantom on void: not counted
    run.add(score, voided, components=predictions)
    run.add(score, None, components=predictions)     # no ground truth: nothing to score
    figures = run.summary(['a', 'b', 'c'])['components']
    mask, instances = figures['mask'], figures['instances']
    assert mask['frames'] == instances['frames'] == 2
    assert mask['gt_components'] == 2 and mask['pred_components'] == 3
    assert mask['tp'] == [2] * 11 and mask['fn'] == [0] * 11 and mask['fp'] == [1] * 11
    assert mask['f1_mean'] == pytest.approx(4 / 5) and mask['ppv'] == pytest.approx(2 / 3)
    assert instances['f1_mean'] == 1.0 and instances['siou'] == 1.0
    assert figures['track'] == 'anomaly'
    assert figures['size_filters']['by_frame_size'] == {
        '24x32': {'frames': 2, 'min_pred_size': 1, 'min_gt_size': 1}}
    assert figures['size_filters']['reference'] == {'min_pred_size': 500, 'min_gt_size': 100,
                                                    'frame': [1024, 2048]}


def test_component_figures_scale_their_filters_to_each_frame_and_merge_across_shards(
        tmp_path) -> None:
    whole = Evaluation(3, components=ComponentScores('obstacle'))
    shards = [Evaluation(3, components=ComponentScores('obstacle')) for _ in range(2)]
    for i, shape in enumerate([(24, 32), (216, 384), (24, 32), (216, 384)]):
        score, anomaly, predictions = _object_frame(shape)
        for run in (whole, shards[i % 2]):
            run.add(score, anomaly, components=predictions)
    shards[0].save(tmp_path / 'state.npz')
    summary = shards[0].summary(['a', 'b', 'c'])
    loaded = Evaluation.load(tmp_path / 'state.npz', json.loads(json.dumps(summary)))
    merged = loaded.merge(shards[1]).summary(['a', 'b', 'c'])
    assert merged == whole.summary(['a', 'b', 'c'])
    filters = merged['components']['size_filters']['by_frame_size']
    # ObstacleTrack's (50, 10) at 1080 x 1920, scaled: 216 x 384 is 1/25 of its area
    assert filters == {'216x384': {'frames': 2, 'min_pred_size': 2, 'min_gt_size': 1},
                       '24x32': {'frames': 2, 'min_pred_size': 1, 'min_gt_size': 1}}
    # the 2 x 2 phantom is kept at both sizes (4 px >= 2): 4 objects, 8 predictions, 4 FP
    assert merged['components']['mask']['fp'] == [4] * 11
    other = Evaluation(3)                            # the anomaly track's filters
    score, anomaly, predictions = _object_frame()
    other.add(score, anomaly, components=predictions)
    with pytest.raises(ValueError, match='anomaly and obstacle tracks'):
        other.merge(whole)
    empty = Evaluation(3).merge(whole)               # a shard without components adopts them
    assert empty.summary([])['components'] == merged['components']
