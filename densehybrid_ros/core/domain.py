"""Does the model fit the camera? The image domain a checkpoint was trained on, and the warnings.

A model only knows the images it was trained on. The embedded default model saw nothing but
generated road scenes: it flags about 1 % of a generated scene at its calibrated threshold,
but 47 % to 76 % of the photographs that ship with matplotlib and scikit-learn (measured at
their own size). So the node warns at configure when a synthetic model runs, /diagnostics
says which domain the model is from (``model_domain``), and the node and densehybrid-segment
warn when more than a set fraction of a frame is flagged (default 20 %).

A checkpoint's domain is its ``train.domain`` (written by densehybrid-train since this module;
set it for other sources), else read from how it was trained: ``synthetic`` data is
synthetic, a data folder is real; anything else (an import, no record) is unknown.
"""

from typing import Any, Mapping, Optional

import numpy as np

SYNTHETIC, REAL, UNKNOWN = 'synthetic', 'real', 'unknown'
DOMAINS = (SYNTHETIC, REAL, UNKNOWN)
WARN_FRACTION = 0.2        # above 20 % flagged: far from any calibrated budget (1-5 %)
README_SECTION = "README, 'With a real camera'"


def training_domain(data: str) -> str:
    """Domain of a run on ``data`` (densehybrid-train's data argument): synthetic or real."""
    return SYNTHETIC if data == 'synthetic' else REAL


def model_domain(meta: Mapping[str, Any]) -> str:
    """Return the image domain a checkpoint's model was trained on: synthetic, real or unknown."""
    train = meta.get('train') or {}
    if train.get('domain') in DOMAINS:
        return train['domain']
    data = (train.get('args') or {}).get('data')
    if isinstance(data, str) and data:
        return training_domain(data)
    described = train.get('data')             # e.g. 'synthetic scenes 512x1024: train seeds ...'
    if isinstance(described, str) and described.startswith('synthetic'):
        return SYNTHETIC
    return UNKNOWN


def synthetic_model_warning(domain: str) -> Optional[str]:
    """Return the start-up warning for a model trained only on generated scenes, else None."""
    if domain != SYNTHETIC:
        return None
    return ('the model was trained only on synthetic road scenes: on real camera images it '
            'flags large areas as anomalous. Use weights trained on real driving images and '
            f'calibrate them on your camera ({README_SECTION})')


def flagged_fraction(result: Any, threshold: float, unknown_id: int = 255) -> Optional[float]:
    """Fraction of a Segmenter result's pixels above ``threshold``; None if it has no such map.

    Reads whichever of ``anomaly_mask``, ``score`` or ``open_set`` (``unknown_id`` marks the
    flagged pixels) the result carries.
    """
    if result.anomaly_mask is not None:
        return float(np.count_nonzero(result.anomaly_mask)) / result.anomaly_mask.size
    if result.score is not None:
        return float(np.count_nonzero(result.score > threshold)) / result.score.size
    if result.open_set is not None:
        return float(np.count_nonzero(result.open_set == unknown_id)) / result.open_set.size
    return None


def flagged_warning(fraction: float, limit: float, domain: str, where: str) -> Optional[str]:
    """Return the warning for ``fraction`` of ``where``'s pixels flagged above ``limit``, or None.

    ``limit`` 0 turns the warning off.
    """
    if limit <= 0 or not fraction > limit:
        return None
    trained = {SYNTHETIC: 'it was trained only on synthetic scenes',
               REAL: 'or the threshold is not calibrated for this camera'}.get(
                   domain, 'its training domain is unknown')
    return (f'{100 * fraction:.0f} % of the pixels of {where} are flagged anomalous (more than '
            f'{100 * limit:.0f} %): the model may not fit the images of this camera ({trained}; '
            f'see the {README_SECTION})')
