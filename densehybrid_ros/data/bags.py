"""Read rosbag2 files of camera images and label maps with ``rosbags`` (no ROS needed).

* :class:`BagReader` opens a rosbag2 (folder with metadata.yaml, or a single .mcap / .db3 file),
  finds topics by name with helpful errors, and yields :class:`Frame` objects: messages of
  several topics joined by their header stamp.
* :func:`image_to_array` decodes Image / CompressedImage messages to numpy arrays, a thin
  rosbags adapter over ``images`` (the decoder the node uses too).
* The vocabulary every bag tool shares: message type names, the label / sequence topic names,
  header stamps of messages and of serialized CDR data, the typestore, :class:`BagError`.

Corrupt or truncated bags, undecodable messages, and missing topics raise :class:`BagError`
with the path and a one-line cause. Writing bags is ``bag_writer``.
"""
from dataclasses import dataclass, field
import heapq
import json
from pathlib import Path
import sqlite3
import struct
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core.images import (decode_compressed, decode_compressed_map, decode_depth, decode_map,
                           decode_rgb, DEPTH_ENCODINGS, ImageError)

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
STRING_TYPE = 'std_msgs/msg/String'
CAMERA_ROLES = ('image',)      # roles of BagReader.frames decoded as camera images (RGB)
PathLike = Union[str, Path]
# Last name parts of label-map topics, never cameras: semantic train ids, anomaly 0/1/255 maps.
LABEL_NAMES = ('semantic_label', 'label', 'labels', 'semantic_labels', 'gt')
ANOMALY_NAMES = ('anomaly_label', 'anomaly_labels', 'anomaly_gt', 'ood_label')
RESULTS_PART = '/densehybrid/'        # the node's outputs live under <ns>/densehybrid/
# Sequence ground truth next to the camera (make-bag --sequence): role -> last name part.
SEQUENCE_NAMES = {'instances': 'anomaly_instances', 'depth': 'depth',
                  'camera_info': 'camera_info', 'truth': 'ground_truth'}
WIDE_ROLES = ('instances', 'depth')   # frames() roles read as maps that may be 16-bit or float


class BagError(ValueError):
    """A bag that cannot be used as asked; the message says why."""


def typestore() -> Any:
    """Return the ROS 2 Jazzy typestore of rosbags (built on first use: rosbags imports lazily)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import get_typestore, Stores
        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


_TYPESTORE = None


def stamp_ns(msg: Any) -> int:
    """Header stamp of a message in nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def cdr_stamp(raw: bytes) -> int:
    """Header stamp (ns) of a serialized message whose first field is std_msgs/Header."""
    if len(raw) < 12:
        raise ValueError(f'message of {len(raw)} bytes is too short for a header')
    sec, nanosec = struct.unpack_from(_cdr_order(raw) + 'iI', raw, 4)
    return sec * 1_000_000_000 + nanosec


def set_cdr_stamp(raw: bytearray, stamp: int) -> bytes:
    """Write ``stamp`` (ns) into the header of a serialized message; return the bytes."""
    struct.pack_into(_cdr_order(raw) + 'iI', raw, 4, stamp // 1_000_000_000,
                     stamp % 1_000_000_000)
    return bytes(raw)


def _cdr_order(raw: bytes) -> str:
    """Byte order of a CDR payload: bit 0 of its 4-byte encapsulation header (1 = little)."""
    return '<' if raw[1] & 1 else '>'


# --------------------------------------------------------------------------- conversions
def image_to_array(msg: Any, what: str = 'image', camera: bool = False,
                   wide: bool = False) -> np.ndarray:
    """Decode an Image / CompressedImage: a ``camera`` -> H x W x 3 RGB, else a label/output map.

    Cameras accept what the node accepts (``images.CAMERA_ENCODINGS``); maps come back with
    their own dtype (``MAP_ENCODINGS``, ``wide`` adds ``DEPTH_ENCODINGS``); BagError names what.
    """
    try:
        if hasattr(msg, 'format'):                                   # CompressedImage
            decode = decode_compressed if camera else decode_compressed_map
            return decode(msg.data, str(msg.format))
        shape = (str(msg.encoding), int(msg.height), int(msg.width), int(msg.step), msg.data)
        if camera:
            return decode_rgb(*shape)
        decode = decode_depth if wide and shape[0] in DEPTH_ENCODINGS else decode_map
        return decode(*shape, bool(msg.is_bigendian))
    except ImageError as exc:
        raise BagError(f'{what}: {exc.cause}: {exc}') from None


# ------------------------------------------------------------------------------- reading
# What the readers raise on a corrupt file. Found by test/fuzz (regression tests in
# test/data/test_bags.py): an mcap record's 8-byte length gone wild makes rosbags read that many
# bytes, MemoryError (2**62) or OverflowError (2**64 - 1), at once and without touching memory;
# an mcap cut after its magic gives ord(b'') (TypeError); a damaged .db3 page gives apsw.Error
# (rosbags reads sqlite3 through apsw: added where rosbags is imported).
_READ_ERRORS: Tuple[type, ...] = (sqlite3.Error, struct.error, EOFError, OSError, KeyError,
                                  IndexError, ValueError, AssertionError, AttributeError,
                                  OverflowError, MemoryError, TypeError)


@dataclass
class Frame:
    """Messages of several topics with one header stamp, decoded to arrays by role."""

    index: int                       # order of the key-topic message in the bag
    stamp: int                       # header stamp, ns
    frame_id: str = ''
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)
    raw: Dict[str, Tuple[str, bytes]] = field(default_factory=dict)   # role -> (type, cdr)
    data: Dict[str, Any] = field(default_factory=dict)   # CameraInfo message, parsed JSON


class BagReader:
    """A rosbag2 opened for reading (use as a context manager)."""

    def __init__(self, path: PathLike) -> None:
        from apsw import Error as SqliteError          # rosbags' sqlite3 storage needs apsw
        from rosbags.rosbag2 import Reader, ReaderError
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'bag not found: {self.path}')
        lone = sorted(self.path.glob('*.mcap')) if self.path.is_dir() else []
        if len(lone) == 1 and not (self.path / 'metadata.yaml').exists():
            self.path = lone[0]       # a recorder wrote the .mcap without metadata.yaml
        self._errors = _READ_ERRORS + (ReaderError, SqliteError)
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except self._errors as exc:
            raise BagError(f'cannot open {self.path} as a rosbag2 (corrupt, truncated or not '
                           f'a bag): {_one_line(exc)}') from None
        self.topics: Dict[str, Tuple[str, int]] = {
            name: (info.msgtype or '?', int(info.msgcount))
            for name, info in self._reader.topics.items()}

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying reader."""
        if self._reader.is_open:
            self._reader.close()

    def describe(self) -> str:
        """One line per topic: name, type, message count."""
        return '; '.join(f'{t} [{m}, {n} msgs]' for t, (m, n) in sorted(self.topics.items()))

    def topic(self, name: str, types: Sequence[str] = IMAGE_TYPES, role: str = 'image') -> str:
        """Resolve a topic by exact name or unique suffix; errors list the bag's topics."""
        matches = [t for t in self.topics if t == name]
        if not matches:
            suffix = '/' + name.strip('/')
            matches = [t for t in self.topics if t.endswith(suffix)]
        if len(matches) != 1:
            what = 'is not in' if not matches else f'matches {len(matches)} topics in'
            raise BagError(f'{role} topic {name!r} {what} {self.path}; topics: '
                           f'{self.describe() or "none"}')
        msgtype = self.topics[matches[0]][0]
        if msgtype not in types:
            raise BagError(f'{role} topic {matches[0]!r} has type {msgtype}, expected '
                           f'{" or ".join(types)}')
        return matches[0]

    def find(self, suffixes: Sequence[str], exclude: Sequence[str] = ()) -> Optional[str]:
        """Return the single image topic whose last name part is one of ``suffixes`` (or None)."""
        found = [t for t, (m, _) in self.topics.items() if m in IMAGE_TYPES
                 and t.rsplit('/', 1)[-1] in suffixes and not any(x in t for x in exclude)]
        return found[0] if len(found) == 1 else None

    def image_topics(self, exclude: Sequence[str] = ()) -> List[str]:
        """All Image / CompressedImage topics, minus those containing an ``exclude`` part."""
        return sorted(t for t, (m, _) in self.topics.items()
                      if m in IMAGE_TYPES and not any(x in t for x in exclude))

    def camera_topics(self) -> List[str]:
        """Image topics that are cameras: neither node results, label maps nor depth images."""
        maps = LABEL_NAMES + ANOMALY_NAMES + tuple(SEQUENCE_NAMES.values())
        return [t for t in self.image_topics(exclude=(RESULTS_PART,))
                if t.rsplit('/', 1)[-1] not in maps]

    def label_topics(self) -> List[str]:
        """Image topics that are label maps (semantic, anomaly, instance ids), not node results."""
        names = LABEL_NAMES + ANOMALY_NAMES + (SEQUENCE_NAMES['instances'],)
        return [t for t in self.image_topics(exclude=(RESULTS_PART,))
                if t.rsplit('/', 1)[-1] in names]

    def sequence_roles(self, ns: str) -> Dict[str, str]:
        """Ground-truth roles (:data:`SEQUENCE_NAMES`) next to the camera ``ns``: role -> topic."""
        return {role: f'{ns}/{name}' for role, name in SEQUENCE_NAMES.items()
                if f'{ns}/{name}' in self.topics}

    def label_topic(self, ns: str, names: Sequence[str]) -> Optional[str]:
        """Label topic next to the camera (``<ns>/<name>``), else the bag's only one."""
        for name in names:
            if self.topics.get(f'{ns}/{name}', ('',))[0] in IMAGE_TYPES:
                return f'{ns}/{name}'
        return self.find(names, exclude=(RESULTS_PART,))

    def messages(self, topics: Sequence[str]) -> Iterator[Tuple[str, str, int, bytes]]:
        """Raw messages of ``topics`` in log-time order: (topic, type, log time ns, cdr)."""
        conns = [c for c in self._reader.connections if c.topic in topics]
        it = self._reader.messages(connections=conns)
        count = 0
        while True:
            try:
                conn, log_time, raw = next(it)
            except StopIteration:
                if count == 0 and any(self.topics[c.topic][1] for c in conns):
                    raise BagError(self._unmatched(conns)) from None
                return
            except self._errors as exc:
                raise BagError(f'{self.path} is corrupt or truncated after {count} messages: '
                               f'{_one_line(exc)}') from None
            count += 1
            yield conn.topic, conn.msgtype, int(log_time), raw

    def _unmatched(self, conns: Sequence[Any]) -> str:
        """Explain why a bag whose metadata counts messages yields none."""
        listed = ', '.join(f'{c.topic} ({self.topics[c.topic][1]})' for c in conns)
        return (f'{self.path}: metadata.yaml lists messages on {listed} but none matched the '
                'storage file: its channels (offered_qos_profiles or type) disagree with '
                'metadata.yaml; fix metadata.yaml, or open the .mcap file itself')

    def decode(self, raw: bytes, msgtype: str, where: str) -> Any:
        """Deserialize CDR data, with a clear error for broken messages."""
        try:
            return typestore().deserialize_cdr(raw, msgtype)
        except Exception as exc:   # the CDR decoder raises many types on garbage
            raise BagError(f'{self.path}: {where} cannot be decoded as {msgtype}: '
                           f'{_one_line(exc)}') from None

    def frames(self, roles: Dict[str, str], key: str = 'image',
               select: Optional[Callable[[int], bool]] = None, max_pending: int = 32,
               keep_raw: Sequence[str] = (), partial: bool = True,
               stats: Optional[Dict[str, int]] = None) -> Iterator[Frame]:
        """Join messages of ``roles`` (role -> topic) by header stamp into :class:`Frame` objects.

        Frames are numbered by the order of their ``key``-role message; ``select(index)``
        skips frames without decoding them. A frame is yielded when every role arrived; with
        ``partial``, frames whose other roles never come (evicted after ``max_pending`` newer
        stamps, or at the end) are yielded with what they have. ``stats`` counts
        ``unmatched`` messages and ``partial`` frames. Roles in ``keep_raw`` also keep their
        CDR bytes. The ``image`` role (:data:`CAMERA_ROLES`) is decoded as a camera (H x W x 3
        RGB, as the node decodes it); other roles as maps (:data:`WIDE_ROLES` 16-bit or float).
        """
        by_topic = {topic: role for role, topic in roles.items()}
        stats = stats if stats is not None else {}
        stats.setdefault('unmatched', 0)
        stats.setdefault('partial', 0)
        pending: Dict[int, Frame] = {}
        skipped: Dict[int, None] = {}
        order: List[int] = []                     # heap of pending stamps
        count = 0
        for topic, msgtype, _, raw in self.messages(list(by_topic)):
            role = by_topic[topic]
            msg = self.decode(raw, msgtype, f'a message on {topic}')
            value, stamp, frame_id = self._content(msg, msgtype, role, topic)
            if role == key:
                index, count = count, count + 1
                if select is not None and not select(index):
                    skipped[stamp] = None
                    pending.pop(stamp, None)
                    continue
                frame = pending.get(stamp)
                if frame is None or frame.index >= 0:
                    if frame is not None:      # a second key message with the same stamp
                        stats['unmatched'] += 1
                    frame = pending[stamp] = Frame(-1, stamp)
                    heapq.heappush(order, stamp)
                frame.index, frame.frame_id = index, frame_id
            elif stamp in skipped:
                continue
            else:
                frame = pending.get(stamp)
                if frame is None:
                    frame = pending[stamp] = Frame(-1, stamp, frame_id)
                    heapq.heappush(order, stamp)
            if msgtype in IMAGE_TYPES:
                frame.arrays[role] = image_to_array(
                    msg, f'{role} message on {topic} at stamp {_fmt_stamp(stamp)}',
                    role in CAMERA_ROLES, role in WIDE_ROLES)
            else:
                frame.data[role] = value
            if role in keep_raw:
                frame.raw[role] = (msgtype, raw)
            if frame.index >= 0 and len(frame.arrays) + len(frame.data) == len(roles):
                yield pending.pop(stamp)
            while len(pending) > max_pending:
                done = self._evict(pending, order, partial, stats)
                if done is not None:
                    yield done
            if len(skipped) > 4 * max_pending:
                for old in list(skipped)[:len(skipped) - 2 * max_pending]:
                    del skipped[old]
        while pending:
            done = self._evict(pending, order, partial, stats)
            if done is not None:
                yield done

    def _content(self, msg: Any, msgtype: str, role: str, topic: str) -> Tuple[Any, int, str]:
        """Return (the message, or a String's JSON), header stamp ns, frame_id."""
        if msgtype != STRING_TYPE:
            return msg, stamp_ns(msg), str(msg.header.frame_id)
        try:
            value = json.loads(msg.data)
            stamp, frame_id = value['header']['stamp'], str(value['header'].get('frame_id', ''))
            return value, int(stamp['sec']) * 1_000_000_000 + int(stamp['nanosec']), frame_id
        except (ValueError, TypeError, KeyError) as exc:
            raise BagError(f'{self.path}: {role} on {topic} lacks a JSON header stamp: '
                           f'{_one_line(exc)}') from None

    @staticmethod
    def _evict(pending: Dict[int, Frame], order: List[int], partial: bool,
               stats: Dict[str, int]) -> Optional[Frame]:
        while order:
            stamp = heapq.heappop(order)
            frame = pending.pop(stamp, None)
            if frame is None:
                continue
            if frame.index < 0 or not partial:
                stats['unmatched'] += len(frame.arrays) + len(frame.data)
                return None
            stats['partial'] += 1
            return frame
        pending.clear()
        return None


def _fmt_stamp(stamp: int) -> str:
    return f'{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}'


def _one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return f'{type(exc).__name__}: {text}'[:300]
