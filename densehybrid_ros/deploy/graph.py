"""The unit that is exported: a checkpoint's whole per-frame computation as one static graph.

The graph maps ``image`` (N x 3 x h x w float32 RGB in [0, 1]) to ``labels`` (N x h x w,
uint8 when K <= 255 else int32) and ``score`` (N x h x w float32): model, hybrid score and argmax
in one graph, so a runtime does everything between preprocessing and the resize back.
Dynamic H/W does not export (and a symbolic-shape export bakes the adaptive pooling kernels of
the export size in), so every size gets its own static graph; the batch stays dynamic.
"""

import contextlib
import copy
import io
import os
from pathlib import Path
from typing import Any, Tuple, Union
import warnings

import torch
from torch import nn

from ..core.scoring import score_and_labels
from ..models import DenseHybridModel
from .runtimes import check_precision, require

# Bumped whenever the exported graph changes (2: dense blocks concatenate, argmax without TopK),
# so that lazily exported artifacts cached by an older version are made again, not reused.
GRAPH_VERSION = 2
OPSET = 18
Size = Tuple[int, int]
PathLike = Union[str, os.PathLike]


class FrameGraph(nn.Module):
    """Model + score + argmax: ``image`` -> (``labels``, ``score``), the unit that is exported."""

    def __init__(self, model: DenseHybridModel, score: str = 'hybrid',
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model, self.score, self.dtype = model, score, dtype
        self.label_dtype = torch.uint8 if model.num_classes <= 255 else torch.int32

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits, ood_logits = self.model(image.to(self.dtype))          # N x K|2 x h x w
        # In fp16 too: the score subtracts the max before exp (scoring.py), so it stays finite.
        score, labels = score_and_labels(self.score, logits, ood_logits,
                                         overwrite_logits=True, graph=True)
        return labels.to(self.label_dtype), score.float()


def export_onnx(model: DenseHybridModel, size: Size, path: PathLike, score: str = 'hybrid',
                precision: str = 'fp32') -> Path:
    """Write the static-size ONNX graph of ``model`` (fp32, or fp16 weights and compute)."""
    check_precision('onnx', precision)
    dtype = torch.float16 if precision == 'fp16' else torch.float32
    graph = FrameGraph(copy.deepcopy(model).to(dtype), score, dtype).eval()
    example = torch.rand(2, 3, int(size[0]), int(size[1]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim('batch', min=1, max=64)
    # The dynamo exporter prints progress lines on stdout (not logging): keep tools' output clean.
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        program = torch.onnx.export(
            graph, (example,), dynamo=True, opset_version=OPSET, input_names=['image'],
            output_names=['labels', 'score'], dynamic_shapes={'image': {0: batch}},
            external_data=False, verbose=False)
        program.save(str(path))
    return path


def to_openvino(onnx_path: PathLike, path: PathLike) -> Any:
    """Convert an ONNX graph to an OpenVINO model (fp32 weights; precision is a runtime hint)."""
    ov = require('openvino', 'the OpenVINO backend')
    ov_model = ov.convert_model(str(onnx_path))
    if path is not None:
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return ov_model
