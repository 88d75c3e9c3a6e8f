"""Ladder ResNet-18: real-time DenseHybrid (SwiftNet-style) models for vehicle computers.

    x (N x 3 x H x W, RGB in [0, 1]) -> ImageNet mean/std normalisation (inside the model)
    -> ResNet-18 stem + layer1        --skip-->  s1     N x c1 x H/4  x W/4
    -> layer2                         --skip-->  s2     N x c2 x H/8  x W/8
    -> layer3                         --skip-->  s3     N x c3 x H/16 x W/16
    -> layer4                                           N x c4 x H/32 x W/32
    -> SPP (grids 8, 4, 2, 1; D bottleneck, 4 x D/4)    N x  D x H/32 x W/32
    -> ladder with s3, s2, s1 (D channels each)         N x  D x H/4  x W/4
    -> heads (base class), bilinear to H x W

``ladder_resnet18`` is torchvision's ResNet-18 (c = 64, 128, 256, 512; D = 128; 11.8 M params).
``ladder_resnet18_half`` halves every width (c = 32 ... 256; D = 96; 3.1 M params, about a
quarter of the FLOPs): the embedded default, small enough to ship inside the package.
"""

from typing import Sequence

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock

from .base import DenseHybridModel
from .layers import LadderDecoder, SpatialPyramidPooling


def _stage(c_in: int, c_out: int, stride: int, blocks: int = 2) -> nn.Sequential:
    """Build a ResNet stage of BasicBlocks, with a 1x1 projection when the shape changes."""
    down = None
    if stride != 1 or c_in != c_out:
        down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                             nn.BatchNorm2d(c_out))
    layers = [BasicBlock(c_in, c_out, stride, down)]
    layers += [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class LadderResNet(DenseHybridModel):
    """ResNet-18-shaped encoder, SPP and a light ladder decoder with the two DenseHybrid heads."""

    widths: Sequence[int] = (64, 128, 256, 512)
    decoder_width: int = 128

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__(num_classes)
        self._add_imagenet_normalisation()
        self._build_encoder()
        c1, c2, c3, c4 = self.widths
        d = self.decoder_width
        self.spp = SpatialPyramidPooling(c4, d, d // 4, d)
        self.upsample = LadderDecoder(d, (c3, c2, c1), (d, d, d))
        self._add_heads(self.upsample.out_channels)

    def _build_encoder(self) -> None:
        c1, c2, c3, c4 = self.widths
        self.stem = nn.Sequential(nn.Conv2d(3, c1, 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.layer1, self.layer2 = _stage(c1, c1, 1), _stage(c1, c2, 2)
        self.layer3, self.layer4 = _stage(c2, c3, 2), _stage(c3, c4, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        s1 = self.layer1(self.stem(x))                # N x c1 x H/4  x W/4
        s2 = self.layer2(s1)                          # N x c2 x H/8  x W/8
        s3 = self.layer3(s2)                          # N x c3 x H/16 x W/16
        x = self.spp(self.layer4(s3))                 # N x  D x H/32 x W/32
        return self.upsample(x, [s3, s2, s1])         # N x  D x H/4  x W/4


class LadderResNet18(LadderResNet):
    """Ladder decoder over torchvision's ResNet-18 (loads ImageNet ResNet-18 trunk weights)."""

    arch = 'ladder_resnet18'

    def _build_encoder(self) -> None:
        trunk = resnet18(weights=None)
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layer1, self.layer2 = trunk.layer1, trunk.layer2
        self.layer3, self.layer4 = trunk.layer3, trunk.layer4


class LadderResNet18Half(LadderResNet):
    """Half-width ResNet-18 ladder: the embedded default (about 12 MiB in fp32)."""

    arch = 'ladder_resnet18_half'
    widths = (32, 64, 128, 256)
    decoder_width = 96
