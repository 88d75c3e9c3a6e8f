"""The output contract: names, needs, topic naming for N cameras, one renderer and range rule."""

import logging

import numpy as np
import pytest

from densehybrid_ros.core import outputs, visualize
from densehybrid_ros.core.classes import CITYSCAPES_PALETTE


def test_table_names_encodings_and_needs():
    assert list(outputs.OUTPUTS) == ['semantic', 'semantic_color', 'anomaly_score',
                                     'anomaly_heatmap', 'confidence', 'open_set',
                                     'anomaly_mask', 'overlay']
    assert outputs.OUTPUTS['anomaly_score'].encoding == '32FC1'
    assert outputs.OUTPUTS['confidence'].encoding == 'mono8'
    assert outputs.needs(['semantic_color', 'overlay']) == {'semantic', 'open_set'}
    assert outputs.needs(['anomaly_mask']) == {'anomaly_mask'}
    assert outputs.needs(outputs.OUTPUTS) == {'semantic', 'score', 'open_set', 'anomaly_mask'}
    with pytest.raises(ValueError, match="unknown outputs \\['nope'\\]"):
        outputs.needs(['nope'])


def test_one_camera_per_namespace_gets_ns_densehybrid():
    topics = outputs.output_topics(['/front/image_raw', '/rear/image_raw/compressed'])
    assert topics['/front/image_raw']['anomaly_score'] == '/front/densehybrid/anomaly_score'
    assert topics['/rear/image_raw/compressed']['overlay'] == '/rear/densehybrid/overlay'
    assert outputs.output_namespaces(['/image']) == ['/densehybrid']


def test_cameras_sharing_a_namespace_are_kept_apart():
    topics = outputs.output_topics(['/camera/left', '/camera/right/compressed', '/other/image'])
    assert topics['/camera/left']['semantic'] == '/camera/densehybrid/left/semantic'
    assert topics['/camera/right/compressed']['semantic'] == '/camera/densehybrid/right/semantic'
    assert topics['/other/image']['semantic'] == '/other/densehybrid/semantic'
    every = [t for per in topics.values() for t in per.values()]
    assert len(every) == len(set(every)) == 3 * len(outputs.OUTPUTS)


def _result(score):
    return {'semantic': np.array([[0, 13]], np.uint8), 'score': np.asarray(score, np.float32),
            'open_set': np.array([[0, 255]], np.uint8),
            'anomaly_mask': np.array([[False, True]])}


def test_calibrated_range_is_used_and_bad_ones_fall_back():
    assert outputs.calibrated_range({'score_p01': -6, 'score_p99': 1}) == (-6.0, 1.0)
    assert outputs.calibrated_range({'score_p01': 1.0, 'score_p99': 1.0}) is None
    assert outputs.calibrated_range({'threshold': 0.5}) is None
    assert outputs.calibrated_range(None) is None
    renderer = outputs.Renderer(CITYSCAPES_PALETTE, {'score_p01': -6.0, 'score_p99': 0.0})
    heat = renderer.render('anomaly_heatmap', None, _result([[-6.0, 0.0]]))
    assert np.array_equal(heat[0, 0], visualize.HEAT_LUT[0])
    assert np.array_equal(heat[0, 1], visualize.HEAT_LUT[255])


def test_uncalibrated_range_is_frozen_from_the_first_frame(caplog):
    renderer = outputs.Renderer(CITYSCAPES_PALETTE)
    first = np.linspace(0.0, 100.0, 101, dtype=np.float32).reshape(1, -1)
    first[0, 0] = np.inf                                  # non-finite pixels do not count
    with caplog.at_level(logging.WARNING, logger='densehybrid_ros.core.outputs'):
        renderer.render('anomaly_heatmap', None, {'score': first})
    low, high = renderer.score_range
    assert low == pytest.approx(1.99) and high == pytest.approx(99.01)
    assert 'no calibrated score range' in caplog.text
    later = renderer.render('anomaly_heatmap', None, {'score': np.full((1, 2), 200, np.float32)})
    assert renderer.score_range == (low, high)            # a later frame does not move it
    assert np.array_equal(later[0, 0], visualize.HEAT_LUT[255])
    flat = outputs.Renderer(CITYSCAPES_PALETTE)
    flat.render('anomaly_heatmap', None, {'score': np.full((2, 2), 3.0, np.float32)})
    assert flat.score_range == (3.0, 4.0)


def test_every_output_renders_with_its_encoding_shape():
    renderer = outputs.Renderer(CITYSCAPES_PALETTE, {'score_p01': -1.0, 'score_p99': 1.0},
                                alpha=1.0)
    rgb = np.zeros((1, 2, 3), np.uint8)
    drawn = renderer.render_all(list(outputs.OUTPUTS) + ['open_set_color'], rgb,
                                _result([[0.0, 0.5]]))
    kinds = {'mono8': (np.uint8, (1, 2)), 'rgb8': (np.uint8, (1, 2, 3)),
             '32FC1': (np.float32, (1, 2))}
    for name, spec in outputs.OUTPUTS.items():
        dtype, shape = kinds[spec.encoding]
        assert drawn[name].dtype == dtype and drawn[name].shape == shape, name
    assert drawn['anomaly_mask'].tolist() == [[0, 255]]
    assert tuple(drawn['overlay'][0, 1]) == visualize.UNKNOWN_COLOR    # alpha 1: colours only
    assert tuple(drawn['semantic_color'][0, 1]) == (0, 0, 142)
    assert np.array_equal(drawn['open_set_color'], drawn['overlay'])
    renderer.alpha = 0.0                                   # run-time change: camera only
    assert not renderer.render('overlay', rgb, _result([[0.0, 0.5]])).any()


def test_missing_map_and_unknown_output_are_named():
    renderer = outputs.Renderer(CITYSCAPES_PALETTE)
    with pytest.raises(ValueError, match="no 'open_set' map"):
        renderer.render('overlay', np.zeros((1, 2, 3), np.uint8), {'score': None})
    with pytest.raises(ValueError, match="unknown output 'bogus'"):
        renderer.render('bogus', None, {})


def test_confidence_is_the_score_over_the_fixed_range_as_a_byte():
    renderer = outputs.Renderer(np.zeros((19, 3), np.uint8),
                                {'score_p01': 0.0, 'score_p99': 2.0})
    score = np.array([[-1.0, 0.0, 1.0, 2.0, 3.0, np.nan]], np.float32)
    assert renderer.render('confidence', None, {'score': score}).tolist() == \
        [[0, 0, 127, 255, 255, 0]]
