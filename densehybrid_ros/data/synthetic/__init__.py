"""Procedural road scenes with Cityscapes train-id labels and SMIYC-style anomaly labels.

Modules, from primitives up: ``colour`` (noise, colour draws), ``shapes`` and ``textures`` (the
parts of the composite anomaly families), ``canvas`` (label ids, the painting canvas), ``props``
and ``scene`` (the scene painter), ``varied`` (the varied training family), ``families`` (every
anomaly family, training or held out; ``make_scene`` by family name), ``datasets``
(on-the-fly and cached scene data sets, cached drive frames); ``world`` (a street fixed in
world units, rendered from any camera pose), ``layout`` (a random world from a seed) and
``sequence`` (a camera driving through a world: frames with instance, depth, pose and
per-object ground truth). Every public name is importable from here.
"""

from ..tensors import to_tensors
from .canvas import (BUILDING, CAR, IGNORE, PERSON, POLE, ROAD, SCENE_CLASSES, SIDEWALK, SIGN, SKY,
                     TERRAIN, VEGETATION)
from .colour import smooth_noise
from .datasets import (CALIB_SEED_START, EVAL_SEED_START, NpzCache, SceneCache,
                       SequenceFrameCache, SyntheticScenes)
from .families import (ANOMALY_FAMILIES, check_family, FAMILIES, HELD_OUT_FAMILIES, make_anomaly,
                       make_negative, make_scene, TRAINING_FAMILIES)
from .scene import paint_scene, WALLS
from .sequence import camera_path, ObjectState, Sequence, SequenceFrame
from .layout import sample_world
from .world import CAMERA_HEIGHT, Camera, Obstacle, Pose, View, World

__all__ = ['ANOMALY_FAMILIES', 'BUILDING', 'CALIB_SEED_START', 'CAMERA_HEIGHT', 'CAR', 'Camera',
           'EVAL_SEED_START', 'FAMILIES', 'HELD_OUT_FAMILIES', 'IGNORE', 'ObjectState',
           'Obstacle', 'PERSON', 'POLE', 'Pose', 'ROAD', 'SCENE_CLASSES', 'SIDEWALK', 'SIGN',
           'NpzCache', 'SKY', 'SceneCache', 'Sequence', 'SequenceFrame', 'SequenceFrameCache',
           'SyntheticScenes', 'TERRAIN',
           'TRAINING_FAMILIES', 'VEGETATION', 'View', 'WALLS', 'World', 'camera_path',
           'check_family', 'make_anomaly', 'make_negative', 'make_scene', 'paint_scene',
           'sample_world',
           'smooth_noise', 'to_tensors']
