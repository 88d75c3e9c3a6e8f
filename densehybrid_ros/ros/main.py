"""Console script ``densehybrid-node``: start the lifecycle node, forward the core's logging.

Kept apart from node.py so the node class holds only the node: this module owns the process
(argument parsing, the Fast DDS profile from transport.py, rclpy init/shutdown, signals).

Signals: a terminal's Ctrl-C reaches every process of its group and ``ros2 launch`` forwards
its own SIGINT too, so the node gets two, tens to hundreds of ms apart. With rclpy's handlers
that went wrong three ways: rclpy shut the context down from its signal thread while the inference
thread was inside torch or publishing; the second signal raised KeyboardInterrupt wherever
``close()`` was (``worker.join``, ``gc.collect``: a traceback, exit 1; rclpy never shut down
and a C++ thread was still running at exit: "terminate called without an active exception",
SIGABRT, exit -6, measured with the two 50 ms apart); or it
arrived during interpreter exit, after Python had reset the handler, and killed the process
(exit -2). So rclpy installs none here (``SignalHandlerOptions.NO``) and :class:`StopSignals`
handles SIGINT and SIGTERM: the first one stops the node, every later one is ignored, and the
shutdown (the frame in progress finishes, then everything is released) is never interrupted.
"""

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from .middleware import close_middleware
from .node import DenseHybridNode, one_line
from ..core.transport import transport_warning, use_large_data

EPILOG = '''examples:
  densehybrid-node --autostart --ros-args -r image:=/camera/image_raw
  densehybrid-node --autostart --ros-args --params-file config/densehybrid.yaml \\
      -p input_topics:=[/front/image_raw,/left/image_raw] -p device:=cuda
without --autostart, drive it with lifecycle transitions
(densehybrid-ctl lifecycle /densehybrid configure, or ros2 lifecycle set where ros2cli exists).'''


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.1     # spin in steps this long: a signal stops an idle node within 0.1 s


class StopSignals:
    """SIGINT / SIGTERM: the first one stops the process, later ones are ignored.

    Before :meth:`spinning` (start-up, ``--autostart``'s configure) the first signal raises
    KeyboardInterrupt, so a long model load is abandoned at once; while spinning it only sets
    :attr:`received`, so the executor is never interrupted inside a callback or a lock (a
    configure that a lifecycle manager requested finishes first, then the node stops).
    """

    def __init__(self) -> None:
        self.received: Optional[int] = None       # the first signal's number
        self._interrupt = True
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:
            return                # the second of a terminal's and launch's pair: already stopping
        self.received = signum
        if self._interrupt:
            raise KeyboardInterrupt

    def spinning(self) -> None:
        """From now on the first signal only sets :attr:`received` (checked every POLL_S)."""
        self._interrupt = False

    def ignore(self) -> None:
        """Ignore both signals for good (the process is exiting).

        Python resets its own handlers to the default action while it finalises, and the
        default action of a late second signal is to kill the process; an ignored signal
        stays ignored.
        """
        self._interrupt = False
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


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
    try:
        own_args = rclpy.utilities.remove_ros_args(argv)[1:]
    except Exception as exc:  # rcl refuses the --ros-args part (UnknownROSArgsError, ...)
        print(f'densehybrid-node: error: {one_line(exc)}', file=sys.stderr)
        return 2
    opts = parser.parse_args(own_args)
    use_large_data()      # the package's Fast DDS profile, before the participant exists
    signals = StopSignals()
    node = handler = executor = None
    try:
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
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
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        signals.spinning()
        while signals.received is None and rclpy.ok():
            executor.spin_once(timeout_sec=POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # e.g. the rcl layer refusing the arguments
        if signals.received is None:    # otherwise a signal cut a transition short
            print(f'densehybrid-node: {one_line(exc)}', file=sys.stderr)
            return 1
    finally:
        signals.spinning()        # a first signal from here on must not cut the shutdown short
        if handler is not None:
            logging.getLogger('densehybrid_ros').removeHandler(handler)
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.close()          # waits for the frame in progress, then stops the worker
        close_middleware(node)
        signals.ignore()
    return 0


if __name__ == '__main__':
    sys.exit(main())
