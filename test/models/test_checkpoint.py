"""Checkpoints: round trip, every bad-file case, and the authors' raw state_dicts."""

import io
import os
import pickle
import re

import numpy as np
import pytest
import torch

from densehybrid_ros.models.checkpoint import (CheckpointError, FORMAT, load_checkpoint,
                                               read_checkpoint, save_checkpoint)
from densehybrid_ros.models.official import import_official
from densehybrid_ros.core.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from densehybrid_ros.models import build_model


def test_round_trip_keeps_weights_outputs_and_meta(tmp_path):
    torch.manual_seed(3)
    model = build_model('ladder_resnet18_half', 4).eval()
    meta = {'class_names': ['a', 'b', 'c', 'd'],
            'palette': np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]], np.uint8),
            'calibration': {'threshold': np.float32(-1.5), 'score_p01': -4.0,
                            'score_p99': 2.0, 'measured_on': 'unit test'},
            'train': {'epochs': 3, 'seed': 7, 'metrics': {'ap': 0.9}}}
    path = save_checkpoint(tmp_path / 'sub' / 'm.pt', model, meta)
    loaded, got = load_checkpoint(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
    assert got['format'] == FORMAT and got['arch'] == 'ladder_resnet18_half'
    assert got['class_names'] == meta['class_names']
    assert np.array_equal(got['palette'], meta['palette'])
    assert got['calibration']['threshold'] == pytest.approx(-1.5)
    assert got['train']['metrics'] == {'ap': 0.9}
    assert not loaded.training
    # it is a plain dict of tensors and plain types: the safe loader reads it
    assert torch.load(path, weights_only=True)['num_classes'] == 4
    assert not [p for p in path.parent.iterdir() if p.suffix == '.tmp']


def test_default_names_and_palette_for_19_classes(tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', build_model('ladder_resnet18_half', 19), {})
    _, meta = load_checkpoint(path)
    assert meta['class_names'] == list(CITYSCAPES_CLASSES)
    assert np.array_equal(meta['palette'], CITYSCAPES_PALETTE)
    assert meta['calibration'] is None


class _Exploit:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('case, match', [
    ('missing', 'checkpoint not found'),
    ('truncated', 'truncated or not a PyTorch checkpoint'),
    ('text', 'not a PyTorch checkpoint, or it is corrupted'),
    ('malicious', 'refusing to load .* could run code'),
    ('raw_state_dict', 'raw state_dict.*densehybrid-import'),
    ('wrong_arch', "does not fit arch 'ldn121'.*missing: backbone.features"),
    ('other_format', "has format 'something/9'"),
])
def test_bad_checkpoints_fail_clearly_and_run_nothing(tmp_path, case, match):
    path = tmp_path / 'bad.pt'
    marker = tmp_path / 'pwned'
    good = build_model('ladder_resnet18_half', 19)
    if case == 'truncated':
        save_checkpoint(path, good, {})
        _truncate(path)
    elif case == 'text':
        path.write_text('not a checkpoint')
    elif case == 'malicious':
        torch.save({'format': FORMAT, 'payload': _Exploit(marker)}, path)
    elif case == 'raw_state_dict':
        torch.save(good.state_dict(), path)
    elif case == 'wrong_arch':
        save_checkpoint(path, good, {})
        ckpt = torch.load(path, weights_only=True)
        ckpt['arch'] = 'ldn121'
        torch.save(ckpt, path)
    elif case == 'other_format':
        torch.save({'format': 'something/9'}, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
    assert not marker.exists()


def test_malicious_pickle_is_refused_by_raw_reader_too(tmp_path):
    path, marker = tmp_path / 'evil.pth', tmp_path / 'pwned'
    with open(path, 'wb') as f:
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def _official_state_dict(arch='ldn121', num_classes=19):
    torch.manual_seed(5)
    return build_model(arch, num_classes).state_dict()


@pytest.mark.parametrize('wrap', ['plain', 'module_prefix', 'state_dict_key'])
def test_import_official_from_file(tmp_path, wrap):
    state = _official_state_dict()
    if wrap == 'module_prefix':
        saved = {'module.' + k: v for k, v in state.items()}
    elif wrap == 'state_dict_key':
        saved = {'state_dict': state, 'epoch': 3}
    else:
        saved = state
    path = tmp_path / 'official.pth'
    torch.save(saved, path)
    model, meta = import_official(path, 'ldn121', 19)
    assert torch.equal(model.state_dict()['logits_ood.conv.bias'], state['logits_ood.conv.bias'])
    assert meta['class_names'] == list(CITYSCAPES_CLASSES)
    assert np.array_equal(meta['palette'], CITYSCAPES_PALETTE)
    out = save_checkpoint(tmp_path / 'converted.pt', model, meta)
    reloaded, meta2 = load_checkpoint(out)
    assert meta2['train']['imported_from'] == 'official.pth'


def test_import_of_the_wrong_architecture_names_mismatching_keys():
    with pytest.raises(CheckpointError, match=r'missing: backbone\.features\.conv0\.weight'):
        import_official(_official_state_dict('ladder_resnet18'), 'ldn121', 19)
    with pytest.raises(CheckpointError, match=r'shape mismatch.*logits\.conv\.weight'):
        import_official(_official_state_dict('ldn121', 19), 'ldn121', 11)


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o027, 0o640)])
def test_saved_checkpoints_are_readable_as_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / 'm.pt', build_model('ladder_resnet18_half', 3), {})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_truncated_checkpoint_message_ends_with_a_whole_sentence(tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', build_model('ladder_resnet18_half', 3), {})
    _truncate(path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    # torch's reason runs on for 300+ characters; keep its first sentence, whole
    assert re.search(r'\(\d+ bytes; PytorchStreamReader failed reading zip archive: '
                     r'failed finding central directory\)$', str(err.value)), str(err.value)


def test_a_directory_is_named_as_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match='is a directory, not a checkpoint file'):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize('arch', ['ladder_resnet18_half', 'ldn121'])
def test_raw_state_dict_hint_names_the_arch_of_its_keys(tmp_path, arch):
    path = tmp_path / 'raw.pth'
    torch.save(build_model(arch, 19).state_dict(), path)
    with pytest.raises(CheckpointError, match=rf'--arch {arch} --output .*keys are those of'):
        load_checkpoint(path)
    torch.save({'foo.weight': torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r'--arch \{dlv3plus_wrn38,.*match no known arch'):
        load_checkpoint(path)


def test_reimporting_a_calibrated_checkpoint_keeps_calibration_names_and_palette(tmp_path):
    names = ['road', 'car', 'sky']
    palette = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.uint8)
    calib = {'threshold': -2.5, 'score_p01': -8.0, 'score_p99': 1.0, 'measured_on': 'bag x'}
    path = save_checkpoint(tmp_path / 'cal.pt', build_model('ladder_resnet18_half', 3),
                           {'class_names': names, 'palette': palette, 'calibration': calib})
    model, meta = import_official(path)                       # arch from the checkpoint
    assert meta['arch'] == 'ladder_resnet18_half' and meta['num_classes'] == 3
    assert meta['calibration'] == calib and meta['class_names'] == names
    assert np.array_equal(meta['palette'], palette)
    _, meta = import_official(path, calibration={'threshold': -1.0})   # a given field wins
    assert meta['calibration'] == {**calib, 'threshold': -1.0}
    with pytest.raises(CheckpointError, match="of arch 'ladder_resnet18_half', not 'ldn121'"):
        import_official(path, 'ldn121')


def test_import_tells_the_arch_from_the_keys_and_says_when_it_cannot(tmp_path):
    state = _official_state_dict('ladder_resnet18', 19)
    model, meta = import_official({'module.' + k: v for k, v in state.items()})
    assert meta['arch'] == 'ladder_resnet18'
    with pytest.raises(CheckpointError, match='cannot tell the architecture .* give --arch'):
        import_official({'encoder.weight': torch.zeros(3)})


def test_a_plain_segmentation_model_imports_with_a_fresh_ood_head():
    state = {k: v for k, v in _official_state_dict('ldn121').items()
             if not k.startswith('logits_ood.')}
    with pytest.raises(CheckpointError, match=r'missing: logits_ood\.norm\.weight'):
        import_official(state, 'ldn121')
    model, meta = import_official(state, 'ldn121', new_ood_head=True)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())   # the rest loaded strictly
    assert got['logits_ood.conv.weight'].shape == (2, 128, 1, 1)
    assert meta['train']['new_ood_head'] is True
    broken = dict(state)
    broken.pop('logits.conv.bias')
    with pytest.raises(CheckpointError, match=r'1 missing: logits\.conv\.bias$'):
        import_official(broken, 'ldn121', new_ood_head=True)
    with pytest.raises(CheckpointError, match='has its own OOD head'):
        import_official(_official_state_dict('ldn121'), 'ldn121', new_ood_head=True)


def test_a_file_saved_from_cuda_tensors_imports_on_the_cpu(tmp_path, monkeypatch):
    # Write the file a GPU machine writes: every storage tagged 'cuda:0' (torch.save asks
    # serialization.location_tag for the tag), without needing a GPU here.
    path = tmp_path / 'cuda_saved.pth'
    state = _official_state_dict('ladder_resnet18_half')
    monkeypatch.setattr(torch.serialization, 'location_tag', lambda storage: 'cuda:0')
    torch.save(state, path)
    monkeypatch.undo()
    if not torch.cuda.is_available():          # the tag is real: a plain load needs CUDA
        with pytest.raises(RuntimeError, match='on a CUDA device'):
            torch.load(path, weights_only=True)
    model, meta = import_official(path)
    assert meta['arch'] == 'ladder_resnet18_half'
    got = model.state_dict()
    assert all(v.device.type == 'cpu' and torch.equal(v, state[k]) for k, v in got.items())


class _TupleStorage(pickle.Pickler):
    """Pickle the string 'S' as a storage whose type is a tuple, not a storage class."""

    def persistent_id(self, obj):
        return ('storage', (), '0', 'cpu', 3, None) if obj == 'S' else None


def _legacy_file(data, storage_keys, pickler=pickle.Pickler) -> bytes:
    """A legacy (pre-zip) torch file: magic, protocol, system info, data, storage keys."""
    out = io.BytesIO()
    for part in (torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION,
                 {'protocol_version': 1001, 'little_endian': True}):
        pickle.dump(part, out, protocol=2)
    pickler(out, protocol=2).dump(data)
    pickle.dump(list(storage_keys), out, protocol=2)
    return out.getvalue()


# Damaged files torch's weights-only unpickler raised other errors on (found by test/fuzz).
@pytest.mark.parametrize('data', [
    pytest.param(b'\x80\x02e.', id='IndexError-appends-without-mark'),
    pytest.param(b'\x80\x02hy.', id='KeyError-memo-slot-never-set'),
    pytest.param(b'\x80\x02J\x01', id='struct.error-int-cut-short'),
    pytest.param(b'\x80\x02X\x01\x00\x00\x00\xff.', id='UnicodeDecodeError-string'),
    pytest.param(b'\x80\x02}(}K\x01u.', id='TypeError-dict-as-key'),
    pytest.param(_legacy_file({'format': FORMAT}, ['protocol_version']),
                 id='AssertionError-storage-never-defined'),
    pytest.param(_legacy_file({'x': 'S'}, [], _TupleStorage), id='AttributeError-storage-type'),
])
def test_damaged_files_are_checkpoint_errors(tmp_path, data):
    path = tmp_path / 'model.pt'
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match='truncated or not a PyTorch checkpoint'):
        read_checkpoint(path)


# Checkpoint dicts whose fields have the wrong type or range (found by test/fuzz: TypeError (a list
# as arch, a None state_dict), AttributeError, ValueError (0 classes)), refused before building.
@pytest.mark.parametrize('field, value, match', [
    ('state_dict', None, 'state_dict is not a dict of named tensors'),
    ('state_dict', {'logits.conv.weight': None}, 'state_dict is not a dict of named tensors'),
    ('num_classes', 0, 'num_classes must be an integer from 1 to 65535, got 0'),
    ('num_classes', True, 'num_classes must be an integer from 1 to 65535, got True'),
    ('num_classes', 10 ** 6, 'num_classes must be an integer from 1 to 65535'),
    ('arch', ['ldn121'], "needs arch \\['ldn121'\\]"),
    ('palette', 'red', 'palette is not K x 3 colours'),
    ('palette', [[300, 0, 0]] * 3, 'palette is not K x 3 colours'),
    ('palette', torch.zeros(2, 3), 'palette must be 3 x 3 colours, got shape \\(2, 3\\)'),
])
def test_fields_of_the_wrong_kind_are_checkpoint_errors(tmp_path, field, value, match):
    payload = {'format': FORMAT, 'arch': 'ladder_resnet18_half', 'num_classes': 3,
               'palette': torch.zeros(3, 3, dtype=torch.uint8), 'state_dict': {}, field: value}
    torch.save(payload, tmp_path / 'model.pt')
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / 'model.pt')


def test_a_checkpoint_without_a_palette_gets_the_default_one(tmp_path):
    model = build_model('ladder_resnet18_half', 3)
    torch.save({'format': FORMAT, 'arch': model.arch, 'num_classes': 3,
                'state_dict': model.state_dict()}, tmp_path / 'model.pt')
    _, meta = load_checkpoint(tmp_path / 'model.pt')
    assert meta['palette'].shape == (3, 3) and meta['palette'].dtype == np.uint8
