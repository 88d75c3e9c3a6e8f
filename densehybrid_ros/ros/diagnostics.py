"""Per-camera counters and the diagnostic_msgs statuses built from them once a second."""

from collections import Counter
from dataclasses import dataclass, field
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
DIAGNOSTICS_PERIOD_S = 1.0        # the node publishes /diagnostics once a second


@dataclass
class CameraReport:
    """What happened on one camera since the previous report."""

    input_hz: float
    processed_hz: float
    received: int
    processed: int
    dropped: int
    missed: int
    bad: Dict[str, int]
    latency_ms_mean: float
    latency_ms_max: float
    silent_s: float
    bad_in_period: int = 0
    incompatible: Dict[str, int] = field(default_factory=dict)   # QoS policy -> publishers


class CameraStats:
    """Thread-safe counters for one camera: frames in, processed, dropped, bad, latency."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.received = self.processed = self.dropped = self.missed = 0
        self._last_sequence: Optional[int] = None
        self.bad: Counter = Counter()
        self.incompatible: Counter = Counter()
        self._latencies: List[float] = []
        start = clock()
        self._last_frame = start            # silence counts from activation until a frame
        self._last_report = (start, 0, 0, 0)

    def frame_received(self) -> None:
        """Count one message that arrived (good or bad)."""
        with self._lock:
            self.received += 1
            self._last_frame = self._clock()

    def sequence(self, number: Optional[int]) -> None:
        """Count gaps in the publisher's sequence numbers: frames that never reached us."""
        if number is None:
            return
        with self._lock:
            last, self._last_sequence = self._last_sequence, number
            if last is not None and number > last + 1:    # a restart or 2nd publisher: no gap
                self.missed += number - last - 1

    def frame_dropped(self) -> None:
        """Count one frame overwritten by a newer one before it was processed."""
        with self._lock:
            self.dropped += 1

    def bad_message(self, cause: str) -> None:
        """Count one message dropped because it could not be converted."""
        with self._lock:
            self.bad[cause] += 1

    def incompatible_qos(self, policy: str, publishers: int = 1) -> None:
        """Count publishers found whose offered QoS this subscription cannot match."""
        with self._lock:
            self.incompatible[policy] += publishers

    def frame_processed(self, latency_s: Optional[float]) -> None:
        """Count one published frame with its stamp-to-publish latency (None if unstamped)."""
        with self._lock:
            self.processed += 1
            if latency_s is not None:
                self._latencies.append(latency_s)

    def report(self) -> CameraReport:
        """Rates and latency since the previous call; totals since activation."""
        with self._lock:
            now = self._clock()
            then, received, processed, bad = self._last_report
            period = max(now - then, 1e-6)
            total_bad = sum(self.bad.values())
            lat = self._latencies
            self._latencies = []
            self._last_report = (now, self.received, self.processed, total_bad)
            return CameraReport(
                input_hz=(self.received - received) / period,
                processed_hz=(self.processed - processed) / period,
                received=self.received, processed=self.processed, dropped=self.dropped,
                missed=self.missed,
                bad=dict(self.bad), latency_ms_mean=1e3 * sum(lat) / len(lat) if lat else 0.0,
                latency_ms_max=1e3 * max(lat) if lat else 0.0,
                silent_s=now - self._last_frame, bad_in_period=total_bad - bad,
                incompatible=dict(self.incompatible))


def silence_cause(publishers: Optional[int], incompatible: Mapping[str, int]) -> str:
    """Say why a silent camera may be silent, from what the node's graph shows."""
    if incompatible:
        policies = ', '.join(sorted(incompatible))
        hint = ' (see input_reliability)' if 'RELIABILITY' in incompatible else ''
        return f'publishers whose QoS this subscription cannot match: {policies}{hint}'
    if publishers == 0:
        return 'no publisher of this topic found (camera running? topic name? ROS_DOMAIN_ID?)'
    if publishers:
        return f'{publishers} publisher(s) found, no frame delivered'
    return ''


def camera_status(name: str, topic: str, report: CameraReport, timeout_s: float,
                  outputs: Sequence[str], extra: Mapping[str, str] = {},
                  publishers: Optional[int] = None) -> DiagnosticStatus:
    """One camera's status: ERROR when silent past ``timeout_s``, WARN on bad messages.

    ``publishers`` (the graph's count for ``topic``) and the incompatible QoS of the report say
    in a silent camera's message what is likely wrong.
    """
    if report.silent_s > timeout_s:
        level, message = ERROR, f'no frame for {report.silent_s:.1f} s (timeout {timeout_s:g} s)'
        cause = silence_cause(publishers, report.incompatible)
        message += f'; {cause}' if cause else ''
    elif report.bad_in_period:
        level, message = WARN, f'{report.bad_in_period} bad messages in the last period'
    elif report.processed_hz == 0 and report.input_hz > 0 and not outputs:
        level, message = OK, 'receiving; no output has subscribers'
    else:
        level, message = OK, f'{report.processed_hz:.1f} Hz processed'
    values = {
        'topic': topic,
        'input_hz': f'{report.input_hz:.2f}',
        'processed_hz': f'{report.processed_hz:.2f}',
        'frames_received': str(report.received),
        'frames_processed': str(report.processed),
        'frames_dropped': str(report.dropped),
        'frames_missed': str(report.missed),
        'latency_ms_mean': f'{report.latency_ms_mean:.1f}',
        'latency_ms_max': f'{report.latency_ms_max:.1f}',
        'seconds_since_last_frame': f'{report.silent_s:.2f}',
        'bad_messages': str(sum(report.bad.values())),
        'outputs_subscribed': ','.join(outputs) or 'none',
        'incompatible_qos_publishers': str(sum(report.incompatible.values())),
    }
    if publishers is not None:
        values['publishers'] = str(publishers)
    values.update({f'incompatible_qos.{policy}': str(n)
                   for policy, n in sorted(report.incompatible.items())})
    values.update({f'bad_messages.{cause}': str(n) for cause, n in sorted(report.bad.items())})
    values.update(extra)
    return status(f'{name}: camera {topic}', level, message, values)


def status(name: str, level: int, message: str, values: Mapping[str, str],
           hardware_id: str = '') -> DiagnosticStatus:
    """Build a DiagnosticStatus from plain values."""
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def diagnostic_array(header: Header, statuses: Sequence[DiagnosticStatus]) -> DiagnosticArray:
    """Wrap statuses in the message published on /diagnostics."""
    return DiagnosticArray(header=header, status=list(statuses))


def values_of(msg: DiagnosticStatus) -> Dict[str, str]:
    """Return a status's KeyValue list as a dict (for tests and tools)."""
    return {kv.key: kv.value for kv in msg.values}
