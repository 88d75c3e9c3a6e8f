"""DeepLabV3+ over a WideResNet-38 trunk: the paper's headline DenseHybrid model.

State_dict compatible with the authors' released weights (``DeepWV3PlusTH``, see
shared/official/dlv3plus_wrn38_densehybrid_19.keys: 275 keys, 137.1 M floats). Input is RGB in
[0, 1]; the model normalises with the ImageNet mean/std itself. Every resize is bilinear with
``align_corners=True``, as in the reference (LDN-121 uses False).

    x (N x 3 x H x W), (x - mean) / std
    -> mod1 3x3 conv 3->64                                 N x   64 x H   x W
    -> pool2 (max 3/2), mod2 (3 blocks, 128)  --> fine     N x  128 x H/2 x W/2
    -> pool3, mod3 (3 blocks, 256)                         N x  256 x H/4 x W/4
    -> mod4 (6 blocks, 512, first stride 2)                N x  512 x H/8 x W/8
    -> mod5 (3 blocks, 1024, dilation 2)                   N x 1024 x H/8 x W/8
    -> mod6, mod7 (bottlenecks, dilation 4)                N x 4096 x H/8 x W/8
    -> ASPP [image pool, 1x1, d12, d24, d36] x 256         N x 1280 x H/8 x W/8
    -> bot_aspp 1x1, up to fine; cat [bot_fine(fine), .]   N x  304 x H/2 x W/2  (dec0)
    -> final (3x3, 3x3, 1x1) -> logits; logits_ood on dec0, both bilinear to H x W
"""

from collections import OrderedDict
from typing import Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from .base import DenseHybridModel
from .layers import BNReluConv

# (blocks, channels of the block's convs, first-block stride, dilation, dropout) for mod2..mod7
STAGES = (
    (3, (128, 128), 1, 1, 0.0),
    (3, (256, 256), 1, 1, 0.0),
    (6, (512, 512), 2, 1, 0.0),
    (3, (512, 1024), 1, 2, 0.0),
    (1, (512, 1024, 2048), 1, 4, 0.3),
    (1, (1024, 2048, 4096), 1, 4, 0.5),
)
ASPP_RATES = (12, 24, 36)             # the DeepLabV3 rates (6, 12, 18) doubled for stride 8
ASPP_CHANNELS = 256
FINE_CHANNELS = 48


def upsample_aligned(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W) with ``align_corners=True``, as this reference does."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=True)


def bn_relu(channels: int) -> nn.Sequential:
    """Return BatchNorm + ReLU as one child (the reference's ``bnX.0`` key layout)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def conv_bn_relu(c_in: int, c_out: int, k: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU, children ``0``, ``1``, ``2``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=(k // 2) * dilation,
                                   dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class PreActBlock(nn.Module):
    """Pre-activation residual block of WideResNet-38 with two (3x3) or three (1x1-3x3-1x1) convs.

    ``bn1`` activates the input once; the convs read it, and so does the 1x1 projection shortcut
    when the stride or width changes; otherwise the shortcut is the raw input.
    """

    def __init__(self, c_in: int, channels: Sequence[int], stride: int = 1, dilation: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = bn_relu(c_in)
        d = dilation
        if len(channels) == 2:
            layers = [('conv1', nn.Conv2d(c_in, channels[0], 3, stride, d, d, bias=False)),
                      ('bn2', bn_relu(channels[0])),
                      ('conv2', nn.Conv2d(channels[0], channels[1], 3, 1, d, d, bias=False))]
        else:
            layers = [('conv1', nn.Conv2d(c_in, channels[0], 1, stride, bias=False)),
                      ('bn2', bn_relu(channels[0])),
                      ('conv2', nn.Conv2d(channels[0], channels[1], 3, 1, d, d, bias=False)),
                      ('bn3', bn_relu(channels[1])),
                      ('conv3', nn.Conv2d(channels[1], channels[2], 1, bias=False))]
        if dropout:                   # parameter-free, so the key layout is unchanged
            layers.insert(len(layers) - 1, ('dropout', nn.Dropout2d(dropout)))
        self.convs = nn.Sequential(OrderedDict(layers))
        self.proj_conv = (nn.Conv2d(c_in, channels[-1], 1, stride, bias=False)
                          if stride != 1 or c_in != channels[-1] else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        shortcut = x if self.proj_conv is None else self.proj_conv(pre)
        return self.convs(pre) + shortcut


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: [image pooling, 1x1, three dilated 3x3] concatenated."""

    def __init__(self, c_in: int, c_out: int = ASPP_CHANNELS,
                 rates: Sequence[int] = ASPP_RATES) -> None:
        super().__init__()
        self.features = nn.ModuleList(
            [conv_bn_relu(c_in, c_out, 1)] + [conv_bn_relu(c_in, c_out, 3, r) for r in rates])
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = conv_bn_relu(c_in, c_out, 1)
        self.out_channels = c_out * (len(rates) + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = self.img_conv(self.img_pooling(x))            # N x c_out x 1 x 1
        levels = [pooled.expand(-1, -1, *size)]                # a constant map, any resize mode
        levels += [branch(x) for branch in self.features]
        return torch.cat(levels, 1)                            # N x 5 c_out x h x w


class DeepLabV3PlusWRN38(DenseHybridModel):
    """DeepLabV3+ WRN-38 DenseHybrid (``DeepWV3PlusTH``)."""

    arch = 'dlv3plus_wrn38'
    head_prefixes = ('final.6.', 'logits_ood.')       # the 1x1 classifier and the OOD head

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__(num_classes)
        self._add_imagenet_normalisation()
        self.mod1 = nn.Sequential(OrderedDict(conv1=nn.Conv2d(3, 64, 3, padding=1, bias=False)))
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        c = 64
        for i, (blocks, channels, stride, dilation, dropout) in enumerate(STAGES):
            mod = nn.Sequential()
            for b in range(blocks):
                mod.add_module(f'block{b + 1}', PreActBlock(
                    c, channels, stride if b == 0 else 1, dilation, dropout))
                c = channels[-1]
            self.add_module(f'mod{i + 2}', mod)
        fine_in = STAGES[0][1][-1]
        self.aspp = ASPP(c)
        self.bot_fine = nn.Conv2d(fine_in, FINE_CHANNELS, 1, bias=False)
        self.bot_aspp = nn.Conv2d(self.aspp.out_channels, ASPP_CHANNELS, 1, bias=False)
        dec = FINE_CHANNELS + ASPP_CHANNELS                    # 304
        # final.0 ... final.6 as in the reference: two conv-BN-ReLU units, then the classifier.
        self.final = nn.Sequential(*conv_bn_relu(dec, 256, 3), *conv_bn_relu(256, 256, 3),
                                   nn.Conv2d(256, num_classes, 1, bias=False))
        self.logits_ood = BNReluConv(dec, 2, k=1, bias=True)   # BN momentum 0.01

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``dec0``, N x 304 x H/2 x W/2: the input of both heads."""
        x = (x - self.mean) / self.std
        fine = self.mod2(self.pool2(self.mod1(x)))             # N x 128 x H/2 x W/2
        x = self.mod4(self.mod3(self.pool3(fine)))             # N x 512 x H/8 x W/8
        x = self.mod7(self.mod6(self.mod5(x)))                 # N x 4096 x H/8 x W/8
        aspp = self.bot_aspp(self.aspp(x))                     # N x 256 x H/8 x W/8
        return torch.cat([self.bot_fine(fine), upsample_aligned(aspp, fine.shape[-2:])], 1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        dec0 = self.features(x)
        logits = upsample_aligned(self.final(dec0), size)          # N x K x H x W
        ood_logits = upsample_aligned(self.logits_ood(dec0), size)  # N x 2 x H x W
        return logits, ood_logits

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Closed-set logits only: the plain DeepLabV3+ that DenseHybrid extends."""
        return upsample_aligned(self.final(self.features(x)), x.shape[-2:])
