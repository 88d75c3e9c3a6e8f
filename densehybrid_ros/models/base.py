"""The shared base of every DenseHybrid architecture: a feature extractor plus two heads.

A subclass implements :meth:`features` (RGB in [0, 1] -> a dense feature map at some stride);
this base adds the closed-set head ``logits`` (K classes) and the dataset-posterior head
``logits_ood`` (2-way: inlier, outlier) on the same features, and brings both back to the input
resolution.
"""

from typing import Tuple

import torch
from torch import nn

from .layers import BNReluConv, upsample

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DenseHybridModel(nn.Module):
    """Base class: ``model(x) -> (logits N x K x H x W, ood_logits N x 2 x H x W)``."""

    arch: str = ''
    # Parameter-name prefixes of the closed-set classifier and the dataset-posterior head: what
    # ``densehybrid-train --finetune heads`` trains.
    head_prefixes: Tuple[str, ...] = ('logits.', 'logits_ood.')

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes

    def _add_imagenet_normalisation(self) -> None:
        """Register ImageNet mean/std (not in the state_dict) for models that normalise inside."""
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def _add_heads(self, head_channels: int) -> None:
        """Create both heads; subclasses call this last so the heads come last in state_dict."""
        self.logits = BNReluConv(head_channels, self.num_classes, k=1, bias=True)
        self.logits_ood = BNReluConv(head_channels, 2, k=1, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the shared head input, N x head_channels x h x w, for RGB x in [0, 1]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.features(x)                                   # N x C x H/4 x W/4
        logits = upsample(self.logits(feats), size)                # N x K x H x W
        ood_logits = upsample(self.logits_ood(feats), size)        # N x 2 x H x W
        return logits, ood_logits

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Closed-set logits only: the plain segmentation model that DenseHybrid extends."""
        return upsample(self.logits(self.features(x)), x.shape[-2:])
