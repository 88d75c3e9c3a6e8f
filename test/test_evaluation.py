"""Evaluation state: rejection counts, shards merged equal one run, save and load."""

import numpy as np

from densehybrid_ros.evaluation import Evaluation, rejection_counts


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
