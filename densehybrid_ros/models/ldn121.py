"""LDN-121: Ladder-style DenseNet-121, the authors' DenseHybrid architecture for road scenes.

State_dict compatible with the authors' released weights (``LadderDenseNetTH``, see
shared/official/ldn121_densehybrid_19.keys). Input is RGB in [0, 1] with no mean/std
normalisation, as the reference was trained.

    x (N x 3 x H x W)
    -> conv0 7x7/2, BN, ReLU, maxpool 2/2                 N x   64 x H/4  x W/4
    -> denseblock1 (6 layers)       --skip-->  s1          N x  256 x H/4  x W/4
    -> transition1 (1x1, avgpool 3/2)
    -> denseblock2 (12 layers)      --skip-->  s2          N x  512 x H/8  x W/8
    -> transition2
    -> denseblock3 (24 layers)      --skip-->  s3          N x 1024 x H/16 x W/16
    -> transition3
    -> denseblock4 (16 layers)                             N x 1024 x H/32 x W/32
    -> SPP (grids 8, 4, 2, 1)                              N x  512 x H/32 x W/32
    -> ladder with s3, s2, s1 (256, 256, 128 channels)     N x  128 x H/4  x W/4
    -> heads (base class), bilinear to H x W
"""

from typing import List, Tuple

import torch
from torch import nn

from .base import DenseHybridModel
from .layers import BN_MOMENTUM, LadderDecoder, SpatialPyramidPooling

BLOCK_CONFIG = (6, 12, 24, 16)
GROWTH = 32
BN_SIZE = 4
STEM_CHANNELS = 64


class DenseLayer(nn.Sequential):
    """BN-ReLU-1x1 conv (4 * growth) -> BN-ReLU-3x3 conv (growth): adds ``growth`` channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.add_module('norm1', nn.BatchNorm2d(c_in, momentum=BN_MOMENTUM))
        self.add_module('relu1', nn.ReLU(inplace=True))
        self.add_module('conv1', nn.Conv2d(c_in, BN_SIZE * GROWTH, 1, bias=False))
        self.add_module('norm2', nn.BatchNorm2d(BN_SIZE * GROWTH, momentum=BN_MOMENTUM))
        self.add_module('relu2', nn.ReLU(inplace=True))
        self.add_module('conv2', nn.Conv2d(BN_SIZE * GROWTH, GROWTH, 3, padding=1, bias=False))


class DenseBlock(nn.Sequential):
    """Each layer sees the concatenation of the block input and every earlier layer's output."""

    def __init__(self, num_layers: int, c_in: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f'denselayer{i + 1}', DenseLayer(c_in + i * GROWTH))
        self.out_channels = c_in + num_layers * GROWTH

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or _exporting():
            # Exported graphs concatenate too: the buffer's slice writes export as 62 ScatterND
            # and 186 Transpose nodes, and OpenVINO plans concat memory itself (measured at
            # 1024x512, 2 threads: fp32 678 -> 548 ms, bf16 397 -> 270 ms, int8 323 -> 186 ms).
            feats = [x]
            for layer in self:
                feats.append(layer(torch.cat(feats, 1)))
            return torch.cat(feats, 1)
        # Inference: write every layer's output into one preallocated buffer instead of
        # re-concatenating a growing list (quadratic copying).
        n, c, h, w = x.shape
        fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
               and not x.is_contiguous() else torch.contiguous_format)
        out = torch.empty((n, self.out_channels, h, w), dtype=x.dtype, device=x.device,
                          memory_format=fmt)
        out[:, :c] = x
        for layer in self:
            out[:, c:c + GROWTH] = layer(out[:, :c])
            c += GROWTH
        return out


def _exporting() -> bool:
    """Whether torch.export / the dynamo ONNX exporter is tracing this call."""
    is_exporting = getattr(torch.compiler, 'is_exporting', None)     # torch >= 2.5
    return bool(is_exporting and is_exporting())


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then a 3x3 stride-2 average pool."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.add_module('norm', nn.BatchNorm2d(c_in, momentum=BN_MOMENTUM))
        self.add_module('relu', nn.ReLU(inplace=True))
        self.add_module('conv', nn.Conv2d(c_in, c_out, 1, bias=False))
        self.add_module('pool', nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1x1 conv and an average pool are both linear and act on different axes, so they
        # commute: pooling first gives the same result with a quarter of the conv's work.
        return self.conv(self.pool(self.relu(self.norm(x))))


class DenseNet121(nn.Module):
    """DenseNet-121 trunk returning the stride-32 map and the pre-transition skips."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module('conv0', nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3,
                                                    bias=False))
        self.features.add_module('norm0', nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM))
        self.features.add_module('relu0', nn.ReLU(inplace=True))
        self.features.add_module('pool0', nn.MaxPool2d(2, stride=2))
        c = STEM_CHANNELS
        self.skip_channels: List[int] = []
        for i, n in enumerate(BLOCK_CONFIG):
            block = DenseBlock(n, c)
            self.features.add_module(f'denseblock{i + 1}', block)
            c = block.out_channels
            if i < len(BLOCK_CONFIG) - 1:
                self.skip_channels.append(c)
                self.features.add_module(f'transition{i + 1}', Transition(c, c // 2))
                c //= 2
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        skips = []
        for module in self.features:
            if isinstance(module, Transition):
                skips.append(x)
            x = module(x)
        return x, skips


class LDN121(DenseHybridModel):
    """LDN-121 DenseHybrid (``LadderDenseNetTH``)."""

    arch = 'ldn121'

    def __init__(self, num_classes: int = 19) -> None:
        decoder_channels = (256, 256, 128)
        super().__init__(num_classes)
        self.backbone = DenseNet121()
        # 'spp.spp.spp.*' and 'upsample.upsample_layers.*' mirror the reference's key layout.
        self.spp = nn.ModuleDict(
            {'spp': SpatialPyramidPooling(self.backbone.out_channels, 512, 128, 512)})
        self.upsample = LadderDecoder(512, self.backbone.skip_channels[::-1], decoder_channels,
                                      aux_classes=1)
        self._add_heads(self.upsample.out_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.backbone(x)                   # N x 1024 x H/32 x W/32
        x = self.spp['spp'](x)                        # N x 512 x H/32 x W/32
        return self.upsample(x, skips[::-1])          # N x 128 x H/4 x W/4
