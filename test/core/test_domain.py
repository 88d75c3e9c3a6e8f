"""A checkpoint's image domain, and the warnings when the model may not fit the camera."""

from types import SimpleNamespace

import numpy as np

from densehybrid_ros.core.domain import (flagged_fraction, flagged_warning, model_domain, REAL,
                                         SYNTHETIC, synthetic_model_warning, UNKNOWN,
                                         WARN_FRACTION)
from densehybrid_ros.core.paths import default_checkpoint


def test_the_embedded_model_is_synthetic_from_its_training_record():
    import torch
    meta = torch.load(default_checkpoint(), map_location='cpu', weights_only=True)
    assert meta['train']['domain'] == SYNTHETIC   # recorded by densehybrid-train (stage 11 on)
    assert model_domain(meta) == SYNTHETIC


def test_domain_from_the_record_the_run_and_nothing():
    assert model_domain({'train': {'domain': REAL, 'args': {'data': 'synthetic'}}}) == REAL
    assert model_domain({'train': {'args': {'data': '/data/cityscapes'}}}) == REAL
    assert model_domain({'train': {'args': {'data': 'synthetic'}}}) == SYNTHETIC
    assert model_domain({'train': {'data': 'synthetic scenes 256x512: seeds 0..9'}}) == SYNTHETIC
    assert model_domain({'train': {'imported_from': 'best.pt'}}) == UNKNOWN   # densehybrid-import
    assert model_domain({'train': {'domain': 'mars'}}) == UNKNOWN
    assert model_domain({}) == UNKNOWN


def result(**maps):
    """A Segmenter result with only ``maps`` computed."""
    fields = dict.fromkeys(('semantic', 'score', 'open_set', 'anomaly_mask'))
    return SimpleNamespace(**{**fields, **maps})


def test_flagged_fraction_reads_whichever_map_the_result_has():
    score = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    assert flagged_fraction(result(anomaly_mask=score > 0.5), 2.5) == 0.75     # the mask wins
    assert flagged_fraction(result(score=score), 2.5) == 0.25
    open_set = np.array([[255, 0], [255, 255]], np.uint8)
    assert flagged_fraction(result(open_set=open_set), 0.0) == 0.75
    assert flagged_fraction(result(semantic=open_set), 0.0) is None


def test_flagged_warning_above_the_limit_only_and_says_why():
    assert flagged_warning(WARN_FRACTION, WARN_FRACTION, SYNTHETIC, 'x') is None
    assert flagged_warning(0.9, 0.0, SYNTHETIC, 'x') is None                # 0 = off
    text = flagged_warning(0.594, WARN_FRACTION, SYNTHETIC, 'china')
    assert text.startswith('59 % of the pixels of china are flagged anomalous (more than 20 %)')
    assert 'synthetic' in text and 'With a real camera' in text and '\n' not in text
    assert 'calibrated' in flagged_warning(0.3, 0.2, REAL, 'x')
    assert 'unknown' in flagged_warning(0.3, 0.2, UNKNOWN, 'x')


def test_only_a_synthetic_model_gets_the_start_warning():
    assert 'synthetic' in synthetic_model_warning(SYNTHETIC)
    assert synthetic_model_warning(REAL) is None and synthetic_model_warning(UNKNOWN) is None
