"""Self-describing checkpoints: write, read safely, load into a model with strict checks.

A checkpoint is one ``torch.save`` file of a dict of tensors and plain types only, so it loads
with ``torch.load(..., weights_only=True)`` and can never run code:

    format       'densehybrid_ros/1'
    arch         a name registered in densehybrid_ros.models
    num_classes  K
    class_names  K strings
    palette      K x 3 uint8 tensor
    state_dict   the model's tensors
    calibration  {threshold, score_p01, score_p99, measured_on, ...} or None
    train        how it was made: command line, data, epochs, seed, metrics
"""

import os
from pathlib import Path
import pickle
import struct
import tempfile
from typing import Any, Dict, Mapping, Tuple, Union
import zipfile

import numpy as np
import torch

from ..core.classes import (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, default_class_names,
                            default_palette)
from . import ARCHS, build_model, DenseHybridModel
from .signature import guess_arch

FORMAT = 'densehybrid_ros/1'
MAX_CLASSES = 65535           # a bound before building: 10**6 classes cost 1.1 GB
PathLike = Union[str, os.PathLike]

__all__ = ['CITYSCAPES_CLASSES', 'CITYSCAPES_PALETTE', 'CheckpointError', 'FORMAT',
           'check_fit', 'load_checkpoint', 'load_state_dict_strict', 'read_checkpoint',
           'save_checkpoint']


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do."""


def save_checkpoint(path: PathLike, model: DenseHybridModel, meta: Mapping[str, Any]) -> Path:
    """Write ``model`` and ``meta`` as a self-describing checkpoint (atomically)."""
    num_classes = int(model.num_classes)
    names = list(meta.get('class_names') or default_class_names(num_classes))
    if len(names) != num_classes:
        raise ValueError(f'{len(names)} class names for {num_classes} classes')
    palette = np.asarray(meta['palette'] if meta.get('palette') is not None
                         else default_palette(num_classes, names), dtype=np.uint8)
    if palette.shape != (num_classes, 3):
        raise ValueError(f'palette must be {num_classes} x 3, got {palette.shape}')
    payload = {
        'format': FORMAT,
        'arch': model.arch,
        'num_classes': num_classes,
        'class_names': names,
        'palette': torch.from_numpy(palette.copy()),
        'state_dict': {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        'calibration': _plain(meta.get('calibration')),
        'train': _plain(meta.get('train') or {}),
    }
    if meta.get('max_inference_width'):     # the widest native input the model is meant for
        payload['max_inference_width'] = int(meta['max_inference_width'])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target, then rename: an interrupted save never leaves a torn file.
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o666 & ~_umask())    # mkstemp makes 0600; a checkpoint is no secret
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# What torch's unpickler raises on a damaged file besides UnpicklingError; each but the first
# four was found by test/fuzz (mutated checkpoints; regression tests in test_checkpoint.py).
_READ_ERRORS = (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError,
                KeyError, AssertionError, struct.error, TypeError, AttributeError)


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Load a checkpoint file's dict safely (tensors and plain types only), without a model."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f'{path} is a directory, not a checkpoint file')
    if not path.is_file():
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_reason(exc)
        if 'GLOBAL' not in detail:
            raise CheckpointError(f'cannot read {path}: not a PyTorch checkpoint, or it is '
                                  f'corrupted ({detail})') from None
        raise CheckpointError(
            f'refusing to load {path}: it contains Python objects other than tensors and plain '
            f'types, which could run code when unpickled; nothing was executed. Re-export it '
            f'as a state_dict from a trusted source. ({detail})') from None
    except _READ_ERRORS as exc:
        raise CheckpointError(
            f'cannot read {path}: the file is truncated or not a PyTorch checkpoint '
            f'({path.stat().st_size} bytes; {_first_sentence(exc)})') from None
    if not isinstance(obj, dict):
        raise CheckpointError(f'{path} holds a {type(obj).__name__}, not a checkpoint dict')
    return obj


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[DenseHybridModel, Dict[str, Any]]:
    """Load a project checkpoint: returns ``(model in eval mode on device, meta)``."""
    ckpt = read_checkpoint(path)
    if ckpt.get('format') != FORMAT:
        if _looks_like_state_dict(ckpt):
            guess = guess_arch(ckpt)
            arch = guess or '{' + ','.join(sorted(ARCHS)) + '}'
            raise CheckpointError(
                f'{path} is a raw state_dict, not a densehybrid_ros checkpoint; convert it with '
                f'`densehybrid-import {path} --arch {arch} --output model.pt`'
                + (f' (its keys are those of {guess})' if guess else
                   ' (its keys match no known architecture)'))
        raise CheckpointError(f'{path} has format {ckpt.get("format")!r}, expected {FORMAT!r}')
    missing = [k for k in ('arch', 'num_classes', 'state_dict') if k not in ckpt]
    if missing:
        raise CheckpointError(f'{path} lacks the fields {missing}')
    if not isinstance(ckpt['arch'], str) or ckpt['arch'] not in ARCHS:
        raise CheckpointError(f'{path} needs arch {ckpt["arch"]!r}, which this version does not '
                              f'know (known: {", ".join(sorted(ARCHS))})')
    num_classes, state = ckpt['num_classes'], ckpt['state_dict']
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or not 1 <= num_classes <= MAX_CLASSES:
        raise CheckpointError(f'{path}: num_classes must be an integer from 1 to '
                              f'{MAX_CLASSES}, got {num_classes!r}')
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f'{path}: state_dict is not a dict of named tensors')
    palette = _palette(ckpt.get('palette'), num_classes, path)
    model = build_model(ckpt['arch'], num_classes)
    load_state_dict_strict(model, state, source=str(path))
    model.eval().to(device)
    meta = {k: v for k, v in ckpt.items() if k != 'state_dict'}
    meta['palette'] = palette
    meta['path'] = str(path)
    return model, meta


def load_state_dict_strict(model: DenseHybridModel, state_dict: Mapping[str, torch.Tensor],
                           source: str = 'state_dict') -> None:
    """``load_state_dict(strict=True)`` with an error that names the first mismatching keys."""
    check_fit(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)


def check_fit(model: DenseHybridModel, state_dict: Mapping[str, torch.Tensor],
              source: str = 'state_dict') -> None:
    """Raise a CheckpointError naming the first missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: {tuple(state_dict[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (('missing', missing), ('unexpected', unexpected),
                            ('shape mismatch (file vs model)', shapes)):
            if keys:
                more = f' (+{len(keys) - 3} more)' if len(keys) > 3 else ''
                parts.append(f'{len(keys)} {label}: {", ".join(keys[:3])}{more}')
        raise CheckpointError(f'{source} does not fit arch {model.arch!r} with '
                              f'{model.num_classes} classes: ' + '; '.join(parts))


def _palette(value: Any, num_classes: int, path: PathLike) -> np.ndarray:
    """Return the checkpoint's K x 3 uint8 palette (the default one when it has none)."""
    if value is None:
        return default_palette(num_classes)
    try:
        palette = np.asarray(value, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f'{path}: palette is not K x 3 colours: {exc}') from None
    if palette.shape != (num_classes, 3):
        raise CheckpointError(f'{path}: palette must be {num_classes} x 3 colours, got shape '
                              f'{palette.shape}')
    return palette


def _looks_like_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain types torch's safe loader accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, Path):
        return str(value)
    return value


def _unpickler_reason(exc: BaseException) -> str:
    """Pick the line of torch's weights-only error that says what was refused."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if 'GLOBAL' in line or line.startswith('Unsupported'):
            return line[:200]
    return lines[0][:200] if lines else type(exc).__name__


def _first_sentence(exc: BaseException) -> str:
    """Return the first sentence of an error, whole (torch zip errors run to 300+ chars)."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    sentence = text[0].split('. ')[0].rstrip('.')
    if len(sentence) > 200:                           # cut at a word, and say so
        sentence = sentence[:200].rsplit(' ', 1)[0] + ' ...'
    return sentence


def _umask() -> int:
    """Return the process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@torch.inference_mode()
def check_finite(model: DenseHybridModel, source: Any, size: Tuple[int, int] = (64, 128)) -> None:
    """Refuse a model whose outputs are not finite (NaN weights): one pass on a grey ramp."""
    ramp = torch.linspace(0.0, 1.0, size[0] * size[1]).view(1, 1, *size).expand(1, 3, *size)
    outputs = model.eval()(ramp.contiguous())
    for name, out in zip(('logits', 'ood_logits'), outputs):
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise CheckpointError(f'{source}: the model gives non-finite {name} ({bad} of '
                                  f'{out.numel()} values NaN or inf on a test image); its '
                                  f'weights are broken')
