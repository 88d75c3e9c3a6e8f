"""Cityscapes-format folders: loading, and clear errors for bad folders."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from densehybrid_ros.data.cityscapes import CityscapesFolder, DatasetError


def make_folder(root: Path, split: str = 'train', n: int = 2, size=(32, 48)) -> Path:
    """Write a tiny Cityscapes-format split made of synthetic scenes."""
    from densehybrid_ros.data.synthetic import make_scene
    for i in range(n):
        city = 'aachen' if i % 2 == 0 else 'bremen'
        img_dir = root / 'leftImg8bit' / split / city
        lab_dir = root / 'gtFine' / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        scene = make_scene(i, size)
        stem = f'{city}_{i:06d}_000019'
        cv2.imwrite(str(img_dir / f'{stem}_leftImg8bit.png'),
                    cv2.cvtColor(scene['image'], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(lab_dir / f'{stem}_gtFine_labelTrainIds.png'), scene['label'])
    return root


def test_loads_images_and_labels(tmp_path):
    ds = CityscapesFolder(make_folder(tmp_path, n=3))
    assert len(ds) == 3
    sample = ds[0]
    assert sample['image'].shape == (32, 48, 3) and sample['label'].shape == (32, 48)
    assert set(np.unique(sample['label'])) <= set(range(19)) | {255}


def _remove_label(root):
    next((root / 'gtFine').rglob('*.png')).unlink()


def _resize_label(root):
    path = next((root / 'gtFine').rglob('*.png'))
    cv2.imwrite(str(path), np.zeros((10, 10), np.uint8))


def _empty_split(root):
    for p in (root / 'leftImg8bit').rglob('*.png'):
        p.unlink()


@pytest.mark.parametrize('break_it, message', [
    (_remove_label, 'no label'),
    (_resize_label, 'size mismatch'),
    (_empty_split, 'holds no'),
])
def test_bad_folders_raise_before_use(tmp_path, break_it, message):
    root = make_folder(tmp_path)
    break_it(root)
    with pytest.raises(DatasetError, match=message):
        CityscapesFolder(root)


@pytest.mark.parametrize('split, message', [('val', 'leftImg8bit/val'), ('train', 'not found')])
def test_missing_folders(tmp_path, split, message):
    root = make_folder(tmp_path / 'cs') if split == 'val' else tmp_path / 'nothing'
    with pytest.raises(DatasetError, match=message):
        CityscapesFolder(root, split)


def test_out_of_range_train_id(tmp_path):
    root = make_folder(tmp_path, n=1)
    path = next((root / 'gtFine').rglob('*.png'))
    cv2.imwrite(str(path), np.full((32, 48), 33, np.uint8))
    with pytest.raises(DatasetError, match='train id 33'):
        CityscapesFolder(root)[0]
