"""densehybrid-segment: pictures drawn with the node's renderer and its one heatmap range rule."""

import cv2
import numpy as np

from densehybrid_ros import visualize
from densehybrid_ros.checkpoint import save_checkpoint
from densehybrid_ros.data.synthetic import make_scene
from densehybrid_ros.inference import Segmenter
from densehybrid_ros.models import build_model
from densehybrid_ros.outputs import range_of
from densehybrid_ros.pictures import PICTURES
from densehybrid_ros.tools.segment_images import main


def test_uncalibrated_heatmaps_share_the_first_images_range(tmp_path, capsys) -> None:
    import torch
    torch.manual_seed(1)
    checkpoint = tmp_path / 'uncalibrated.pt'
    save_checkpoint(checkpoint, build_model('ladder_resnet18_half', 19), {})
    assert main(['--synthetic', '2', '--size', '64', '128', '--seed', '7', '--device', 'cpu',
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
                 '--checkpoint', str(tiny_checkpoint), '--output', str(tmp_path / 'out')]) == 0
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == sorted(f'{stem}_{picture}.png' for stem in ('a_x', 'b_x')
                           for picture in PICTURES)
    first = cv2.imread(str(tmp_path / 'out' / 'a_x_image.png'))
    assert np.array_equal(first, cv2.imread(str(tmp_path / 'a' / 'x.png')))


def test_frames_limits_the_images_segmented(tmp_path, tiny_checkpoint):
    assert main(['--synthetic', '3', '--frames', '2', '--size', '32', '64', '--device', 'cpu',
                 '--checkpoint', str(tiny_checkpoint), '--output', str(tmp_path / 'out')]) == 0
    stems = {p.name.split('_image.png')[0] for p in (tmp_path / 'out').glob('*_image.png')}
    assert stems == {'scene_1000', 'scene_1001'}
