"""Procedural road scenes with Cityscapes train-id labels and SMIYC-style anomaly labels.

Modules, from primitives up: ``colour`` (noise, colour draws), ``shapes`` and ``textures`` (the
parts of the composite anomaly families), ``families`` (every anomaly family, training or held
out), ``canvas`` (label ids, the painting canvas), ``props`` and ``scene`` (the scene painter),
``datasets`` (on-the-fly and cached scene data sets). Every public name is importable from here.
"""

from ..tensors import to_tensors
from .canvas import (BUILDING, CAR, IGNORE, PERSON, POLE, ROAD, SCENE_CLASSES, SIDEWALK, SIGN, SKY,
                     TERRAIN, VEGETATION)
from .colour import smooth_noise
from .datasets import CALIB_SEED_START, EVAL_SEED_START, SceneCache, SyntheticScenes
from .families import (ANOMALY_FAMILIES, check_family, FAMILIES, HELD_OUT_FAMILIES, make_anomaly,
                       make_negative, TRAINING_FAMILIES)
from .scene import make_scene, WALLS

__all__ = ['ANOMALY_FAMILIES', 'BUILDING', 'CALIB_SEED_START', 'CAR', 'EVAL_SEED_START',
           'FAMILIES', 'HELD_OUT_FAMILIES', 'IGNORE', 'PERSON', 'POLE', 'ROAD', 'SCENE_CLASSES',
           'SIDEWALK', 'SIGN', 'SKY', 'SceneCache', 'SyntheticScenes', 'TERRAIN',
           'TRAINING_FAMILIES', 'VEGETATION', 'WALLS', 'check_family', 'make_anomaly',
           'make_negative', 'make_scene', 'smooth_noise', 'to_tensors']
