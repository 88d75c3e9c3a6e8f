"""Inference backends: each maps a preprocessed batch to (labels, score) at the model's size.

``torch`` runs the model eagerly (the default); ``onnxruntime`` and ``openvino`` run exported
static graphs (:mod:`densehybrid_ros.deploy.artifacts`). Runtime modules are imported only
when their backend is made, so a process imports only the runtime it uses.
"""

import importlib
from typing import Any

from .base import Backend, BackendError
from ..runtimes import BACKEND_PRECISIONS

# name -> (module, class, precisions it runs)
BACKENDS = {
    'torch': ('.torch_eager', 'TorchBackend', BACKEND_PRECISIONS['torch']),
    'onnxruntime': ('.ort', 'OrtBackend', BACKEND_PRECISIONS['onnxruntime']),
    'openvino': ('.ov', 'OpenVinoBackend', BACKEND_PRECISIONS['openvino']),
}


def check_backend(name: str, precision: str) -> None:
    """Raise :class:`BackendError` for an unknown backend or a precision it does not run."""
    if name not in BACKENDS:
        raise BackendError(f'unknown backend {name!r}; choose one of {", ".join(BACKENDS)}')
    precisions = BACKENDS[name][2]
    if precision not in precisions:
        raise BackendError(f'precision must be one of {", ".join(precisions)} for the {name} '
                           f'backend, got {precision!r}')


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Build backend ``name`` (imports its runtime now); kwargs go to its constructor."""
    check_backend(name, kwargs.get('precision', 'fp32'))
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module, __name__), cls)(**kwargs)


__all__ = ['BACKENDS', 'Backend', 'BackendError', 'check_backend', 'make_backend']
