"""Open-set confusion and the authors' open-set IoU, checked against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score

from densehybrid_ros.metrics import anomaly as metrics
from densehybrid_ros.metrics.confusion import OpenSetConfusion
from densehybrid_ros.metrics.anomaly import AnomalyMetrics, load_state, save_state


def test_metrics_shares_the_one_confusion_class() -> None:
    assert metrics.OpenSetConfusion is OpenSetConfusion       # one state.npz holds both


K = 5


def random_open_set(rng: np.random.Generator, shape=(3, 40, 60)):
    """Return (label, anomaly, semantic, pred) with ignore, void and rejected pixels."""
    label = rng.integers(0, K, shape).astype(np.uint8)
    label[rng.random(shape) < 0.1] = 255
    anomaly = (rng.random(shape) < 0.15).astype(np.uint8)
    anomaly[rng.random(shape) < 0.05] = 255
    semantic = np.where(rng.random(shape) < 0.7, label % K,
                        rng.integers(0, K, shape)).astype(np.uint8)
    pred = np.where((rng.random(shape) < 0.2) | ((anomaly == 1) & (rng.random(shape) < 0.6)),
                    255, semantic).astype(np.uint8)
    return label, anomaly, semantic, pred


def test_open_set_confusion_matches_sklearn() -> None:
    label, anomaly, semantic, pred = random_open_set(np.random.default_rng(4))
    conf = OpenSetConfusion(K)
    for i in range(label.shape[0]):
        conf.update(pred[i], label[i], anomaly[i], semantic=semantic[i])
    got = conf.compute()
    truth = np.where(anomaly == 1, K, label).astype(int)
    keep = (anomaly != 255) & (truth != 255)
    y_true, y_pred = truth[keep], np.where(pred == 255, K, pred)[keep]
    iou = jaccard_score(y_true, y_pred, labels=list(range(K + 1)), average=None)
    assert got['per_class_iou'] == pytest.approx(list(iou[:K]))
    assert got['open_miou'] == pytest.approx(iou[:K].mean())
    assert got['anomaly_iou'] == pytest.approx(iou[K])
    assert np.array_equal(conf.matrix, confusion_matrix(y_true, y_pred, labels=range(K + 1)))
    inl = keep & (truth < K)
    closed = jaccard_score(truth[inl], semantic[inl], labels=list(range(K)), average=None)
    assert got['closed_miou'] == pytest.approx(closed.mean())
    assert got['pixels'] == int(keep.sum())


@pytest.mark.parametrize('pred, label, anomaly, expect', [
    # DenseHybrid open-IoU on two classes (0, 1) plus unknown (255); anomaly map 0/1/255.
    ([0, 0, 1, 1], [0, 0, 1, 1], None, {'per_class_iou': [1.0, 1.0], 'anomaly_iou': None}),
    # an anomaly predicted as class 0 is a false positive of class 0
    ([0, 0, 1, 1], [0, 255, 1, 1], [0, 1, 0, 0], {'per_class_iou': [0.5, 1.0],
                                                  'anomaly_iou': 0.0}),
    # a rejected inlier of class 1 is a false negative of class 1 (and a FP of unknown)
    ([0, 255, 1, 255], [0, 1, 1, 255], [0, 0, 0, 1], {'per_class_iou': [1.0, 0.5],
                                                      'anomaly_iou': 0.5}),
    # void anomaly pixels (255) and ignored labels do not count at all
    ([255, 0, 1, 1], [0, 0, 255, 1], [255, 0, 0, 0], {'per_class_iou': [1.0, 1.0],
                                                      'anomaly_iou': None}),
])
def test_open_set_iou_follows_the_authors_definition(pred, label, anomaly, expect) -> None:
    conf = OpenSetConfusion(2)
    conf.update(np.array(pred, np.uint8), np.array(label, np.uint8),
                None if anomaly is None else np.array(anomaly, np.uint8))
    got = conf.compute()
    assert got['per_class_iou'] == pytest.approx(expect['per_class_iou'])
    assert got['open_miou'] == pytest.approx(np.mean(expect['per_class_iou']))
    if expect['anomaly_iou'] is None:
        assert math.isnan(got['anomaly_iou'])
    else:
        assert got['anomaly_iou'] == pytest.approx(expect['anomaly_iou'])
    assert math.isnan(got['closed_miou'])          # no closed-set prediction given


def test_anomaly_label_marks_anomalies_inside_the_label_map() -> None:
    pred = np.array([0, 255, 1, 0], np.uint8)
    by_label = OpenSetConfusion(2, anomaly_label=13)
    by_label.update(pred, np.array([0, 13, 1, 13], np.uint8))
    by_map = OpenSetConfusion(2)
    by_map.update(pred, np.array([0, 255, 1, 255], np.uint8), np.array([0, 1, 0, 1], np.uint8))
    np.testing.assert_equal(by_label.compute(), by_map.compute())


@pytest.mark.parametrize('args, message', [
    ((np.array([0, 7]), np.array([0, 1])), r'pred holds ids \[7\]'),
    ((np.array([0, 1]), np.array([0, 9])), r'label holds ids \[9\]'),
    ((np.array([0, 1]), np.array([0, 1, 1])), 'shapes differ'),
    ((np.array([0, 1]), np.array([0, 1]), np.array([0, 1, 0])), 'shapes differ'),
])
def test_open_set_bad_inputs_raise(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        OpenSetConfusion(2).update(*args)


def test_open_set_bad_construction_and_merge_raise() -> None:
    with pytest.raises(ValueError, match='collides'):
        OpenSetConfusion(19, anomaly_label=3)
    with pytest.raises(ValueError, match='cannot merge'):
        OpenSetConfusion(2).merge(OpenSetConfusion(3))


def test_open_set_shards_merge_and_round_trip(tmp_path) -> None:
    label, anomaly, semantic, pred = random_open_set(np.random.default_rng(9))
    whole, parts = OpenSetConfusion(K), [OpenSetConfusion(K), OpenSetConfusion(K)]
    for i in range(label.shape[0]):
        whole.update(pred[i], label[i], anomaly[i], semantic[i])
        parts[i % 2].update(pred[i], label[i], anomaly[i], semantic[i])
    save_state(str(tmp_path / 'a.npz'), confusion=parts[0], anomaly=AnomalyMetrics())
    loaded = load_state(str(tmp_path / 'a.npz'))
    merged = loaded['confusion'].merge(parts[1])
    assert np.array_equal(merged.matrix, whole.matrix)
    assert merged.compute() == whole.compute()
    assert loaded['anomaly'].compute()['pixels'] == 0
