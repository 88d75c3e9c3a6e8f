"""DeepLabV3+ WRN-38: the authors' key layout, golden outputs, strict import and fusion.

The model has 137 M parameters (550 MB in fp32): one filled copy per module, eval and no_grad.
"""

import copy

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from densehybrid_ros.models.checkpoint import CheckpointError
from densehybrid_ros.deploy.graph import export_onnx, FrameGraph
from densehybrid_ros.models import build_model
from densehybrid_ros.models.dlv3plus_wrn38 import PreActBlock
from densehybrid_ros.models.fusion import fuse_for_inference
from densehybrid_ros.models.signature import guess_arch
from densehybrid_ros.models.official import import_official
from densehybrid_ros.core.scoring import hybrid_score
from golden import deterministic_fill, deterministic_input, manifest_of, read_manifest

ARCH = 'dlv3plus_wrn38'
MANIFEST = 'dlv3plus_wrn38_densehybrid_19.keys'


@pytest.fixture(scope='module')
def manifest(official_dir):
    return read_manifest(official_dir / MANIFEST)


@pytest.fixture(scope='module')
def golden_model(manifest):
    model = build_model(ARCH, 19)
    model.load_state_dict(deterministic_fill(manifest), strict=True)
    return model.eval()


@pytest.fixture(scope='module')
def random_state(manifest):
    """A state_dict with the manifest's keys, order and shapes and random values."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape_text, dtype in manifest:
        shape = () if shape_text == 'scalar' else tuple(int(s) for s in shape_text.split('x'))
        if dtype == 'float32':
            value = torch.rand(shape, generator=gen)
            state[key] = value + 0.5 if key.endswith('running_var') else value - 0.5
        else:
            state[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
    return state


def test_state_dict_matches_manifest_exactly(manifest):
    with torch.device('meta'):
        state = build_model(ARCH, 19).state_dict()
    assert len(manifest) == 275
    assert manifest_of(state) == manifest       # same keys, order, shapes and dtypes
    floats = sum(int(np.prod(v.shape)) for v in state.values() if v.is_floating_point())
    assert floats == pytest.approx(137.1e6, rel=1e-3)


@pytest.mark.parametrize('h, w', [(64, 96), (72, 120)])
def test_matches_golden_outputs(golden_model, official_dir, h, w):
    golden = np.load(official_dir / f'dlv3plus_wrn38_golden_{h}x{w}.npz')
    with torch.no_grad():
        logits, ood_logits = golden_model(deterministic_input(h, w))
        score = hybrid_score(logits, ood_logits)
    assert logits.shape == (1, 19, h, w) and ood_logits.shape == (1, 2, h, w)
    assert np.abs(score.numpy() - golden['score']).max() < 1e-3
    assert np.abs(logits.numpy() - golden['logits']).max() < 1e-4
    assert np.abs(ood_logits.numpy() - golden['ood_logits']).max() < 1e-4


def test_normalisation_is_inside_the_model(golden_model):
    # The ImageNet mean image maps to zero input: the same logits as a zero tensor fed past
    # the normalisation. Not in the state_dict (the reference keeps them as constants).
    assert 'mean' not in golden_model.state_dict() and 'std' not in golden_model.state_dict()
    mean = golden_model.mean.expand(1, 3, 24, 40)
    with torch.no_grad():
        a = golden_model(mean)[0]
        golden_model.mean.zero_()
        golden_model.std.fill_(1.0)
        try:
            b = golden_model(torch.zeros(1, 3, 24, 40))[0]
        finally:
            golden_model.mean.copy_(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            golden_model.std.copy_(torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    assert torch.allclose(a, b, atol=1e-5)


def test_forward_logits_and_odd_sizes(golden_model):
    x = torch.rand(2, 3, 45, 61)
    with torch.no_grad():
        logits, ood_logits = golden_model(x)
        plain = golden_model.forward_logits(x)
    assert logits.shape == (2, 19, 45, 61) and ood_logits.shape == (2, 2, 45, 61)
    assert torch.equal(plain, logits)
    assert torch.isfinite(logits).all() and torch.isfinite(ood_logits).all()


def test_import_of_a_manifest_state_dict_with_random_values(random_state):
    state = random_state
    assert guess_arch(state) == ARCH
    model, meta = import_official({'module.' + k: v for k, v in state.items()})
    assert meta['arch'] == ARCH and meta['num_classes'] == 19
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())


def test_import_names_a_renamed_key_and_a_changed_shape(random_state):
    state = random_state
    renamed = dict(state)
    renamed['aspp.features.2.0.weightt'] = renamed.pop('aspp.features.2.0.weight')
    with pytest.raises(CheckpointError, match=r'1 missing: aspp\.features\.2\.0\.weight; '
                                              r'1 unexpected: aspp\.features\.2\.0\.weightt'):
        import_official(renamed, ARCH, 19)
    reshaped = dict(state)
    reshaped['bot_fine.weight'] = torch.zeros(40, 128, 1, 1)
    with pytest.raises(CheckpointError, match=r'1 shape mismatch .*bot_fine\.weight: '
                                              r'\(40, 128, 1, 1\) vs \(48, 128, 1, 1\)'):
        import_official(reshaped, ARCH, 19)


def test_folded_model_computes_the_same_function(golden_model):
    fused = fuse_for_inference(copy.deepcopy(golden_model))
    blocks = [m for m in fused.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 17
    # every conv -> BN in the blocks' convs, the ASPP and the decoder is folded; what is
    # left are the pre-activation BNs (17 bn1 and logits_ood's norm)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) == 18
    x = deterministic_input(40, 56)
    with torch.no_grad():
        ref = golden_model(x)
        for memory_format in (torch.contiguous_format, torch.channels_last):
            fused.to(memory_format=memory_format)
            got = fused(x.contiguous(memory_format=memory_format))
            for a, b in zip(ref, got):
                assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_training_step_reaches_both_heads_and_keeps_the_reference_bn_momentum(golden_model):
    assert golden_model.logits_ood.norm.momentum == 0.01
    assert golden_model.mod2.block1.bn1[0].momentum == 0.1
    buffers = {k: v.clone() for k, v in golden_model.named_buffers()}   # BN statistics
    golden_model.train()
    try:
        logits, ood_logits = golden_model(torch.rand(2, 3, 24, 32))
        assert logits.shape == (2, 19, 24, 32)
        (logits.mean() + ood_logits.mean()).backward()
        for name in ('final.6.weight', 'logits_ood.conv.weight', 'mod1.conv1.weight'):
            assert golden_model.get_parameter(name).grad is not None
    finally:
        golden_model.eval().zero_grad(set_to_none=True)
        for k, v in golden_model.named_buffers():
            v.copy_(buffers[k])


def test_exports_to_onnx_and_onnxruntime_agrees_with_torch(golden_model, tmp_path):
    # The deployment path: one static ONNX graph (model + score + argmax), 523 MiB here.
    path = export_onnx(golden_model, (64, 96), tmp_path / 'm.onnx')
    x = deterministic_input(64, 96)
    with torch.no_grad():
        labels, score = FrameGraph(golden_model).eval()(x)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {'image': x.numpy()})))
    assert np.array_equal(got['labels'], labels.numpy())
    assert np.abs(got['score'] - score.numpy()).max() < 1e-4      # measured 8e-6
