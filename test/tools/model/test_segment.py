"""densehybrid-segment: pictures drawn with the node's renderer and its one heatmap range rule."""

import cv2
import numpy as np
import pytest

from densehybrid_ros.core import visualize
from densehybrid_ros.models.checkpoint import save_checkpoint
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.deploy.segmenter import Segmenter
from densehybrid_ros.models import build_model
from densehybrid_ros.core.outputs import range_of
from densehybrid_ros.core.pictures import PICTURES
from densehybrid_ros.tools.model.segment import main
from fuzz.hostile import png_1bit, webp_8000


def test_uncalibrated_heatmaps_share_the_first_images_range(tmp_path, capsys) -> None:
    import torch
    torch.manual_seed(1)
    checkpoint = tmp_path / 'uncalibrated.pt'
    save_checkpoint(checkpoint, build_model('ladder_resnet18_half', 19), {})
    assert main(['--synthetic', '2', '--size', '64', '128', '--seed', '7', '--device', 'cpu',
                 '--backend', 'torch',
                 '--checkpoint', str(checkpoint), '--output', str(tmp_path / 'out')]) == 0
    assert "first image's 1st-99th percentiles" in capsys.readouterr().err
    seg = Segmenter(str(checkpoint), device='cpu')
    scores = [seg([make_scene(seed, (64, 128), anomaly_family='eval')['image']])[0].score
              for seed in (7, 8)]
    assert range_of(scores[0]) != range_of(scores[1])       # a per-image range would differ
    drawn = cv2.cvtColor(cv2.imread(str(tmp_path / 'out' / 'scene_8_anomaly_heatmap.png')),
                         cv2.COLOR_BGR2RGB)
    assert np.array_equal(drawn, visualize.heatmap(scores[1], range_of(scores[0])))


def test_same_named_images_from_two_folders_keep_both_results(tmp_path, tiny_checkpoint):
    """Issue 15: a/x.png and b/x.jpg once wrote to the same names; the first result was lost."""
    for folder, ext, seed in (('a', 'png', 1), ('b', 'jpg', 2)):
        (tmp_path / folder).mkdir()
        scene = make_scene(seed, (32, 64), anomaly_family='eval')['image']
        cv2.imwrite(str(tmp_path / folder / f'x.{ext}'), cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
    assert main([str(tmp_path / 'a' / 'x.png'), str(tmp_path / 'b' / 'x.jpg'), '--device', 'cpu',
                 '--backend', 'torch', '--checkpoint', str(tiny_checkpoint),
                 '--output', str(tmp_path / 'out')]) == 0
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == sorted(f'{stem}_{picture}.png' for stem in ('a_x', 'b_x')
                           for picture in PICTURES)
    first = cv2.imread(str(tmp_path / 'out' / 'a_x_image.png'))
    assert np.array_equal(first, cv2.imread(str(tmp_path / 'a' / 'x.png')))


def test_frames_limits_the_images_segmented(tmp_path, tiny_checkpoint):
    assert main(['--synthetic', '3', '--frames', '2', '--size', '32', '64', '--device', 'cpu',
                 '--backend', 'torch', '--checkpoint', str(tiny_checkpoint),
                 '--output', str(tmp_path / 'out')]) == 0
    stems = {p.name.split('_image.png')[0] for p in (tmp_path / 'out').glob('*_image.png')}
    assert stems == {'scene_1000', 'scene_1001'}


def test_an_image_over_the_pixel_budget_is_refused_from_its_header(tmp_path, tiny_checkpoint,
                                                                   capsys):
    """Issue 23 failure 2: a 94-byte 1-bit 30000 x 30000 PNG took segment to 22.7 GB."""
    (tmp_path / 'huge.png').write_bytes(png_1bit())
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.zeros((32, 64, 3), np.uint8))
    out = tmp_path / 'results' / 'out'
    argv = [str(good), str(tmp_path / 'huge.png'), '--device', 'cpu', '--backend', 'torch',
            '--checkpoint', str(tiny_checkpoint), '--output', str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('densehybrid-segment: error: ')
    assert 'huge.png' in err[0] and 'too_large' in err[0] and '900000000 pixels' in err[0]
    assert not (tmp_path / 'results').exists()
    assert main(argv + ['--max-pixels', '-1']) == 2
    assert '--max-pixels must be >= 0' in capsys.readouterr().err
    (tmp_path / 'x.webp').write_bytes(webp_8000())
    assert main([str(tmp_path / 'x.webp'), '--output', str(out)]) == 2
    assert 'unsupported_format' in capsys.readouterr().err


def test_the_budget_is_an_option(tmp_path, tiny_checkpoint):
    image = tmp_path / 'x.jpg'
    cv2.imwrite(str(image), np.zeros((32, 64, 3), np.uint8))
    args = [str(image), '--device', 'cpu', '--backend', 'torch', '--checkpoint',
            str(tiny_checkpoint)]
    assert main(args + ['--max-pixels', str(32 * 64 - 1), '--output', str(tmp_path / 'a')]) == 2
    assert main(args + ['--max-pixels', str(32 * 64), '--output', str(tmp_path / 'b')]) == 0
    assert (tmp_path / 'b' / 'x_image.png').is_file() and not (tmp_path / 'a').exists()


@pytest.fixture(scope='module')
def onnx_64x96(tiny_checkpoint, tmp_path_factory):
    """An ONNX Runtime artifact of the tiny checkpoint for 64 x 96 only."""
    pytest.importorskip('onnxruntime')
    from densehybrid_ros.deploy.artifacts import export_checkpoint
    out = tmp_path_factory.mktemp('artifact') / 'onnx'
    export_checkpoint(tiny_checkpoint, 'onnx', (64, 96), out)
    return out


def test_a_failure_after_some_images_leaves_the_earlier_output_as_it_was(
        tmp_path, capsys, tiny_checkpoint, onnx_64x96):
    """Issue 23 failures 2 and 7: pictures went straight into --output; a 22-line traceback."""
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'earlier_image.png').write_text('earlier run')
    for name, size in (('fits', (64, 96)), ('other', (48, 80))):
        cv2.imwrite(str(tmp_path / f'{name}.png'), np.zeros(size + (3,), np.uint8))
    assert main([str(tmp_path / 'fits.png'), str(tmp_path / 'other.png'), '--device', 'cpu',
                 '--checkpoint', str(tiny_checkpoint), '--backend', 'onnxruntime',
                 '--artifacts', str(onnx_64x96), '--output', str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and 'no onnxruntime artifact for inference size 48x80' in err[0], err
    assert [p.name for p in out.iterdir()] == ['earlier_image.png']       # fits_* not moved in
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fits.png', 'other.png', 'out']


def test_int8_without_an_artifact_is_one_line_and_no_output_folder(tmp_path, capsys,
                                                                   tiny_checkpoint):
    pytest.importorskip('openvino')
    image = tmp_path / 'x.png'
    cv2.imwrite(str(image), np.zeros((32, 64, 3), np.uint8))
    assert main([str(image), '--device', 'cpu', '--checkpoint', str(tiny_checkpoint),
                 '--backend', 'openvino', '--precision', 'int8',
                 '--output', str(tmp_path / 'new' / 'out')]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and 'int8 is not exported lazily' in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['x.png']
