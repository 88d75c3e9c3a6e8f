"""Synthetic road scenes: determinism, label validity, anomaly families, caching, drive frames."""

import hashlib

import numpy as np
import pytest
import torch

from densehybrid_ros.data.synthetic import (ANOMALY_FAMILIES, IGNORE, make_anomaly, make_negative,
                                            make_scene, SCENE_CLASSES, SceneCache, Sequence,
                                            SequenceFrameCache, SyntheticScenes)

SIZES = [(64, 128), (96, 96), (120, 200)]


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('family', [None, 'train', 'eval'])
def test_scene_shapes_and_label_values(size, family):
    scene = make_scene(3, size, family)
    assert scene['image'].shape == (*size, 3) and scene['image'].dtype == np.uint8
    assert scene['label'].shape == size and scene['label'].dtype == np.uint8
    assert scene['anomaly'].shape == size and scene['anomaly'].dtype == np.uint8
    assert set(np.unique(scene['label'])) <= set(SCENE_CLASSES) | {255}
    assert set(np.unique(scene['anomaly'])) <= {0, 1, 255}
    anomalous = scene['anomaly'] == 1
    assert (scene['label'][anomalous] == 255).all()          # anomalies are ignore for closed set
    assert (scene['anomaly'][scene['label'] != 255] == 0).all()
    if family is None:
        assert not anomalous.any()


# sha256 (first 16 hex digits) over image, label and anomaly bytes (keys sorted) of scenes made by
# the single-module generator before it became a package; the split must not change a pixel.
REFERENCE_SCENES = [
    (0, (64, 128), None, '9c3279a462167e09'),
    (1, (96, 160), 'train', '89608b82a4815260'),
    (2, (128, 256), 'eval', '51a8e598a68321bf'),
    (2_000_003, (288, 512), 'eval', '953020f4b0a74184'),
    (5, (72, 72), 'train', 'cf9c6d87eed109dd'),
]
REFERENCE_NEGATIVES = [(3, 'train', '33fcde77b5577ed3'), (4, 'eval', 'c7eca16d142334b8')]


def _digest(arrays):
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize('seed, size, family, digest', REFERENCE_SCENES)
def test_scene_bytes_match_the_reference(seed, size, family, digest):
    assert _digest(make_scene(seed, size, family)) == digest


@pytest.mark.parametrize('seed, family, digest', REFERENCE_NEGATIVES)
def test_negative_bytes_match_the_reference(seed, family, digest):
    assert _digest(make_negative(seed, family, 48)) == digest


@pytest.mark.parametrize('seed', [0, 1, 17])
def test_scene_is_deterministic_per_seed(seed):
    a, b = make_scene(seed, (64, 128), 'eval'), make_scene(seed, (64, 128), 'eval')
    for key in ('image', 'label', 'anomaly'):
        np.testing.assert_array_equal(a[key], b[key])
    other = make_scene(seed + 1000, (64, 128), 'eval')
    assert not np.array_equal(a['image'], other['image'])


def test_scenes_cover_the_road_classes_and_have_anomalies():
    seen, with_anomaly = set(), 0
    for seed in range(12):
        scene = make_scene(seed, (128, 256), 'eval')
        seen |= set(np.unique(scene['label']).tolist())
        with_anomaly += int((scene['anomaly'] == 1).any())
    assert set(SCENE_CLASSES) <= seen
    assert with_anomaly >= 10


def test_anomaly_families_are_disjoint():
    train, evaluation = ANOMALY_FAMILIES['train'], ANOMALY_FAMILIES['eval']
    for part in ('shapes', 'textures'):
        assert not set(train[part]) & set(evaluation[part])
        assert not set(train[part].values()) & set(evaluation[part].values())


@pytest.mark.parametrize('family', ['train', 'eval'])
def test_make_anomaly_and_negative(family):
    rng = np.random.default_rng(0)
    rgb, mask = make_anomaly(rng, family, 20, 30)
    assert rgb.shape == (20, 30, 3) and mask.shape == (20, 30) and mask.any()
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    neg = make_negative(5, family, size=32)
    assert neg['image'].dtype == np.uint8 and neg['mask'].dtype == bool and neg['mask'].any()


@pytest.mark.parametrize('bad', [{'anomaly_family': 'other'}, {'size': (4, 4)}])
def test_bad_arguments_raise(bad):
    kwargs = {'seed': 0, 'size': (64, 64), **bad}
    with pytest.raises(ValueError):
        make_scene(**kwargs)


def test_dataset_tensors():
    ds = SyntheticScenes(range(5, 8), (48, 96), 'eval')
    assert len(ds) == 3
    item = ds[1]
    assert item['image'].shape == (3, 48, 96) and item['image'].dtype == torch.float32
    assert 0.0 <= float(item['image'].min()) and float(item['image'].max()) <= 1.0
    assert item['label'].dtype == torch.int64 and item['seed'] == 6


def test_scene_cache_round_trip(tmp_path):
    cache = SceneCache(range(3), (48, 96), 'train', tmp_path)
    assert cache.prepare(workers=2) == 3
    assert cache.prepare() == 0
    fresh = make_scene(2, (48, 96), 'train')
    np.testing.assert_array_equal(cache[2]['image'], fresh['image'])
    cache.path(1).write_bytes(b'torn')                     # a damaged file is regenerated
    np.testing.assert_array_equal(cache[1]['label'], make_scene(1, (48, 96), 'train')['label'])


def test_drive_frames_are_sequence_frames_with_their_obstacles_as_outliers(tmp_path):
    frames = SequenceFrameCache(6, (48, 96), 'varied', tmp_path, per_sequence=3, frames=20)
    where = [frames.where(i) for i in range(6)]
    assert [s for s, _ in where] == [0, 0, 0, 1, 1, 1]
    assert len(set(where)) == 6 and all(0 <= k < 20 for _, k in where)    # distinct frames
    assert frames.prepare(workers=2) == 6 and frames.prepare() == 0
    for i in (0, 4):
        seed, k = where[i]
        truth = Sequence(seed, (48, 96), 20, 'varied', speed=1.2)[k]
        item = frames[i]                                   # from the cache file
        np.testing.assert_array_equal(item['image'], truth.image)
        np.testing.assert_array_equal(item['outlier'], truth.anomaly == 1)
        assert (item['label'][item['outlier'] == 1] == IGNORE).all()
    assert any(frames[i]['outlier'].any() for i in range(6))
    with pytest.raises(ValueError, match='training family'):
        SequenceFrameCache(2, (48, 96), 'eval')            # held-out families stay held out
