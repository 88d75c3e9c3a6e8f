"""Architectures: the authors' LDN-121 weights and outputs, shapes, precision and layouts."""

import numpy as np
import pytest
import torch

from densehybrid_ros.models import ARCHS, build_model
from densehybrid_ros.core.scoring import hybrid_score
from golden import (deterministic_fill, deterministic_input, manifest_of, read_manifest,
                    SMALL_ARCHS)


@pytest.fixture(scope='module')
def ldn121_golden_model(official_dir):
    model = build_model('ldn121', 19)
    manifest = read_manifest(official_dir / 'ldn121_densehybrid_19.keys')
    model.load_state_dict(deterministic_fill(manifest), strict=True)
    return model.eval()


def test_ldn121_state_dict_matches_manifest_exactly(official_dir):
    manifest = read_manifest(official_dir / 'ldn121_densehybrid_19.keys')
    state = build_model('ldn121', 19).state_dict()
    ours = manifest_of(state)
    assert len(manifest) == 827
    assert ours == manifest      # same keys, same order, same shapes and dtypes


def test_ldn121_loads_manifest_state_dict_strictly(official_dir):
    manifest = read_manifest(official_dir / 'ldn121_densehybrid_19.keys')
    state = deterministic_fill(manifest)
    model = build_model('ldn121', 19)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.state_dict()['logits.conv.bias'], state['logits.conv.bias'])


@pytest.mark.parametrize('h, w', [(96, 160), (100, 150)])
def test_ldn121_matches_golden_outputs(ldn121_golden_model, official_dir, h, w):
    golden = np.load(official_dir / f'ldn121_golden_{h}x{w}.npz')
    with torch.inference_mode():
        logits, ood_logits = ldn121_golden_model(deterministic_input(h, w))
        score = hybrid_score(logits, ood_logits)
    assert logits.shape == (1, 19, h, w) and ood_logits.shape == (1, 2, h, w)
    assert np.abs(score.numpy() - golden['score']).max() < 1e-3
    assert np.abs(logits.numpy() - golden['logits']).max() < 1e-3
    assert np.abs(ood_logits.numpy() - golden['ood_logits']).max() < 1e-3


@pytest.mark.parametrize('arch', SMALL_ARCHS)
@pytest.mark.parametrize('h, w', [(64, 96), (67, 93), (33, 40)])
def test_outputs_at_input_resolution(arch, h, w):
    model = build_model(arch, 7).eval()
    with torch.inference_mode():
        logits, ood_logits = model(torch.rand(2, 3, h, w))
    assert logits.shape == (2, 7, h, w) and ood_logits.shape == (2, 2, h, w)
    assert torch.isfinite(logits).all() and torch.isfinite(ood_logits).all()


@pytest.mark.parametrize('arch', SMALL_ARCHS)
def test_training_step_reaches_every_parameter_of_the_heads(arch):
    model = build_model(arch, 5).train()
    logits, ood_logits = model(torch.rand(2, 3, 64, 64))
    (logits.mean() + ood_logits.mean()).backward()
    for name in ('logits.conv.weight', 'logits_ood.conv.weight'):
        assert model.get_parameter(name).grad is not None


def test_dense_block_inference_buffer_equals_concatenation(ldn121_golden_model):
    x = deterministic_input(64, 96)
    with torch.no_grad():
        fast = ldn121_golden_model(x)
    with torch.enable_grad():
        slow = ldn121_golden_model(x)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b.detach(), atol=1e-5)


@pytest.mark.parametrize('arch', ['ldn121', 'ladder_resnet18'])
def test_channels_last_and_bf16_autocast_stay_within_tolerance(arch, ldn121_golden_model):
    if arch == 'ldn121':
        model = ldn121_golden_model
    else:
        torch.manual_seed(0)
        model = build_model(arch, 19).eval()
    x = deterministic_input(96, 160)
    with torch.inference_mode():
        ref = hybrid_score(*model(x))
        model_cl = model.to(memory_format=torch.channels_last)
        cl = hybrid_score(*model_cl(x.contiguous(memory_format=torch.channels_last)))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits, ood_logits = model_cl(x.contiguous(memory_format=torch.channels_last))
        bf16 = hybrid_score(logits.float(), ood_logits.float())
        model.to(memory_format=torch.contiguous_format)
    spread = float(ref.max() - ref.min())
    assert torch.allclose(cl, ref, atol=1e-3)
    # bf16 keeps 8 mantissa bits (relative step 0.4 %) and rounding adds up over 120 layers:
    # demand a near-identical ranking of pixels, 2 % median relative error, and 99 % of pixels
    # within 10 % of the score's spread over the image.
    err = (bf16 - ref).abs().flatten()
    corr = np.corrcoef(bf16.flatten().numpy(), ref.flatten().numpy())[0, 1]
    assert corr > 0.99
    assert float((err / ref.abs().flatten()).median()) < 0.02
    assert float(err.quantile(0.99)) < 0.1 * spread


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown arch .*ldn121'):
        build_model('resnet9000', 19)


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_head_prefixes_name_both_heads_and_nothing_else(arch):
    with torch.device('meta'):
        model = build_model(arch, 7)
    heads = [n for n, _ in model.named_parameters() if n.startswith(model.head_prefixes)]
    assert {n.split('.')[0] for n in heads} <= {'logits', 'logits_ood', 'final'}
    shapes = {tuple(p.shape) for n, p in model.named_parameters() if n in heads}
    assert any(s[0] == 7 for s in shapes) and any(s[0] == 2 for s in shapes)  # K and 2 outputs
    assert len(heads) < len(list(model.parameters())) // 4
