"""Class names and colours: the Cityscapes 19 train ids and a fallback for other label sets."""

from typing import List, Optional, Sequence

import numpy as np

# Sentinel ids: the same byte in every uint8 map of this package, one name per meaning.
UNKNOWN_ID = 255     # open-set predictions: the pixel was rejected as unknown
IGNORE_ID = 255      # label maps: a void pixel that no loss and no metric counts

CITYSCAPES_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
    'motorcycle', 'bicycle',
)

CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)


def default_class_names(num_classes: int) -> List[str]:
    """Cityscapes names for 19 classes, ``class_<i>`` otherwise."""
    if num_classes == len(CITYSCAPES_CLASSES):
        return list(CITYSCAPES_CLASSES)
    return [f'class_{i}' for i in range(num_classes)]


def default_palette(num_classes: int, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Cityscapes colours for the Cityscapes classes; deterministic distinct colours otherwise."""
    if num_classes == len(CITYSCAPES_CLASSES) and (
            names is None or tuple(names) == CITYSCAPES_CLASSES):
        return CITYSCAPES_PALETTE.copy()
    rng = np.random.default_rng(num_classes)
    return rng.integers(32, 256, size=(num_classes, 3), dtype=np.uint8)
