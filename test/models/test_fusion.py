"""Inference-time BatchNorm folding keeps every architecture's outputs."""

import copy

import pytest
import torch
from torch import nn

from densehybrid_ros.models import build_model
from densehybrid_ros.models.fusion import fuse_for_inference, ScaleShiftReLU
from densehybrid_ros.models.ldn121 import DenseLayer
from golden import SMALL_ARCHS


def _with_random_bn_statistics(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
    return model.eval()


@pytest.mark.parametrize('arch', SMALL_ARCHS)
def test_folded_model_computes_the_same_function(arch):
    torch.manual_seed(0)
    model = _with_random_bn_statistics(build_model(arch, 19))
    fused = fuse_for_inference(copy.deepcopy(model))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_bn_fused = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert n_bn_fused < n_bn          # something was folded
    if arch == 'ldn121':              # no BatchNorm left on a dense-block slice
        assert not any(isinstance(m, nn.BatchNorm2d) for layer in fused.modules()
                       if isinstance(layer, DenseLayer) for m in layer.children())
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = torch.rand(1, 3, 64, 96).contiguous(memory_format=memory_format)
        with torch.inference_mode():
            for a, b in zip(model(x), fused(x)):
                assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_scale_shift_relu_equals_bn_relu_on_a_channel_slice(memory_format):
    bn = _with_random_bn_statistics(nn.Sequential(nn.BatchNorm2d(24)))[0]
    buffer = torch.randn(2, 40, 9, 13).contiguous(memory_format=memory_format)
    view = buffer[:, :24]                              # as a DenseNet layer reads its input
    with torch.inference_mode():
        expected = torch.relu(bn(view))
        got = ScaleShiftReLU(bn)(view)
    assert torch.allclose(got, expected, atol=1e-6)
    assert got.is_contiguous(memory_format=memory_format)
    assert torch.equal(buffer[:, :24], view)           # the block buffer is left untouched


def test_folding_refuses_a_training_model():
    with pytest.raises(ValueError, match='eval mode'):
        fuse_for_inference(build_model('ladder_resnet18_half', 3).train())
