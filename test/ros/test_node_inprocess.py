"""The node's transitions and run-time parameters in-process (real rclpy, no middleware peers)."""

import math

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('cv_bridge')
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from densehybrid_ros.ros.node import DenseHybridNode  # noqa: E402

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@pytest.fixture(scope='module')
def uncalibrated_checkpoint(tmp_path_factory):
    """A tiny checkpoint without a calibration block."""
    import torch

    from densehybrid_ros.models.checkpoint import save_checkpoint
    from densehybrid_ros.models import build_model
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp('uncal') / 'uncalibrated.pt'
    save_checkpoint(path, build_model('ladder_resnet18_half', 19), {})
    return path


@pytest.fixture
def node(ros_context):
    """An unconfigured node in this process."""
    n = DenseHybridNode('densehybrid_inprocess_test', context=ros_context,
                        cli_args=['--ros-args', '-p', 'backend:=torch'])
    yield n
    n.close()
    n.destroy_node()


def set_param(node, name, value):
    """Set one parameter locally; returns the SetParametersResult."""
    return node.set_parameters([Parameter(name, value=value)])[0]


def test_configure_threshold_cleanup_cycle(node, tiny_checkpoint):
    assert set_param(node, 'checkpoint', str(tiny_checkpoint)).successful
    assert set_param(node, 'inference_width', 64).successful
    assert set_param(node, 'device', 'cpu').successful
    assert node.trigger_configure() == SUCCESS
    calibrated = node._segmenter.threshold
    assert calibrated == pytest.approx(-2.0)              # from the checkpoint's calibration
    assert set_param(node, 'anomaly_threshold', 1.25).successful
    assert node._segmenter.threshold == 1.25
    assert set_param(node, 'anomaly_threshold', math.nan).successful
    assert node._segmenter.threshold == calibrated          # NaN: back to the calibrated value
    result = set_param(node, 'checkpoint', 'other.pt')
    assert not result.successful and 'clean up' in result.reason
    assert node.trigger_cleanup() == SUCCESS
    assert node._segmenter is None
    assert set_param(node, 'checkpoint', 'other.pt').successful


def test_bad_device_fails_configure_and_a_fix_recovers(node, tiny_checkpoint):
    set_param(node, 'checkpoint', str(tiny_checkpoint))
    assert set_param(node, 'device', 'cuda:7').successful    # well-formed; checked at configure
    assert node.trigger_configure() == FAILURE
    assert 'configure failed' in node._error and 'cuda:7' in node._error
    assert set_param(node, 'device', 'cpu').successful
    assert set_param(node, 'inference_width', 64).successful
    assert node.trigger_configure() == SUCCESS and node._error == ''


def test_uncalibrated_checkpoint_fixes_the_heatmap_range_once(node, uncalibrated_checkpoint):
    set_param(node, 'checkpoint', str(uncalibrated_checkpoint))
    set_param(node, 'device', 'cpu')
    set_param(node, 'inference_width', 64)
    assert node.trigger_configure() == SUCCESS
    assert math.isnan(node._segmenter.threshold)             # nothing flagged until set
    first = np.linspace(-5.0, 5.0, 1000, dtype=np.float32).reshape(10, 100)
    low, high = node._renderer.heatmap_range(first)
    assert low == pytest.approx(-4.9, abs=0.01) and high == pytest.approx(4.9, abs=0.01)
    assert node._renderer.heatmap_range(first * 10) == (low, high)   # never per-frame min-max
