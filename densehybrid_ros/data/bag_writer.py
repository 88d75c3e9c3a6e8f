"""Write rosbag2 files of camera images and label maps with ``rosbags`` (no ROS needed).

* :class:`BagWriter` writes any message of the typestore (mcap by default, sqlite3 on request),
  with the QoS and mcap channel metadata ``ros2 bag play`` and the ROS tools expect.
* :func:`array_to_image` / :func:`array_to_compressed` / :func:`message` build the messages.

Reading them back (and the topic names, stamps and :class:`BagError`) is ``bags``.
"""

from pathlib import Path
import shutil
from typing import Any, Dict, Optional

import numpy as np

from ..core.images import encode, encode_compressed
from .bags import BagError, COMPRESSED_TYPE, IMAGE_TYPE, PathLike, stamp_ns, typestore

STORAGES = ('mcap', 'sqlite3')


def array_to_image(array: np.ndarray, encoding: str, stamp: int, frame_id: str = '') -> Any:
    """Build a sensor_msgs/Image (rosbags type) from an array of the encoding's dtype."""
    height, width, step, data = encode(array, encoding)
    return typestore().types[IMAGE_TYPE](header=_header(stamp, frame_id), height=height,
                                         width=width, encoding=encoding, is_bigendian=0,
                                         step=step, data=data)


def array_to_compressed(array: np.ndarray, fmt: str, stamp: int, frame_id: str = '') -> Any:
    """Build a sensor_msgs/CompressedImage (jpeg or png) from RGB or mono uint8 data."""
    data = np.frombuffer(encode_compressed(array, fmt), np.uint8)
    kind = 'rgb8' if array.ndim == 3 else 'mono8'
    return typestore().types[COMPRESSED_TYPE](
        header=_header(stamp, frame_id), data=data,
        format=f'{kind}; {fmt} compressed {"bgr8" if array.ndim == 3 else "mono8"}')


def message(msgtype: str, stamp: Optional[int] = None, frame_id: str = '', **fields: Any) -> Any:
    """Build any message of the typestore; with ``stamp``, its ``header`` too."""
    header = {} if stamp is None else {'header': _header(stamp, frame_id)}
    return typestore().types[msgtype](**header, **fields)


def _header(stamp: int, frame_id: str) -> Any:
    types = typestore().types
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=int(stamp // 1_000_000_000),
                                                   nanosec=int(stamp % 1_000_000_000)),
        frame_id=frame_id)


_WRITER_CLASS = None


def _writer_class() -> Any:
    """Return rosbags' Writer with mcap channels that also carry ``topic_type_hash``.

    ``ros2 bag record`` (rosbag2_storage_mcap) writes two channel metadata keys,
    ``offered_qos_profiles`` and ``topic_type_hash``; rosbags 0.11 writes only the first, so
    tools that read the channel (not metadata.yaml) found no type hash. Built on first use:
    rosbags is imported lazily here.
    """
    global _WRITER_CLASS
    if _WRITER_CLASS is None:
        from io import BytesIO

        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string

        class HashingMcapWriter(McapWriter):
            def add_connection(self, connection: Any, offered_qos_profiles: str) -> None:
                metadata = BytesIO()
                for key, value in (('offered_qos_profiles', offered_qos_profiles),
                                   ('topic_type_hash', connection.digest)):
                    write_string(metadata, key)
                    write_string(metadata, value)
                self.channels.append(Channel(connection.id, connection.msgtype,
                                             connection.topic,
                                             connection.ext.serialization_format,
                                             metadata.getvalue()))
                self.channel_stats[connection.id] = 0
                write_channel(self.chunk.bio, self.channels[-1], self.schemas)

        class HashingWriter(Writer):
            STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: HashingMcapWriter}

        _WRITER_CLASS = HashingWriter
    return _WRITER_CLASS


class BagWriter:
    """A rosbag2 opened for writing (use as a context manager): any message of the typestore."""

    def __init__(self, path: PathLike, storage: str = 'mcap', overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {STORAGES}, got {storage!r}')
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f'{self.path} exists; remove it or pass --overwrite')
            if self.path.is_dir() and not (self.path / 'metadata.yaml').exists() \
                    and any(self.path.iterdir()):
                raise BagError(f'refusing to overwrite {self.path}: it is a non-empty folder '
                               f'that is not a rosbag2')
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = _writer_class()(self.path, version=Writer.VERSION_LATEST,
                                       storage_plugin=plugin)
        self._writer.open()
        self._connections: Dict[str, Any] = {}
        self.count = 0

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml and the mcap summary)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _connection(self, topic: str, msgtype: str) -> Any:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore(), offered_qos_profiles=[_offered_qos()])
        elif conn.msgtype != msgtype:
            raise BagError(f'topic {topic} already holds {conn.msgtype}, not {msgtype}')
        return conn

    def write(self, topic: str, msg: Any, log_time: Optional[int] = None) -> None:
        """Serialize and write one message (log time defaults to its header stamp)."""
        msgtype = msg.__msgtype__
        raw = typestore().serialize_cdr(msg, msgtype)
        self.write_raw(topic, msgtype, raw, stamp_ns(msg) if log_time is None else log_time)

    def write_raw(self, topic: str, msgtype: str, raw: bytes, log_time: int) -> None:
        """Write already serialized CDR data."""
        self._writer.write(self._connection(topic, msgtype), int(log_time), raw)
        self.count += 1

    def write_image(self, topic: str, array: np.ndarray, encoding: str, stamp: int,
                    frame_id: str = '') -> None:
        """Write a numpy array as a sensor_msgs/Image with the given header."""
        self.write(topic, array_to_image(array, encoding, stamp, frame_id))


def _offered_qos() -> Any:
    """Return the QoS our bags offer for every topic: reliable keep-last 10, volatile.

    ``ros2 bag play`` publishes with it (an empty list made it fall back to its defaults);
    reliable matches both reliable and best-effort subscribers.
    """
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    never = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=10, reliability=QosReliability.RELIABLE,
               durability=QosDurability.VOLATILE, deadline=never, lifespan=never,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
               avoid_ros_namespace_conventions=False)
