"""Calibration frames from an image folder: the one decoder, its pixel budget and formats."""

import cv2
import numpy as np
import pytest

from densehybrid_ros.deploy.quantize import calibration_frames
from densehybrid_ros.deploy.runtimes import ExportError
from fuzz.hostile import png_1bit, webp_8000


def test_folder_frames_are_read_by_the_one_decoder(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / 'b.bmp'), rgb)                  # not a calibration image
    (frame,) = calibration_frames(tmp_path)
    np.testing.assert_array_equal(frame.image, rgb)


@pytest.mark.parametrize('data, cause', [(png_1bit(), 'too_large'),
                                         (webp_8000(), 'unsupported_format')],
                         ids=['png_30000x30000', 'webp_8000x8000'])
def test_hostile_calibration_images_are_refused_before_decoding(tmp_path, data, cause):
    """Issue 23: calibration frames had no pixel budget (cv2.imread of any format)."""
    (tmp_path / 'frame.png').write_bytes(data)
    with pytest.raises(ExportError, match=rf'frame.png refused \({cause}\)'):
        calibration_frames(tmp_path)
