"""Building blocks shared by the ladder-style DenseHybrid architectures.

Module and parameter names follow the authors' LDN code so that their state_dicts load with
``strict=True``: a pre-activation unit is ``norm`` -> ``relu`` -> ``conv``.
"""

from typing import List, Sequence

import torch
from torch import nn
import torch.nn.functional as F

BN_MOMENTUM = 0.01


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W) with ``align_corners=False``, as the reference does."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)


class BNReluConv(nn.Sequential):
    """Pre-activation unit: BatchNorm -> ReLU -> Conv (k x k, 'same' padding)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, bias: bool = False,
                 dilation: int = 1) -> None:
        super().__init__()
        self.add_module('norm', nn.BatchNorm2d(c_in, momentum=BN_MOMENTUM))
        self.add_module('relu', nn.ReLU(inplace=True))
        self.add_module('conv', nn.Conv2d(c_in, c_out, kernel_size=k, padding=(k // 2) * dilation,
                                          bias=bias, dilation=dilation))


class SpatialPyramidPooling(nn.Module):
    """SPP over the deepest features: a bottleneck, pooled levels on an aspect-aware grid, fuse.

    Level ``g`` pools to a ``g x max(1, round(g * W / H))`` grid, so wide images get wide grids.
    """

    def __init__(self, c_in: int, bottleneck: int, level: int, c_out: int,
                 grids: Sequence[int] = (8, 4, 2, 1)) -> None:
        super().__init__()
        self.grids = tuple(grids)
        self.spp = nn.Sequential()
        self.spp.add_module('spp_bn', BNReluConv(c_in, bottleneck, k=1))
        for i in range(len(self.grids)):
            self.spp.add_module(f'spp{i}', BNReluConv(bottleneck, level, k=1))
        self.spp.add_module('spp_fuse',
                            BNReluConv(bottleneck + level * len(self.grids), c_out, k=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]                                   # (h, w) at stride 32
        # Plain ints: the grid is a constant of the input size. round() on the traced size
        # tensors of torch.onnx's legacy exporter failed; int() bakes the value in instead
        # (one static graph per inference size, like the adaptive pooling kernels).
        aspect = int(size[1]) / int(size[0])
        x = self.spp[0](x)                                    # N x bottleneck x h x w
        levels = [x]
        for i, g in enumerate(self.grids):
            pooled = F.adaptive_avg_pool2d(x, (g, max(1, round(aspect * g))))
            levels.append(upsample(self.spp[i + 1](pooled), size))
        return self.spp[-1](torch.cat(levels, 1))             # N x c_out x h x w


class LadderUpsample(nn.Module):
    """One ladder step: bottleneck the skip, upsample the coarse map to it, add, blend (3x3)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, aux_classes: int = 0) -> None:
        super().__init__()
        self.bottleneck = BNReluConv(c_skip, c_in, k=1)
        self.blend_conv = BNReluConv(c_in, c_out, k=3)
        if aux_classes:
            # Deep-supervision head of the reference training; kept for weight compatibility,
            # never evaluated at inference.
            self.logits_aux = BNReluConv(c_in, aux_classes, k=1, bias=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.bottleneck(skip)
        x = upsample(x, skip.shape[-2:]) + skip
        return self.blend_conv(x)


class LadderDecoder(nn.Module):
    """A stack of ladder steps, deepest skip first; named ``upsample_layers.upsample_<i>``."""

    def __init__(self, c_in: int, skip_channels: Sequence[int], out_channels: Sequence[int],
                 aux_classes: int = 0) -> None:
        super().__init__()
        self.upsample_layers = nn.Sequential()
        for i, (c_skip, c_out) in enumerate(zip(skip_channels, out_channels)):
            self.upsample_layers.add_module(f'upsample_{i}',
                                            LadderUpsample(c_in, c_skip, c_out, aux_classes))
            c_in = c_out
        self.out_channels = c_in

    def forward(self, x: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        """Fuse ``skips`` given deepest first into ``x``."""
        for layer, skip in zip(self.upsample_layers, skips):
            x = layer(x, skip)
        return x
