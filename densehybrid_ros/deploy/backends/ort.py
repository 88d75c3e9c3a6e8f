"""The ONNX Runtime backend: exported ONNX graphs on the CPU (or CUDA / TensorRT providers)."""

from typing import Any, Dict, List

import numpy as np

from ..runtimes import require
from .base import BackendError, GraphBackend, Runner


class OrtBackend(GraphBackend):
    """ONNX Runtime over ``model.onnx`` artifacts; device 'cuda' uses the CUDA provider."""

    name, fmt = 'onnxruntime', 'onnx'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ort = require('onnxruntime', 'the onnxruntime backend')
        super().__init__(*args, **kwargs)
        self.providers = self._providers()

    def _providers(self) -> List[Any]:
        available = self.ort.get_available_providers()
        if str(self.device_name).startswith('cuda'):
            if 'CUDAExecutionProvider' not in available:
                raise BackendError('onnxruntime has no CUDAExecutionProvider here (install '
                                   'onnxruntime-gpu from requirements/gpu.txt)')
            index = str(self.device_name).partition(':')[2] or '0'
            return [('CUDAExecutionProvider', {'device_id': int(index)}),
                    'CPUExecutionProvider']
        if self.precision == 'fp16':
            raise BackendError('onnxruntime fp16 runs on CUDA only (device cuda); on the CPU '
                               'use fp32, or the openvino backend for bf16 / int8')
        return ['CPUExecutionProvider']

    def load(self, info: Dict[str, Any]) -> Runner:
        """Open an InferenceSession over the artifact's graph, all graph optimisations on."""
        options = self.ort.SessionOptions()
        options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        session = self.ort.InferenceSession(info['graph'], options, providers=self.providers)

        def run(x: np.ndarray) -> Any:
            labels, score = session.run(['labels', 'score'], {'image': x})
            return labels, score
        return run
