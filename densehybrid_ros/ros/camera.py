"""One camera input of the node: its subscription, output publishers, pending frame, counters.

The image outputs (``core.outputs.OUTPUTS``, raw and optionally ``/compressed``) are published
here; the object and 3-D outputs of the camera are its ``obstacles``
(``obstacle_outputs.ObstacleOutputs``).
"""

from typing import Any, Dict, List, Optional, Union

from diagnostic_msgs.msg import DiagnosticStatus
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .conversions import numpy_to_image, output_to_compressed
from .diagnostics import camera_status, CameraStats, silence_cause
from .obstacle_outputs import ObstacleOutputs
from .pacing import FramePeriod

ImageMsg = Union[Image, CompressedImage]


class Camera:
    """One input: its subscription, output publishers, newest pending frame and counters."""

    def __init__(self, topic: str, out_ns: str) -> None:
        self.topic, self.out_ns = topic, out_ns
        self.stats = CameraStats()
        self.pending: Optional[ImageMsg] = None     # newest frame not yet taken
        self.arrival = 0.0                           # monotonic arrival time of ``pending``
        self.period = FramePeriod()
        self.publishers: Dict[str, Any] = {}
        self.compressed: Dict[str, Any] = {}       # <output>/compressed (compressed_outputs)
        self.subscription: Any = None
        self.obstacles: Optional[ObstacleOutputs] = None
        self.silence_logged = False                 # its silence past the timeout was logged

    def wanted(self, publish_all: bool) -> List[str]:
        """List the image outputs to compute now: subscribed ones, or all with ``publish_all``."""
        return [name for name, pub in self.publishers.items()
                if publish_all or pub.get_subscription_count() > 0
                or (name in self.compressed and self.compressed[name].get_subscription_count())]

    def wanted_objects(self, publish_all: bool) -> List[str]:
        """List the object and 3-D outputs with subscribers (all with ``publish_all``)."""
        return self.obstacles.wanted(publish_all) if self.obstacles is not None else []

    def diagnose(self, node_name: str, timeout_s: float, publish_all: bool,
                 publishers: Optional[int], active: bool, logger: Any) -> DiagnosticStatus:
        """Return this period's status; log a silence past the timeout once, and its end.

        Only while ``active``: an inactive node expects no frame.
        """
        report = self.stats.report()                # once per period: it takes the rates
        silent = active and report.silent_s > timeout_s
        if silent and not self.silence_logged:
            cause = silence_cause(publishers, report.incompatible)
            logger.warning(f'no frame on {self.topic} for {report.silent_s:.1f} s '
                           f'(camera_timeout {timeout_s:g} s)' + (f': {cause}' if cause else ''))
        elif active and self.silence_logged and not silent:
            logger.info(f'receiving frames on {self.topic}')
        self.silence_logged = silent
        return camera_status(node_name, self.topic, report, timeout_s,
                             self.wanted(publish_all) + self.wanted_objects(publish_all),
                             self.obstacles.report() if self.obstacles is not None else {},
                             publishers)

    def publish(self, name: str, image: np.ndarray, encoding: str, header: Header,
                publish_all: bool) -> None:
        """Publish one rendered output raw and/or compressed, to whoever listens."""
        raw, packed = self.publishers[name], self.compressed.get(name)
        if publish_all or raw.get_subscription_count():
            raw.publish(numpy_to_image(image, encoding, header))
        if packed is not None and (publish_all or packed.get_subscription_count()):
            packed.publish(output_to_compressed(image, encoding, header))
