"""Result pictures: one naming rule, and stems that keep same-named inputs apart."""

import cv2
import numpy as np
import pytest

from densehybrid_ros.core.pictures import picture_path, PICTURES, unique_stems, write_pictures


@pytest.mark.parametrize('paths, stems', [
    (['a/x.png', 'b/x.jpg'], ['a_x', 'b_x']),
    (['x.png', 'x.jpg'], ['x_png', 'x_jpg']),
    (['x.png', 'x.png'], ['x_png_0', 'x_png_1']),
    (['/d/a/x.png', '/e/a/x.png', 'y.png'], ['d_a_x', 'e_a_x', 'y']),
    (['frame.png'], ['frame']),
])
def test_unique_stems_tell_inputs_apart(paths, stems) -> None:
    assert unique_stems(paths) == stems


def test_pictures_are_written_as_rgb_under_one_name_each(tmp_path) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200                                                   # red
    written = write_pictures(tmp_path, '000007', {'overlay': rgb, 'image': rgb, 'other': rgb})
    assert written == [picture_path(tmp_path, '000007', p) for p in ('image', 'overlay')]
    assert [p.name for p in written] == ['000007_image.png', '000007_overlay.png']
    assert np.array_equal(cv2.imread(str(written[0]))[..., ::-1], rgb)
    with pytest.raises(ValueError, match='unknown picture'):
        picture_path(tmp_path, 'x', 'heatmap')
    assert 'anomaly_heatmap' in PICTURES
