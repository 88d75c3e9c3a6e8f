"""One camera's object and 3-D outputs: tracks, detections, markers, points, grid, camera_info.

Per camera the node keeps one ``ObstacleOutputs``. It owns the camera's ``camera_info`` (and
optional registered depth) subscriptions, the object publishers and the camera's
``core.obstacles.ObstaclePipeline`` (instances -> tracks). For every processed frame whose
object outputs have subscribers, ``process`` runs the tracker and publishes:

* always (camera frame, the input header): ``anomaly_instances`` (mono16 track ids),
  ``anomaly_detections`` (vision_msgs/Detection2DArray), ``anomaly_markers``;
* with camera_info paired to the frame (same stamp within ``sync_tolerance``) and a mount
  (``camera_height`` > 0, or a TF transform base_frame <- the image's frame where tf2_ros is
  installed): ``camera_info`` again with the frame's header, ``anomaly_points``
  (PointCloud2), ``anomaly_grid`` (OccupancyGrid) and ``anomaly_detections_3d``
  (Detection3DArray) in ``base_frame``, and the markers placed in 3-D.

A frame without paired camera_info still gets the camera-frame outputs and is counted
(``frames_without_camera_info``); ``three_d`` in /diagnostics says why 3-D is off.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple

from nav_msgs.msg import OccupancyGrid
import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from . import object_msgs
from .conversions import numpy_to_image
from .params import split_list
from .qos import keep_last, OUTPUT_QOS
from ..core.camera import CameraModel, MountPose
from ..core.images import decode_depth, ImageError
from ..core.instances import InstanceConfig
from ..core.obstacles import (Geometry, obstacle_grid, obstacle_points, ObstacleFrame,
                              ObstaclePipeline)
from ..core.projection import GridSpec
from ..core.tracking import TrackerConfig

THREE_D = ('anomaly_points', 'anomaly_grid', 'anomaly_detections_3d', 'camera_info')
# Label metadata: late joiners (Nav2's semantic layer) get the last sample.
LABELS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR_QOS = keep_last(5, reliable=False)        # matches reliable and best-effort publishers
MountLookup = Callable[[str, str], Optional[MountPose]]   # (base_frame, image frame) -> mount


@dataclass(frozen=True)
class ObstacleSettings:
    """What every camera's object outputs share: rules, frames, grid, mount."""

    pipeline: Callable[[], ObstaclePipeline]     # makes one camera's pipeline
    drivable: Tuple[int, ...]                    # class ids an obstacle stands on
    base_frame: str
    grid: GridSpec
    cloud_stride: int
    sync_tolerance: float                        # s
    mount: Optional[MountPose]                   # from parameters; None = look it up
    lookup: Optional[MountLookup]                # TF where tf2_ros is installed
    class_names: Tuple[str, ...]


def stamp_ns(header: Header) -> int:
    """Return a header stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Stamped:
    """The last few messages of a topic by stamp; ``near`` pairs one with a frame."""

    def __init__(self, depth: int = 30) -> None:
        self._items: Deque[Tuple[int, Any]] = deque(maxlen=depth)

    def add(self, msg: Any) -> None:
        """Keep ``msg`` (newest last)."""
        self._items.append((stamp_ns(msg.header), msg))

    def near(self, stamp: int, tolerance_ns: int) -> Optional[Any]:
        """Return the message closest in stamp to ``stamp`` within the tolerance, or None."""
        best = min(self._items, key=lambda item: abs(item[0] - stamp), default=None)
        if best is None or abs(best[0] - stamp) > tolerance_ns:
            return None
        return best[1]


class ObstacleOutputs:
    """One camera's object publishers, camera_info/depth inputs and obstacle pipeline."""

    def __init__(self, node: Any, out_ns: str) -> None:
        self.node = node
        self.settings: Optional[ObstacleSettings] = None
        self.pipeline = ObstaclePipeline()
        self.rectified = False
        self.publishers: Dict[str, Any] = {}
        self.frames_without_info = 0
        self.frames_without_depth = 0
        self.bad_depth = 0
        self.three_d = 'waiting for camera_info'
        self.info, self.depth = Stamped(), Stamped()
        self.subscriptions: List[Any] = []
        types = {'anomaly_instances': Image, 'anomaly_markers': MarkerArray,
                 'anomaly_points': PointCloud2, 'anomaly_grid': OccupancyGrid,
                 'camera_info': CameraInfo}
        self.labels = None
        if object_msgs.VISION_MSGS_ERROR is None:
            from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
            types.update(anomaly_detections=Detection2DArray,
                         anomaly_detections_3d=Detection3DArray)
            self.labels = node.create_lifecycle_publisher(LabelInfo, f'{out_ns}/labels',
                                                          LABELS_QOS)
        for name, msg_type in types.items():
            self.publishers[name] = node.create_lifecycle_publisher(
                msg_type, f'{out_ns}/{name}', OUTPUT_QOS)
        self._geometry: Optional[Tuple[Any, Geometry]] = None   # ((camera, mount), geometry)
        self._camera: Optional[Tuple[Any, CameraModel]] = None  # (camera_info key, model)

    # -- inputs
    def start(self, settings: ObstacleSettings, info_topic: str, depth_topic: str,
              rectified: bool) -> None:
        """Take the activate-time settings (a new tracker) and subscribe to camera_info/depth."""
        self.settings, self.rectified = settings, rectified
        self.pipeline = settings.pipeline()
        self._geometry = self._camera = None
        self.info, self.depth = Stamped(), Stamped()
        self.subscriptions.append(self.node.create_subscription(
            CameraInfo, info_topic, self.info.add, SENSOR_QOS))
        if depth_topic:
            self.subscriptions.append(self.node.create_subscription(
                Image, depth_topic, self.depth.add, SENSOR_QOS))

    def unsubscribe(self) -> None:
        """Drop the camera_info / depth subscriptions (deactivate)."""
        for sub in self.subscriptions:
            try:
                self.node.destroy_subscription(sub)
            except Exception:  # context already shut down
                pass
        self.subscriptions = []

    def close(self) -> None:
        """Drop subscriptions and publishers (cleanup)."""
        self.unsubscribe()
        for pub in list(self.publishers.values()) + [self.labels]:
            try:
                if pub is not None:
                    self.node.destroy_lifecycle_publisher(pub)
            except Exception:  # context already shut down
                pass
        self.publishers = {}

    def publish_labels(self, header: Header) -> None:
        """Publish the class names once (transient local) for Nav2's semantic layer."""
        if self.labels is not None:
            self.labels.publish(object_msgs.label_info(self.settings.class_names, header))

    # -- per frame
    def wanted(self, publish_all: bool) -> List[str]:
        """List the object outputs that have subscribers (all with ``publish_all``)."""
        return [name for name, pub in self.publishers.items()
                if publish_all or pub.get_subscription_count() > 0]

    def process(self, result: Any, header: Header, threshold: float,
                score_range: Tuple[float, float], wanted: List[str]) -> None:
        """Track this frame's obstacles and publish the wanted object outputs."""
        pipe = self.pipeline
        frame = pipe.update(result.score, result.semantic, threshold,
                            stamp_ns(header) * 1e-9)
        confidences = object_msgs.track_confidences(frame.tracks, score_range)
        stamp = stamp_ns(header)
        tolerance = int(self.settings.sync_tolerance * 1e9)
        info = self.info.near(stamp, tolerance)
        geometry = self._geometry_for(info, header.frame_id, result.score.shape)
        depth = None
        if geometry is not None and self.subscriptions[1:]:
            depth = self._depth(stamp, tolerance, result.score.shape)
        if geometry is not None:
            pipe.place(frame, geometry, depth)
        camera = geometry.camera if geometry is not None else \
            self._camera_for(info, result.score.shape) if info is not None else None
        messages = object_messages(frame, header, confidences, camera, self.settings, wanted,
                                   placed=geometry is not None)
        if geometry is not None:
            messages.update(three_d_messages(frame, geometry, result, depth, info, header,
                                             confidences, self.settings, wanted))
        for name, msg in messages.items():
            self.publishers[name].publish(msg)

    def report(self) -> Dict[str, str]:
        """Return the object values for this camera's /diagnostics status."""
        return {'tracks_confirmed': str(self.pipeline.confirmed),
                'phantoms_suppressed': str(self.pipeline.phantoms),
                'three_d': self.three_d,
                'frames_without_camera_info': str(self.frames_without_info),
                'frames_without_depth': str(self.frames_without_depth),
                'bad_depth_messages': str(self.bad_depth)}

    # -- geometry
    def _geometry_for(self, info: Optional[CameraInfo], frame_id: str,
                      shape: Tuple[int, int]) -> Optional[Geometry]:
        """Return the camera model at the image size and the mount; None: 3-D off (reason kept)."""
        if info is None:
            self.frames_without_info += 1
            if self._geometry is None:
                self.three_d = 'off: no camera_info paired with the frames yet'
            return None
        mount = self.settings.mount
        if mount is None and self.settings.lookup is not None:
            mount = self.settings.lookup(self.settings.base_frame, frame_id)
        if mount is None:
            self.three_d = ('off: no mount (set camera_height, or publish TF from '
                            f'{self.settings.base_frame} to {frame_id or "the image frame"})')
            return None
        camera = self._camera_for(info, shape)
        if self._geometry is None or self._geometry[0] != (camera, mount):
            self._geometry = (camera, mount), Geometry(camera, mount, self.settings.grid,
                                                       self.settings.cloud_stride)
        self.three_d = 'on'
        return self._geometry[1]

    def _camera_for(self, info: CameraInfo, shape: Tuple[int, int]) -> CameraModel:
        """Return the camera model of ``info`` at the image size (the last one is kept)."""
        key = (tuple(info.k), tuple(info.d), tuple(info.p), info.width, info.height,
               info.distortion_model, tuple(shape))
        if self._camera is None or self._camera[0] != key:
            camera = CameraModel.from_info(info, self.rectified)
            if (camera.size[0], camera.size[1]) != (shape[1], shape[0]):
                camera = camera.scaled(shape[1], shape[0])
            self._camera = key, camera
        return self._camera[1]

    def _depth(self, stamp: int, tolerance: int, shape: Tuple[int, int]
               ) -> Optional[np.ndarray]:
        """Return the paired depth image (uint16 mm or float32 m, as stored), or None."""
        msg = self.depth.near(stamp, tolerance)
        if msg is None:
            self.frames_without_depth += 1
            return None
        try:
            return depth_from_message(msg)
        except ImageError:
            self.bad_depth += 1
            return None


def depth_from_message(msg: Image) -> Optional[np.ndarray]:
    """Return a depth Image as stored (uint16 mm / float32 m); None when no pixel is valid.

    Not converted to metres here: placement and points convert only the pixels they read
    (``core.projection.depth_in_metres``), 1.5-2 ms less per 720p frame than the whole image.
    """
    depth = decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                         bool(msg.is_bigendian))
    if depth.dtype == np.uint16:
        valid = bool(depth.any())                          # 0 mm: no reading
    else:
        with np.errstate(invalid='ignore'):                # NaN, inf, <= 0: no reading
            valid = bool(np.logical_and(depth > 0, depth < np.inf).any())
    return depth if valid else None


def object_messages(frame: ObstacleFrame, header: Header, confidences: Dict[int, float],
                    camera: Optional[CameraModel], settings: ObstacleSettings,
                    wanted: Iterable[str], placed: bool) -> Dict[str, Any]:
    """Build the wanted camera-frame object messages (instances, 2-D detections, markers).

    Markers are 3-D boxes when the frame is ``placed``, outlines in the image with ``camera``.
    """
    out: Dict[str, Any] = {}
    if 'anomaly_instances' in wanted:
        out['anomaly_instances'] = numpy_to_image(frame.track_image(), 'mono16', header)
    if 'anomaly_detections' in wanted and object_msgs.VISION_MSGS_ERROR is None:
        out['anomaly_detections'] = object_msgs.detections_2d(frame.tracks, header, confidences)
    if 'anomaly_markers' in wanted:
        out['anomaly_markers'] = object_msgs.markers(
            frame.tracks, frame.placements if placed else None, header, confidences, camera,
            settings.base_frame)
    return out


def three_d_messages(frame: ObstacleFrame, geometry: Geometry, result: Any,
                     depth: Optional[np.ndarray], info: CameraInfo, header: Header,
                     confidences: Dict[int, float], settings: ObstacleSettings,
                     wanted: Iterable[str]) -> Dict[str, Any]:
    """Build the wanted 3-D messages of a placed frame (camera_info, points, grid, 3-D boxes)."""
    base, out = settings.base_frame, {}
    if 'camera_info' in wanted:
        out['camera_info'] = object_msgs.camera_info_for(info, header)
    points = None
    if 'anomaly_points' in wanted or 'anomaly_grid' in wanted:
        points = obstacle_points(frame, geometry, result.score, depth)
    if 'anomaly_points' in wanted:
        out['anomaly_points'] = object_msgs.point_cloud(points, header, base)
    if 'anomaly_grid' in wanted:
        grid = obstacle_grid(geometry, result.semantic, settings.drivable, points)
        out['anomaly_grid'] = object_msgs.occupancy_grid(grid, geometry.grid, header, base)
    if 'anomaly_detections_3d' in wanted and object_msgs.VISION_MSGS_ERROR is None:
        out['anomaly_detections_3d'] = object_msgs.detections_3d(
            frame.tracks, frame.placements, header, confidences, base)
    return out


def class_ids(name: str, value: str, class_names: List[str], warn: Callable[[str], None],
              if_none: str) -> Tuple[int, ...]:
    """Ids of a comma-separated list of class names; unknown names are left out, with a warning."""
    names = split_list(value)
    unknown = [n for n in names if n not in class_names]
    if unknown:
        warn(f'{name} {unknown} are not classes of the model ({len(class_names)} '
             f'classes: {", ".join(class_names[:8])}...); '
             + (if_none if len(unknown) == len(names) else 'using the others'))
    return tuple(class_names.index(n) for n in names if n in class_names)


def obstacle_settings(values: Dict[str, Any], class_names: List[str],
                      lookup: Optional[MountLookup], warn: Callable[[str], None]
                      ) -> ObstacleSettings:
    """Build the settings from the node's parameters; ValueError names a bad rule.

    Class names the model does not have are left out with a warning (a model with other
    classes than Cityscapes' has no 'road'); with no ``drivable_classes`` left, every anomaly is
    an obstacle, with no ``scenery_classes`` left, none is scenery.
    """
    drivable = class_ids('drivable_classes', values['drivable_classes'], class_names, warn,
                         'obstacles are every anomaly')
    scenery = class_ids('scenery_classes', values['scenery_classes'], class_names, warn,
                        'no anomaly is scenery')
    instance_config = InstanceConfig(
        seed_offset=float(values['obstacle_seed_offset']),
        grow_offset=float(values['obstacle_grow_offset']),
        min_area_fraction=float(values['obstacle_min_area']),
        small_area_fraction=float(values['obstacle_small_area']),
        small_peak_offset=float(values['obstacle_small_peak_offset']),
        drivable_classes=drivable or None,
        scenery_classes=scenery or None)
    tracker_config = TrackerConfig(
        confirm_hits=int(values['track_confirm_hits']),
        confirm_window=int(values['track_confirm_window']),
        max_misses=int(values['track_max_misses']))
    mount = None
    if values['camera_height'] > 0:
        mount = MountPose.from_mount(
            camera_x=values['camera_x'], camera_y=values['camera_y'],
            camera_height=values['camera_height'], camera_roll=values['camera_roll'],
            camera_pitch=values['camera_pitch'], camera_yaw=values['camera_yaw'],
            base_frame=values['base_frame'])
    grid = GridSpec(values['grid_resolution'], values['grid_length'], values['grid_width'])
    return ObstacleSettings(
        pipeline=lambda: ObstaclePipeline(instance_config, tracker_config), drivable=drivable,
        base_frame=values['base_frame'], grid=grid, cloud_stride=int(values['cloud_stride']),
        sync_tolerance=float(values['sync_tolerance']), mount=mount, lookup=lookup,
        class_names=tuple(class_names))


def tf_mount_lookup(node: Any) -> Optional[MountLookup]:
    """Return a TF mount lookup (base_frame <- the image's frame) where tf2_ros is installed.

    tf2_ros is not on PyPI: on a PyPI install the mount comes from the camera_* parameters.
    """
    try:
        import tf2_ros               # optional: apt ROS only
        from rclpy.time import Time
    except ImportError:
        return None
    buffer = tf2_ros.Buffer()
    node.tf_listener = tf2_ros.TransformListener(buffer, node)   # kept alive by the node

    def lookup(base_frame: str, frame_id: str) -> Optional[MountPose]:
        try:
            t = buffer.lookup_transform(base_frame, frame_id, Time()).transform
        except Exception:  # not (yet) available: 3-D stays off and says why
            return None
        return MountPose.from_quaternion(
            (t.translation.x, t.translation.y, t.translation.z),
            (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w), base_frame)
    return lookup
