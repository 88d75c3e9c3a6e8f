"""The OpenVINO backend: OpenVINO IR artifacts on the CPU, fp32 / bf16 (hint) / int8 (NNCF)."""

from typing import Any, Dict

import numpy as np

from ..runtimes import require
from .base import GraphBackend, Runner

# Our precision -> OpenVINO's INFERENCE_PRECISION_HINT. fp32 must be explicit: on CPUs with
# bf16 support the CPU plugin defaults to bf16 (measured here: labels 0.9996, score 1.6e-3 off).
HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32'}


class OpenVinoBackend(GraphBackend):
    """OpenVINO's CPU plugin over ``model.xml`` artifacts (int8 ones come quantised)."""

    name, fmt = 'openvino', 'openvino'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ov = require('openvino', 'the openvino backend')
        super().__init__(*args, **kwargs)
        self.core = self.ov.Core()

    def load(self, info: Dict[str, Any]) -> Runner:
        """Compile for latency with the precision hint; one infer request reused per size."""
        config = {'INFERENCE_PRECISION_HINT': HINTS[self.precision],
                  'PERFORMANCE_HINT': 'LATENCY'}
        if self.threads:
            config['INFERENCE_NUM_THREADS'] = int(self.threads)
        compiled = self.core.compile_model(info['graph'], 'CPU', config)
        request = compiled.create_infer_request()
        labels_out, score_out = compiled.output('labels'), compiled.output('score')

        def run(x: np.ndarray) -> Any:
            result = request.infer({0: x})
            return np.array(result[labels_out]), np.array(result[score_out])
        return run
