"""Ladder ResNet-18: a real-time DenseHybrid (SwiftNet-style) for vehicle computers.

    x (N x 3 x H x W, RGB in [0, 1]) -> ImageNet mean/std normalisation (inside the model)
    -> torchvision ResNet-18 stem + layer1   --skip-->  s1     N x  64 x H/4  x W/4
    -> layer2                                --skip-->  s2     N x 128 x H/8  x W/8
    -> layer3                                --skip-->  s3     N x 256 x H/16 x W/16
    -> layer4                                                  N x 512 x H/32 x W/32
    -> SPP (grids 8, 4, 2, 1; 128 bottleneck, 4 x 32 levels)   N x 128 x H/32 x W/32
    -> ladder with s3, s2, s1 (128 channels each)              N x 128 x H/4  x W/4
    -> heads (base class), bilinear to H x W
"""

import torch
from torch import nn
from torchvision.models import resnet18

from .base import DenseHybridModel
from .layers import LadderDecoder, SpatialPyramidPooling

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTH = 128


class LadderResNet18(DenseHybridModel):
    """ResNet-18 encoder, SPP and a light ladder decoder with the two DenseHybrid heads."""

    arch = 'ladder_resnet18'

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__(num_classes)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        trunk = resnet18(weights=None)
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layer1, self.layer2 = trunk.layer1, trunk.layer2
        self.layer3, self.layer4 = trunk.layer3, trunk.layer4
        self.spp = SpatialPyramidPooling(512, WIDTH, WIDTH // 4, WIDTH)
        self.upsample = LadderDecoder(WIDTH, (256, 128, 64), (WIDTH, WIDTH, WIDTH))
        self._add_heads(self.upsample.out_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        s1 = self.layer1(self.stem(x))                # N x  64 x H/4  x W/4
        s2 = self.layer2(s1)                          # N x 128 x H/8  x W/8
        s3 = self.layer3(s2)                          # N x 256 x H/16 x W/16
        x = self.spp(self.layer4(s3))                 # N x 128 x H/32 x W/32
        return self.upsample(x, [s3, s2, s1])         # N x 128 x H/4  x W/4
