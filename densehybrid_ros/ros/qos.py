"""QoS profiles of the node's topics and of the tools that talk to it, in one place.

All are keep-last and volatile: images are only worth their newest sample, and a late joiner
must not get a stale one. Depths: the node keeps 1 (it only ever processes the newest frame);
tools that collect results keep a few more so a burst of outputs is not overwritten before
their executor runs.
"""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, qos_profile_sensor_data,
                       ReliabilityPolicy)

RESULT_DEPTH = 10          # replay --record/--wait-for: 7 outputs x 2 cameras arrive together


def keep_last(depth: int, reliable: bool = True) -> QoSProfile:
    """Volatile keep-last QoS of ``depth``, reliable or best effort."""
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


def input_qos(reliability: str) -> QoSProfile:
    """Return the node's camera QoS: depth 1; best_effort matches sensor-data publishers."""
    return keep_last(1, reliability != 'best_effort')


def camera_qos(reliable: bool) -> QoSProfile:
    """Return the QoS to publish camera images with: a driver's sensor-data QoS or reliable."""
    return keep_last(5) if reliable else qos_profile_sensor_data   # sensor data: best effort, 5


OUTPUT_QOS = keep_last(1)                    # the node's output publishers
RESULT_QOS = keep_last(RESULT_DEPTH)         # tools subscribing to the node's outputs
