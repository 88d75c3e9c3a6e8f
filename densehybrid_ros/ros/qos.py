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


# The node's output publishers. Reliable keep-last 1 lost outputs for a slow subscriber: the
# next frame's sample replaced one not yet acknowledged (a viewer on all 14 outputs of two 720p
# cameras missed 1 overlay of 140 on the loaded test machine; issue 12: 6-11 of 12 frames at
# depth 1, 10-12 at 5). Depth 5 bounds the backlog a slow subscriber can hold per topic.
OUTPUT_DEPTH = 5
OUTPUT_QOS = keep_last(OUTPUT_DEPTH)
RESULT_QOS = keep_last(RESULT_DEPTH)         # tools subscribing to the node's outputs
