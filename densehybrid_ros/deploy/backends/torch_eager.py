"""The PyTorch eager backend: the model as it is, with autocast for fp16 / bf16."""

from typing import Any, Dict, Optional, Tuple

import torch

from ...models import DenseHybridModel
from ...core.scoring import score_and_labels
from .base import Backend, Batch

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


class TorchBackend(Backend):
    """Runs the model eagerly on a torch device; score and argmax from one max pass."""

    name = 'torch'

    def __init__(self, model: DenseHybridModel, meta: Dict[str, Any], precision: str = 'fp32',
                 score: str = 'hybrid', device: str = 'cpu', channels_last: bool = True,
                 **_: Any) -> None:
        self.device = torch.device(device)
        if precision == 'fp16' and self.device.type != 'cuda':
            raise ValueError('fp16 needs a CUDA device; use bf16 on the CPU')
        self.dtype, self.score, self.meta = DTYPES[precision], score, meta
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)

    @torch.inference_mode()
    def infer(self, batch: Batch,
              need_score: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Labels (N x h x w uint8 / int32) and, if asked, the score (float32) on the device."""
        x = torch.as_tensor(batch).to(self.device)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        x = x.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32):
            logits, ood_logits = self.model(x)                           # N x K|2 x h x w
        if need_score:     # one pass gives both; the logits are scratch space afterwards
            score, labels = score_and_labels(self.score, logits.float(), ood_logits.float(),
                                             overwrite_logits=True)
        else:
            score, labels = None, logits.argmax(1)
        dtype = torch.uint8 if logits.shape[1] <= 255 else torch.int32
        return labels.to(dtype), score
