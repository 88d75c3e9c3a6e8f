"""Which runtimes exist, the precisions each runs, and importing one: one table, no heavy imports.

The node's parameter table, the export tool, the graph writers and the backends use it; it
imports nothing heavy, so a process that only validates parameters does not load torch or a
runtime.
"""

import importlib
from typing import Any, Dict, Tuple

# backend -> precisions it runs (fp16 on torch needs CUDA; int8 needs an NNCF-quantised artifact)
BACKEND_PRECISIONS: Dict[str, Tuple[str, ...]] = {
    'torch': ('fp32', 'fp16', 'bf16'),
    'onnxruntime': ('fp32', 'fp16'),
    'openvino': ('fp32', 'bf16', 'int8'),
}
BACKENDS: Tuple[str, ...] = tuple(BACKEND_PRECISIONS)
PRECISIONS: Tuple[str, ...] = ('fp32', 'fp16', 'bf16', 'int8')
# artifact format -> the backend that runs it (and so the precisions an artifact can have):
# an ONNX graph is fp32 or fp16; OpenVINO's bf16 runs the fp32 IR with a precision hint and
# int8 is an NNCF-quantised IR.
FORMAT_BACKENDS: Dict[str, str] = {'onnx': 'onnxruntime', 'openvino': 'openvino'}


class ExportError(ValueError):
    """An export, artifact or runtime that cannot be made or used, with the reason."""


def check_precision(fmt: str, precision: str) -> None:
    """Raise :class:`ExportError` for a precision the runtime format cannot run."""
    allowed = BACKEND_PRECISIONS[FORMAT_BACKENDS[fmt]]
    if precision not in allowed:
        raise ExportError(f'precision {precision!r} is not supported for {fmt}; choose one of '
                          f'{", ".join(allowed)}')


def require(module: str, what: str) -> Any:
    """Import an optional runtime package or raise a clear error naming the install step."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f'{what} needs the Python package {module!r}, which is not '
                          f'installed ({exc}); install requirements/deploy.txt') from None
