"""ROS messages for anomaly objects and 3-D outputs: tracks, placements, points and grids in.

Pure message building: every function takes core objects (``tracking.Track``,
``projection.Placement``, N x 5 point arrays, a ``GridSpec`` grid) and the header of the frame
they came from, and returns a message; nothing here keeps state or talks to a node.

Headers: pass the *processed frame's* header everywhere. Messages in the camera's image (2-D
detections, camera-frame markers, camera_info, label info) carry it as it is; messages in the
robot's frame (3-D detections, 3-D markers, points, grid) carry its stamp with ``base_frame``.

Confidence: ``vision_msgs`` scores are 0..1; the anomaly score is not. The caller maps each
track's score through the calibrated score range (``track_confidences``) and passes the result,
so every message (and the ``confidence`` image) means the same number.

vision_msgs is optional (it is not on PyPI; ``interfaces/build.sh`` builds it into the venv, apt
ROS has ``ros-<distro>-vision-msgs``): without it this module still imports, the functions that
build vision_msgs types raise ``VisionMsgsMissing`` (an ``ImportError``), and the others work.
The layout written for is vision_msgs 4.x, the same on Humble and Jazzy: ``BoundingBox2D.center``
is a ``Pose2D`` with ``position`` (``Point2D``) and ``theta``; ``ObjectHypothesisWithPose`` has
``hypothesis`` (``class_id``, ``score``) and ``pose``; detections carry ``id``.

Pixel coordinates follow ``core.camera``: pixel (column i, row j) has its centre at (i, j), so a
box (x, y, w, h) covering columns x .. x + w - 1 has its centre at x + (w - 1) / 2.
"""

import array
import math
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from nav_msgs.msg import MapMetaData, OccupancyGrid
import numpy as np
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..core.camera import CameraModel
from ..core.projection import GridSpec, Placement, POINT_FIELDS
from ..core.tracking import Track

try:    # optional dependency, see the module docstring
    from vision_msgs.msg import (BoundingBox2D, BoundingBox3D, Detection2D, Detection2DArray,
                                 Detection3D, Detection3DArray, LabelInfo, ObjectHypothesis,
                                 ObjectHypothesisWithPose, Point2D, Pose2D, VisionClass)
    VISION_MSGS_ERROR: Optional[ImportError] = None
except ImportError as exc:
    VISION_MSGS_ERROR = exc

ANOMALY_CLASS = 'anomaly'            # ObjectHypothesis.class_id of every detection
UNKNOWN_NAME = 'unknown'             # LabelInfo name of the open-set id
BOX_NS, LABEL_NS, OUTLINE_NS = 'anomaly_boxes', 'anomaly_labels', 'anomaly_outlines'
OUTLINE_DEPTH = 1.0                  # m: camera-frame outlines are drawn on the plane z = 1 m
LINE_WIDTH = 0.004                   # m at OUTLINE_DEPTH: about 3 px at fx = 800
TEXT_HEIGHT = 0.3                    # m, 3-D labels; camera-frame labels use a tenth of it
MARKER_LIFETIME = 0.5                # s: a marker the node stops refreshing vanishes after this


class VisionMsgsMissing(ImportError):
    """vision_msgs is not importable: the vision outputs are off (see ``VISION_MSGS_ERROR``)."""


def _require_vision() -> None:
    if VISION_MSGS_ERROR is not None:
        raise VisionMsgsMissing(
            f'vision_msgs is not installed ({VISION_MSGS_ERROR}); build it with '
            'interfaces/build.sh (make setup) or install ros-<distro>-vision-msgs')


# --------------------------------------------------------------------------- small parts
def in_frame(header: Header, frame_id: str) -> Header:
    """Return a new header with ``header``'s stamp and ``frame_id``."""
    out = Header(frame_id=frame_id)
    out.stamp.sec, out.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    return out


def track_confidences(tracks: Iterable[Track],
                      score_range: Tuple[float, float]) -> Dict[int, float]:
    """Track id -> 0..1 confidence: its smoothed score placed linearly in ``(low, high)``.

    Use the calibrated range (``outputs.calibrated_range``: score_p01, score_p99), the range the
    ``confidence`` image uses, so a detection's score and its pixels' confidence agree.
    """
    low, high = (float(v) for v in score_range)
    span = high - low if high > low else 1.0
    return {t.id: float(min(1.0, max(0.0, (t.score - low) / span))) for t in tracks}


def _confirmed(tracks: Iterable[Track]) -> List[Track]:
    return sorted((t for t in tracks if t.confirmed), key=lambda t: t.id)


def _yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _point(xyz: Sequence[float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _box_pose(placement: Placement) -> Pose:
    """Pose of a placement's 3-D box: its centre, turned by its yaw about base z."""
    return Pose(position=_point(placement.center), orientation=_yaw_quaternion(placement.yaw))


def _hypothesis(confidence: float, pose: Optional[Pose] = None) -> 'ObjectHypothesisWithPose':
    result = ObjectHypothesisWithPose(
        hypothesis=ObjectHypothesis(class_id=ANOMALY_CLASS, score=float(confidence)))
    if pose is not None:
        result.pose.pose = pose
    return result


# --------------------------------------------------------------------------- vision_msgs
def detections_2d(tracks: Iterable[Track], header: Header,
                  confidences: Mapping[int, float]) -> 'Detection2DArray':
    """vision_msgs/Detection2DArray of the confirmed tracks, in the image's pixels.

    One Detection2D per confirmed track, by id: ``id`` = the track id, ``bbox`` its smoothed box
    (centre as ``Pose2D.position``, theta 0, size in pixels), one hypothesis ``'anomaly'`` with
    ``confidences[track.id]`` (0..1) as its score (its pose is unset: a 2-D detection has none).
    Raises ``VisionMsgsMissing`` without vision_msgs.
    """
    _require_vision()
    out = Detection2DArray(header=header)
    for track in _confirmed(tracks):
        x, y, w, h = (float(v) for v in track.bbox)
        bbox = BoundingBox2D(center=Pose2D(position=Point2D(x=x + (w - 1) / 2, y=y + (h - 1) / 2),
                                           theta=0.0), size_x=w, size_y=h)
        out.detections.append(Detection2D(header=header, id=str(track.id), bbox=bbox,
                                          results=[_hypothesis(confidences[track.id])]))
    return out


def detections_3d(tracks: Iterable[Track], placements: Mapping[int, Placement], header: Header,
                  confidences: Mapping[int, float],
                  base_frame: str = 'base_link') -> 'Detection3DArray':
    """vision_msgs/Detection3DArray of the confirmed, placed tracks in ``base_frame``.

    ``placements`` maps track id -> ``Placement`` (tracks without one are left out). ``bbox``:
    the placement's box (centre, yaw about z, size = extent along the camera's forward
    direction, width, height in m); the hypothesis ``'anomaly'`` carries the confidence and the
    same pose (covariance zero: not estimated). Raises ``VisionMsgsMissing`` without vision_msgs.
    """
    _require_vision()
    base = in_frame(header, base_frame)
    out = Detection3DArray(header=base)
    for track in _confirmed(tracks):
        placement = placements.get(track.id)
        if placement is None:
            continue
        pose = _box_pose(placement)
        size = Vector3(x=float(placement.size[0]), y=float(placement.size[1]),
                       z=float(placement.size[2]))
        out.detections.append(Detection3D(
            header=base, id=str(track.id), bbox=BoundingBox3D(center=pose, size=size),
            results=[_hypothesis(confidences[track.id], pose)]))
    return out


def label_info(class_names: Sequence[str], header: Header, unknown_id: int = 255,
               threshold: float = 0.0, unknown_name: str = UNKNOWN_NAME) -> 'LabelInfo':
    """vision_msgs/LabelInfo of the open-set image: ids 0..N-1 = ``class_names``, plus unknown.

    ``threshold`` (LabelInfo: "the value between 0-1 used as confidence threshold"): the
    confidence above which a pixel is published as ``unknown_id``, i.e. the calibrated anomaly
    threshold mapped through the same score range as ``track_confidences`` and the
    ``confidence`` image; 0 when the caller has no range. Raises ``VisionMsgsMissing`` without
    vision_msgs and ``ValueError`` if ``unknown_id`` collides with a class id.
    """
    _require_vision()
    if unknown_id < len(class_names) or not 0 <= unknown_id <= 65535:
        raise ValueError(f'unknown_id {unknown_id} collides with the {len(class_names)} class ids '
                         'or is not a uint16')
    classes = [VisionClass(class_id=i, class_name=str(name)) for i, name in enumerate(class_names)]
    classes.append(VisionClass(class_id=int(unknown_id), class_name=unknown_name))
    return LabelInfo(header=header, class_map=classes, threshold=float(threshold))


# --------------------------------------------------------------------------- markers
def _marker(header: Header, ns: str, marker_id: int, kind: int, lifetime: float) -> Marker:
    marker = Marker(header=header, ns=ns, id=int(marker_id), type=kind, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.lifetime = Duration(sec=int(lifetime), nanosec=int(round((lifetime % 1) * 1e9)))
    return marker


def _colour(confidence: float, alpha: float) -> ColorRGBA:
    """Yellow (confidence 0) to red (1)."""
    return ColorRGBA(r=1.0, g=float(1.0 - min(1.0, max(0.0, confidence))), b=0.0, a=alpha)


def _delete_all(header: Header) -> List[Marker]:
    """DELETEALL for each of this module's namespaces (RViz 2 then clears that namespace only)."""
    return [Marker(header=header, ns=ns, action=Marker.DELETEALL)
            for ns in (BOX_NS, OUTLINE_NS, LABEL_NS)]


def markers(tracks: Iterable[Track], placements: Optional[Mapping[int, Placement]],
            header: Header, confidences: Mapping[int, float],
            camera: Optional[CameraModel] = None, base_frame: str = 'base_link',
            lifetime: float = MARKER_LIFETIME) -> MarkerArray:
    """visualization_msgs/MarkerArray of the confirmed tracks for RViz.

    The array starts with a DELETEALL for each of the three namespaces below (stale tracks and
    the other mode's markers vanish at once; other publishers' namespaces are left alone) and
    every marker also has ``lifetime`` s (they vanish if the node stops). Marker id = track id.

    - With ``placements`` (track id -> ``Placement``; a camera_info was there): in
      ``base_frame`` with the frame's stamp, a CUBE at each placed track's 3-D box (namespace
      ``anomaly_boxes``) and a TEXT_VIEW_FACING ``#id confidence range m`` above it
      (``anomaly_labels``).
    - Without placements but with ``camera`` (the ``CameraModel`` of the image the boxes are in):
      in the image's frame (``header`` as given), a closed LINE_STRIP through the rays of the
      box's four outer pixel corners on the optical plane z = 1 m (``anomaly_outlines``) and a
      ``#id confidence`` label at its top-left corner (``anomaly_labels``).
    - With neither, nothing can be drawn in 3-D: the array holds the DELETEALLs only.
    """
    chosen = _confirmed(tracks)
    if placements is not None:
        frame = in_frame(header, base_frame)
        out = MarkerArray(markers=_delete_all(frame))
        for track in chosen:
            placement = placements.get(track.id)
            if placement is None:
                continue
            confidence = confidences[track.id]
            box = _marker(frame, BOX_NS, track.id, Marker.CUBE, lifetime)
            box.pose = _box_pose(placement)
            box.scale = Vector3(x=float(placement.size[0]), y=float(placement.size[1]),
                                z=float(placement.size[2]))
            box.color = _colour(confidence, 0.5)
            label = _marker(frame, LABEL_NS, track.id, Marker.TEXT_VIEW_FACING, lifetime)
            top = np.array(placement.center, np.float64)
            top[2] += placement.size[2] / 2 + TEXT_HEIGHT
            label.pose.position = _point(top)
            label.scale.z = TEXT_HEIGHT
            label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
            label.text = f'#{track.id} {confidence:.2f} {placement.range:.1f} m'
            out.markers.extend((box, label))
        return out
    out = MarkerArray(markers=_delete_all(header))
    if camera is None or not chosen:
        return out
    # Outer pixel corners of every box (top-left, top-right, bottom-right, bottom-left): K x 4.
    boxes = np.array([t.bbox for t in chosen], np.float64)
    left, top = boxes[:, 0] - 0.5, boxes[:, 1] - 0.5
    right, bottom = left + boxes[:, 2], top + boxes[:, 3]
    corners = camera.rays(np.stack([left, right, right, left], 1),
                          np.stack([top, top, bottom, bottom], 1)) * OUTLINE_DEPTH
    for track, ring in zip(chosen, corners):
        if not np.isfinite(ring).all():
            continue                        # a corner the lens model cannot undistort
        confidence = confidences[track.id]
        outline = _marker(header, OUTLINE_NS, track.id, Marker.LINE_STRIP, lifetime)
        outline.points = [_point(p) for p in (*ring, ring[0])]
        outline.scale.x = LINE_WIDTH
        outline.color = _colour(confidence, 1.0)
        label = _marker(header, LABEL_NS, track.id, Marker.TEXT_VIEW_FACING, lifetime)
        label.pose.position = _point(ring[0] - (0.0, TEXT_HEIGHT / 10, 0.0))   # above: -y
        label.scale.z = TEXT_HEIGHT / 10
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        label.text = f'#{track.id} {confidence:.2f}'
        out.markers.extend((outline, label))
    return out


# --------------------------------------------------------------------------- clouds and grids
# Every field FLOAT32, track_id too: the message's data is then the core's N x 5 float32 array
# as it is (one copy, no per-field packing), and the ids, already float32 in that array, are
# exact up to 2^24. Nav2's ObstacleLayer / VoxelLayer read only x, y, z (as float32), and
# RViz's PointCloud2 display colours by any field of any type, so nothing needs UINT32.
CLOUD_FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, name in enumerate(POINT_FIELDS)]
POINT_STEP = 4 * len(POINT_FIELDS)


def point_cloud(points: np.ndarray, header: Header, base_frame: str = 'base_link') -> PointCloud2:
    """sensor_msgs/PointCloud2 (x, y, z, score, track_id, all FLOAT32) of N x 5 base points.

    One row (``height`` 1, ``width`` N), native byte order, ``is_dense`` when every x, y, z is
    finite; stamped with ``header``'s stamp in ``base_frame``. Ready for a Nav2 observation
    source (``data_type: PointCloud2``): z is the height above the ground.
    """
    points = np.ascontiguousarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != len(POINT_FIELDS):
        raise ValueError(f'points must be N x {len(POINT_FIELDS)} {POINT_FIELDS}, '
                         f'got shape {points.shape}')
    count = len(points)
    msg = PointCloud2(header=in_frame(header, base_frame), height=1, width=count,
                      fields=list(CLOUD_FIELDS), is_bigendian=sys.byteorder == 'big',
                      point_step=POINT_STEP, row_step=POINT_STEP * count,
                      is_dense=bool(np.isfinite(points[:, :3]).all()))
    data = array.array('B')
    data.frombytes(points.tobytes())
    msg.data = data
    return msg


def occupancy_grid(grid: np.ndarray, spec: GridSpec, header: Header,
                   base_frame: str = 'base_link') -> OccupancyGrid:
    """nav_msgs/OccupancyGrid of a ``projection.occupancy_grid`` int8 grid (rows = y cells).

    ``info``: ``spec``'s resolution, width = columns (x cells), height = rows (y cells), origin
    at ``spec.origin`` (z 0, no rotation), ``map_load_time`` = the frame's stamp; in
    ``base_frame`` with the frame's stamp.
    """
    rows, cols = spec.shape
    if np.shape(grid) != (rows, cols):
        raise ValueError(f'grid {np.shape(grid)} does not match its spec ({rows}, {cols})')
    frame = in_frame(header, base_frame)
    ox, oy = spec.origin
    info = MapMetaData(map_load_time=frame.stamp, resolution=float(spec.resolution),
                       width=cols, height=rows,
                       origin=Pose(position=Point(x=float(ox), y=float(oy), z=0.0),
                                   orientation=Quaternion(w=1.0)))
    msg = OccupancyGrid(header=frame, info=info)
    data = array.array('b')
    data.frombytes(np.ascontiguousarray(grid, np.int8).tobytes())
    msg.data = data
    return msg


def camera_info_for(info: CameraInfo, header: Header) -> CameraInfo:
    """Return a copy of ``info`` with the processed frame's ``header`` (republished per frame)."""
    return CameraInfo(
        header=header, height=info.height, width=info.width,
        distortion_model=info.distortion_model, d=array.array('d', info.d),
        k=np.array(info.k, np.float64), r=np.array(info.r, np.float64),
        p=np.array(info.p, np.float64), binning_x=info.binning_x, binning_y=info.binning_y,
        roi=RegionOfInterest(x_offset=info.roi.x_offset, y_offset=info.roi.y_offset,
                             height=info.roi.height, width=info.roi.width,
                             do_rectify=info.roi.do_rectify))
