"""Training and evaluation data: synthetic scenes, Cityscapes-format folders, negatives."""

from .cityscapes import CityscapesFolder, DatasetError
from .negatives import (NegativeFolder, NegativePaster, paste_negative, synthetic_paster,
                        SyntheticNegatives)
from .placement import Placement
from .synthetic import make_negative, make_scene, SyntheticScenes
from .transforms import Compose, RandomCrop, RandomFlip, RandomScale, train_transforms

__all__ = ['CityscapesFolder', 'Compose', 'DatasetError', 'NegativeFolder', 'NegativePaster',
           'Placement', 'RandomCrop', 'RandomFlip', 'RandomScale', 'SyntheticNegatives',
           'SyntheticScenes', 'make_negative', 'make_scene', 'paste_negative', 'synthetic_paster',
           'train_transforms']
