"""Inference backends: each maps a preprocessed batch to (labels, score) at the model's size.

``torch`` runs the model eagerly; ``onnxruntime`` and ``openvino`` run exported static graphs
(:mod:`densehybrid_ros.deploy.artifacts`); ``auto`` is resolved to one of them by
:func:`auto_backend` (the rule: :func:`densehybrid_ros.deploy.runtimes.resolve_auto`). Runtime
modules are imported only when their backend is made, so a process imports only the runtime
it uses.
"""

import importlib
import importlib.util
import os
import platform
from typing import Any, Sequence, Union

from .base import Backend, BackendError
from ..artifacts import read_artifact
from ..runtimes import AUTO, AutoChoice, BACKEND_PRECISIONS, PRECISIONS, resolve_auto

# name -> (module, class, precisions it runs)
BACKENDS = {
    'torch': ('.torch_eager', 'TorchBackend', BACKEND_PRECISIONS['torch']),
    'onnxruntime': ('.ort', 'OrtBackend', BACKEND_PRECISIONS['onnxruntime']),
    'openvino': ('.ov', 'OpenVinoBackend', BACKEND_PRECISIONS['openvino']),
}


def check_backend(name: str, precision: str) -> None:
    """Raise :class:`BackendError` for an unknown backend or a precision it does not run."""
    if name != AUTO and name not in BACKENDS:
        raise BackendError(f'unknown backend {name!r}; choose one of {AUTO}, '
                           f'{", ".join(BACKENDS)}')
    precisions = PRECISIONS if name == AUTO else BACKENDS[name][2]
    if precision not in precisions:
        raise BackendError(f'precision must be one of {", ".join(precisions)} for the {name} '
                           f'backend, got {precision!r}')


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Build backend ``name`` (imports its runtime now); kwargs go to its constructor."""
    check_backend(name, kwargs.get('precision', 'fp32'))
    if name == AUTO:
        raise BackendError(f'{AUTO} is not a runtime: resolve it with auto_backend first')
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module, __name__), cls)(**kwargs)


def auto_backend(precision: str, device: str,
                 artifacts: Sequence[Union[str, os.PathLike]] = ()) -> AutoChoice:
    """Resolve ``backend: auto`` on this machine: its CPU, OpenVINO installed, CUDA, artifacts.

    Nothing heavy is imported: OpenVINO is looked up, not loaded (about 0.1 ms).
    """
    import torch

    try:
        openvino = importlib.util.find_spec('openvino') is not None
    except (ImportError, ValueError):       # a broken or blocked install: as if missing
        openvino = False
    cuda = device == 'auto' and torch.cuda.is_available()
    formats = [read_artifact(path, verify=False)['runtime_format'] for path in artifacts]
    return resolve_auto(precision, device, platform.machine(), openvino, cuda, formats)


__all__ = ['BACKENDS', 'Backend', 'BackendError', 'auto_backend', 'check_backend',
           'make_backend']
