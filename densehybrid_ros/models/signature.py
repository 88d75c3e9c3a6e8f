"""Which registered architecture a bare state_dict belongs to, told from its keys and shapes.

Every architecture is built once on the ``meta`` device (no memory, no init: 0.02 s even for the
137 M-parameter DeepLabV3+) to list its ``key -> shape``; a state_dict is matched to the
architecture sharing the most key names with it, ties broken by matching shapes (the two ladder
widths have the same keys with different shapes). The class count does not change key names,
so a 12-class file still matches its architecture.
"""

from functools import lru_cache
from typing import Dict, Mapping, Optional, Tuple

import torch

from . import ARCHS, build_model

# The share of a file's keys an architecture must have before it is named as a guess.
MIN_KEY_OVERLAP = 0.9


@lru_cache(maxsize=None)
def arch_signature(arch: str) -> Dict[str, Tuple[int, ...]]:
    """``key -> shape`` of ``arch`` with 19 classes, built without allocating weights."""
    with torch.device('meta'):
        model = build_model(arch, 19)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that DataParallel / DDP put on every key."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def guess_arch(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Return the registered architecture these weights most likely belong to, or None."""
    state = strip_module_prefix(state_dict)
    if not state:
        return None
    best, best_score = None, (0, 0)
    for arch in sorted(ARCHS):
        sig = arch_signature(arch)
        shared = [k for k in state if k in sig]
        same_shape = sum(tuple(getattr(state[k], 'shape', ())) == sig[k] for k in shared)
        score = (len(shared), same_shape)
        if score > best_score:
            best, best_score = arch, score
    if best is None or best_score[0] < MIN_KEY_OVERLAP * max(len(state),
                                                             len(arch_signature(best))):
        return None
    return best
