"""Console script ``densehybrid-node``: start the lifecycle node, forward the core's logging.

Kept apart from node.py so the node class holds only the node: this module owns the process
(argument parsing, the Fast DDS profile from transport.py, rclpy init/shutdown, signals).
"""

import argparse
import logging
import sys
from typing import Any, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException

from .node import DenseHybridNode, one_line
from ..transport import transport_warning, use_large_data

EPILOG = '''examples:
  densehybrid-node --autostart --ros-args -r image:=/camera/image_raw
  densehybrid-node --autostart --ros-args --params-file config/densehybrid.yaml \\
      -p input_topics:=[/front/image_raw,/left/image_raw] -p device:=cuda
without --autostart, drive it with lifecycle transitions
(densehybrid-ctl lifecycle /densehybrid configure, or ros2 lifecycle set where ros2cli exists).'''


class RosLogHandler(logging.Handler):
    """Forward the core's Python logging (densehybrid_ros.*) to the node's ROS logger."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` at the matching ROS level."""
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``densehybrid-node [--autostart] [--ros-args ...]``."""
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog='densehybrid-node', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='DenseHybrid lifecycle node: camera images in; semantic, anomaly-score and '
                    'open-set images out.', epilog=EPILOG)
    parser.add_argument('--autostart', action='store_true',
                        help='configure and activate at start (no lifecycle manager needed)')
    opts = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    use_large_data()      # the package's Fast DDS profile, before the participant exists
    rclpy.init(args=argv)
    node = None
    handler = None
    try:
        node = DenseHybridNode()
        warning = transport_warning()
        if warning:           # once, at start: large frames will not arrive as configured
            node.get_logger().warning(f'transport: {warning}')
        handler = RosLogHandler(node.get_logger())
        core_log = logging.getLogger('densehybrid_ros')
        core_log.addHandler(handler)
        core_log.setLevel(logging.INFO)
        core_log.propagate = False
        if opts.autostart:
            node.autostart()       # on failure the node stays up, unconfigured, inspectable
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # e.g. the rcl layer refusing the arguments
        if rclpy.ok():         # otherwise a signal shut the context down mid-transition
            print(f'densehybrid-node: {one_line(exc)}', file=sys.stderr)
            return 1
    finally:
        if handler is not None:
            logging.getLogger('densehybrid_ros').removeHandler(handler)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
