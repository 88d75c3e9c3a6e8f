"""Inference-time folding of BatchNorm into the convolution that feeds it.

Wherever a convolution's only consumer is a BatchNorm (DenseNet's conv1 -> norm2, every ResNet
conv -> bn, WRN-38's conv -> ``bnX = Sequential(BN, ReLU)``, the ASPP and DeepLab decoder
units), the BN is an affine map of the conv output and becomes the conv's weight scale and bias.
Pre-activation units (BN -> ReLU -> conv) cannot fold their BN (the ReLU is in between), so
where the BN reads DenseNet's channel-slice views of the block buffer (a slow strided path for
BatchNorm) the BN and its ReLU become one ``relu(x * scale + shift)`` module. The fused model
computes the same function; its state_dict differs, so it is for inference only
(the Segmenter fuses a copy after loading).
"""

from typing import Iterable, Optional, Tuple

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from .ldn121 import DenseLayer


class ScaleShiftReLU(nn.Module):
    """``relu(x * scale + shift)``: an eval-mode BatchNorm and the ReLU after it, one pass."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
        self.register_buffer('scale', scale.detach().view(1, -1, 1, 1).clone())
        self.register_buffer('shift', shift.detach().view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # addcmul writes a fresh tensor in x's memory format (also for strided views).
        return torch.addcmul(self.shift, x, self.scale).clamp_min_(0.0)


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a conv equal to ``bn(conv(x))`` for a BN in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)                 # C_out
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def _pairs(module: nn.Module) -> Iterable[Tuple[str, str]]:
    """(conv, bn) child names whose BN only ever sees that conv's output."""
    if isinstance(module, DenseLayer):
        return [('conv1', 'norm2')]
    if isinstance(module, BasicBlock):
        return [('conv1', 'bn1'), ('conv2', 'bn2')]
    names = [name for name, _ in module.named_children()]
    children = dict(module.named_children())
    if isinstance(module, nn.Sequential):       # stems, downsample branches, WRN-38 convs
        return [(a, b) for a, b in zip(names, names[1:])
                if isinstance(children[a], nn.Conv2d) and _leading_bn(children[b]) is not None]
    return []


def _leading_bn(module: nn.Module) -> Optional[nn.BatchNorm2d]:
    """Return the BN itself, or the first child of a ``Sequential(BN, ReLU)`` (WRN-38's bn2)."""
    if isinstance(module, nn.BatchNorm2d):
        return module
    first = module[0] if isinstance(module, nn.Sequential) and len(module) else None
    if isinstance(first, nn.BatchNorm2d):
        return first
    return None


def _bn_relu_pairs(module: nn.Module) -> Iterable[Tuple[str, str]]:
    """(bn, relu) child names where the BN reads a channel slice of a dense-block buffer.

    Only there does it pay: BatchNorm's channels-last kernel is fast on contiguous tensors but
    takes a slow strided path on the slice views (measured: ldn121 about 8 % faster overall,
    while fusing every BN -> ReLU pair was slower on contiguous inputs).
    """
    return [('norm1', 'relu1')] if isinstance(module, DenseLayer) else []


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Fold conv -> BN pairs, then the dense layers' BN -> ReLU, in place (eval mode)."""
    if model.training:
        raise ValueError('fuse_for_inference needs a model in eval mode')
    for module in list(model.modules()):
        for conv_name, bn_name in _pairs(module):
            conv, holder = getattr(module, conv_name), getattr(module, bn_name)
            bn = _leading_bn(holder)
            if bn is not None and isinstance(conv, nn.Conv2d):
                setattr(module, conv_name, fold_bn(conv, bn))
                if holder is bn:
                    setattr(module, bn_name, nn.Identity())
                else:
                    holder[0] = nn.Identity()
    for module in list(model.modules()):
        for bn_name, relu_name in _bn_relu_pairs(module):
            setattr(module, bn_name, ScaleShiftReLU(getattr(module, bn_name)))
            setattr(module, relu_name, nn.Identity())
    return model
