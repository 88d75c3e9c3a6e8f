"""Training and evaluation data: synthetic scenes, Cityscapes-format folders, negatives."""

from .cityscapes import CityscapesFolder, DatasetError
from .negatives import NegativeFolder, NegativePaster, paste_negative, SyntheticNegatives
from .synthetic import make_negative, make_scene, SyntheticScenes
from .transforms import Compose, RandomCrop, RandomFlip, RandomScale, train_transforms

__all__ = ['CityscapesFolder', 'Compose', 'DatasetError', 'NegativeFolder', 'NegativePaster',
           'RandomCrop', 'RandomFlip', 'RandomScale', 'SyntheticNegatives', 'SyntheticScenes',
           'make_negative', 'make_scene', 'paste_negative', 'train_transforms']
