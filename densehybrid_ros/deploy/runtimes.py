"""Which runtimes exist, the precisions each runs, and importing one: one table, no heavy imports.

The node's parameter table, the export tool, the graph writers and the backends use it; it
imports nothing heavy, so a process that only validates parameters does not load torch or a
runtime.
"""

from dataclasses import dataclass
import importlib
from typing import Any, Collection, Dict, Tuple

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
# 'auto': the fastest runtime that gives torch fp32's scores on this machine (resolve_auto).
AUTO = 'auto'
BACKEND_CHOICES: Tuple[str, ...] = (AUTO,) + BACKENDS
X86 = ('x86_64', 'amd64', 'x86', 'i386', 'i686')


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


@dataclass(frozen=True)
class AutoChoice:
    """What ``backend: auto`` runs, why, and whether it fell back (a WARN, not an INFO)."""

    backend: str
    reason: str
    fallback: bool = False


def resolve_auto(precision: str, device: str, machine: str, openvino_installed: bool,
                 cuda_available: bool, artifact_formats: Collection[str] = ()) -> AutoChoice:
    """Pick the runtime of ``backend: auto`` from the facts of this machine (a pure rule).

    Given artifacts decide (their format's runtime). On CUDA (``device`` cuda[:N], or auto
    with CUDA present) torch eager. On the CPU, fp32 names OpenVINO on x86 where it is
    installed: the candidate, which runs an inference size only where it gives torch fp32's
    scores and is faster there (the Segmenter times both once per size and records it:
    :mod:`densehybrid_ros.deploy.auto_timing`; embedded model at 576x1024 on a 2-core CPU,
    idle: torch 179 ms, OpenVINO 211 ms; another time, busy: OpenVINO x2.42); else torch, a
    fallback where OpenVINO is missing.
    Other precisions are explicit choices: torch where it runs them (bf16, fp16), else the
    runtime that does (int8: OpenVINO).
    """
    formats = sorted(set(artifact_formats))
    if formats:
        if len(formats) > 1 or formats[0] not in FORMAT_BACKENDS:
            raise ExportError(f'artifacts of formats {", ".join(formats)} cannot run together')
        return AutoChoice(FORMAT_BACKENDS[formats[0]], f'the given artifacts are {formats[0]} '
                          f'graphs')
    if device.startswith('cuda') or (device == 'auto' and cuda_available):
        return AutoChoice('torch', 'a CUDA device: torch eager is the fastest exact runtime '
                          'there')
    if precision != 'fp32':
        name = 'torch' if precision in BACKEND_PRECISIONS['torch'] else next(
            (b for b, precisions in BACKEND_PRECISIONS.items() if precision in precisions),
            'torch')
        return AutoChoice(name, f'{precision} is an explicit choice; {name} runs it')
    if machine.lower() not in X86:
        return AutoChoice('torch', f'a {machine or "unknown"} CPU: OpenVINO fp32 is chosen '
                          f'on x86 only')
    if not openvino_installed:
        return AutoChoice('torch', 'OpenVINO is not installed (requirements/deploy.txt): '
                          'torch eager, the slowest exact runtime', fallback=True)
    return AutoChoice('openvino', 'an x86 CPU with OpenVINO installed: it runs each '
                      'inference size where it is faster than torch fp32 here, timed once')
