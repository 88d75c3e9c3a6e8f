"""The authors' interop recipe (shared/official/README.md): manifests, weight fill, input."""

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from densehybrid_ros.models import ARCHS

# Architectures cheap enough to build per test; dlv3plus_wrn38 (137 M parameters) has its own
# module-scoped tests in test_dlv3plus_wrn38.py.
SMALL_ARCHS = sorted(a for a in ARCHS if a != 'dlv3plus_wrn38')

Manifest = List[Tuple[str, str, str]]


def read_manifest(path: Path) -> Manifest:
    """(key, shape, dtype) rows of a .keys manifest."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            key, shape, dtype = line.split()
            rows.append((key, shape, dtype))
    return rows


def manifest_of(state_dict: Dict[str, torch.Tensor]) -> Manifest:
    """(key, shape, dtype) rows of a state_dict, in the manifest's notation."""
    return [(k, 'x'.join(map(str, v.shape)) if v.dim() else 'scalar',
             str(v.dtype).replace('torch.', '')) for k, v in state_dict.items()]


def deterministic_fill(manifest: Manifest) -> Dict[str, torch.Tensor]:
    """The documented weight fill of shared/official/README.md, walked in manifest order."""
    state = {}
    for i, (key, shape_text, dtype) in enumerate(manifest):
        shape = () if shape_text == 'scalar' else tuple(int(s) for s in shape_text.split('x'))
        if dtype != 'float32':
            state[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        numel = int(np.prod(shape))
        base = np.sin(np.arange(numel, dtype=np.float64) * 0.7071 + i).reshape(shape)
        if key.endswith('running_var'):
            value = 1 + 0.25 * (base + 1)
        elif key.endswith('running_mean'):
            value = 0.1 * base
        elif key.endswith('bias'):
            value = 0.01 * base
        elif len(shape) == 1:
            value = 1 + 0.1 * base
        else:
            value = base * 2 / np.sqrt(numel // shape[0])
        state[key] = torch.from_numpy(value.astype(np.float32))
    return state


def deterministic_input(h: int, w: int) -> torch.Tensor:
    """The documented golden input."""
    t = np.arange(3 * h * w, dtype=np.float64)
    x = (np.sin(0.013 * t) * np.cos(0.0007 * t) + 1) / 2
    return torch.from_numpy(x.reshape(1, 3, h, w).astype(np.float32))
