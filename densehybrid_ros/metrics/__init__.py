"""Evaluation maths: streaming pixel metrics, calibration, open-set confusion, components.

Modules: ``anomaly`` (AP, AUROC, FPR95 over binned scores), ``score_bins`` (the bins),
``calibration`` (the one threshold rule), ``confusion`` (open-set IoU), ``evaluation`` (one
run's accumulator). Pure numpy: no torch, no ROS.
"""

from .anomaly import AnomalyMetrics, fpr_at_tpr, load_state, save_state, ScoreHistogram
from .calibration import calibrate, calibrate_counts, calibration_rule
from .components import component_metrics, ComponentMetrics, scaled_min_sizes
from .confusion import OpenSetConfusion
from .evaluation import Evaluation

__all__ = ['AnomalyMetrics', 'ComponentMetrics', 'Evaluation', 'OpenSetConfusion',
           'ScoreHistogram', 'calibrate', 'calibrate_counts', 'calibration_rule',
           'component_metrics', 'fpr_at_tpr', 'load_state', 'save_state', 'scaled_min_sizes']
