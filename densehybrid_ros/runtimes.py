"""Which inference backends exist and the precisions each runs: one table, no heavy imports.

The node's parameter table, the export tool and the backends import it; it imports nothing, so
a process that only validates parameters does not load torch or a runtime.
"""

from typing import Dict, Tuple

# backend -> precisions it runs (fp16 on torch needs CUDA; int8 needs an NNCF-quantised artifact)
BACKEND_PRECISIONS: Dict[str, Tuple[str, ...]] = {
    'torch': ('fp32', 'fp16', 'bf16'),
    'onnxruntime': ('fp32', 'fp16'),
    'openvino': ('fp32', 'bf16', 'int8'),
}
BACKENDS: Tuple[str, ...] = tuple(BACKEND_PRECISIONS)
PRECISIONS: Tuple[str, ...] = ('fp32', 'fp16', 'bf16', 'int8')
