"""What the node's object and 3-D outputs cost per camera frame, next to the frame's own time.

Per processed frame and camera, with object outputs subscribed, the node runs the camera's obstacle
pipeline and builds the messages. This times that work step for step, on the embedded model's real
outputs (``Segmenter(None, device='cpu')``, the node's default inference width: the model's
``max_inference_width``) for consecutive frames of a synthetic sequence late in the drive, where
obstacles are near (held-out family 'eval', 1.6 units per frame). The node's own settings are used
(``obstacle_settings`` of the parameter defaults with ``camera_height`` 1 m: a level mount, the
0.1 m grid of 20 x 10 m, ``cloud_stride`` 2); the camera is the sequence's pinhole
(``CameraModel``, camera_info built from it). Messages are built, not published.

Figures (ms; each round is one frame; the frames are visited back and forth, 0 1 .. N-1 .. 1 0
1 .., so the tracker always sees neighbouring frames; one untimed cycle first confirms the
tracks and builds the per-camera ray table):

* ``obstacle_cost_ms``: instances + tracks (``ObstaclePipeline.update``), track confidences,
  the track image as a mono16 ``Image``, ``Detection2DArray``, ``MarkerArray`` (camera-frame
  outlines and labels, one pair per confirmed track; with camera_info the node draws 3-D boxes
  instead, the same number of markers);
* ``three_d_cost_ms``: placement on the ground plane, ``camera_info`` again, the points and
  their ``PointCloud2``, the grid and its ``OccupancyGrid``, ``Detection3DArray``;
* ``three_d_depth_cost_ms``: the same with the registered depth image (the sequence's depth as a
  32FC1 ``Image``, decoded and converted as the node does): depth placement and points;
* ``frame_ms``: the Segmenter's own time on the same frames (median of one call per frame, after
  one warm-up call), timed just before the rounds;
* ``obstacle_ratio``, ``three_d_ratio``, ``three_d_depth_ratio``: cost / ``frame_ms``;
* ``ray_table_ms``: a one-off per camera and not in the costs above: the per-pixel ray table of
  (camera, mount) and the grid's cell index (``projection.RayTable``), built once, then cached.

The three costs are timed in interleaved rounds: the objects first (the 3-D outputs need its
tracks), then the two 3-D variants in rotating order; each variant places the frame's tracks
itself. Medians over ``--reps`` rounds; ``p90_ms`` the 90th percentiles; ``cpu_ms`` the medians of
this process's CPU time per step (on a machine shared with other jobs, wall time stretches,
single-threaded CPU time much less). Without vision_msgs (not on PyPI) the two Detection arrays are
skipped, and ``vision_msgs`` says so.

    densehybrid-bench obstacles --json out/bench/obstacles.json
    densehybrid-bench obstacles --quick
"""

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .harness import interleave, median, percentile, seconds, Stopwatch, timed
from .plan import Log, Size, size_name

PROG = 'densehybrid-bench obstacles'
FULL_SIZE: Size = (720, 1280)
QUICK_SIZE: Size = (180, 320)
SEQUENCE_FRAMES = 30         # 48 units of driving at 1.6: the obstacles (30..60 ahead) come near
FIRST_FRAME = 17             # frames 17..21: the nearest obstacles at 2..10 units, others farther
SPEED = 1.6                  # units (= m, the camera is 1 unit high) per frame
CAMERA_FRAME = 'camera_optical_frame'
FRAME_PERIOD_NS = 100_000_000            # header stamps 10 Hz apart


@dataclass
class Frames:
    """The inputs of the rounds: per frame the Segmenter's result and the depth message."""

    results: List[Any]                   # deploy.segmenter.Result (score, semantic)
    depths: List[Any]                    # sensor_msgs/Image 32FC1, metres
    camera: Any                          # core.camera.CameraModel of the frames
    segmenter_seconds: List[float]       # one Segmenter call per frame
    inference_size: Size
    threshold: float
    score_range: Tuple[float, float]
    class_names: List[str]


def back_and_forth(count: int) -> List[int]:
    """One cycle through ``count`` frames and back: 0 1 .. N-1 N-2 .. 1 (then 0 again)."""
    return list(range(count)) + list(range(count - 2, 0, -1))


def camera_info(camera: Any) -> Any:
    """sensor_msgs/CameraInfo of an ideal pinhole ``CameraModel``: P = [K | 0], no distortion."""
    from sensor_msgs.msg import CameraInfo

    k = camera.k
    return CameraInfo(width=camera.width, height=camera.height, distortion_model='plumb_bob',
                      d=[0.0] * 5, k=k.ravel(), r=np.eye(3).ravel(),
                      p=np.concatenate([k, np.zeros((3, 1))], axis=1).ravel())


def load_frames(size: Size, first: int, count: int, seed: int, log: Log) -> Frames:
    """Render ``count`` frames from ``first``, segment each (timed), make their depth messages."""
    from ...core.camera import CameraModel
    from ...data.synthetic import Sequence
    from ...deploy.preprocess import inference_shape
    from ...deploy.segmenter import Segmenter
    from ...ros.conversions import numpy_to_image

    sequence = Sequence(seed, size, max(SEQUENCE_FRAMES, first + count), family='eval',
                        speed=SPEED)
    cam = sequence.camera
    camera = CameraModel(cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)
    log(f'obstacles: rendering frames {first}..{first + count - 1} at {size_name(size)}')
    frames = [sequence[first + k] for k in range(count)]
    segmenter = Segmenter(None, device='cpu')
    segmenter([frames[0].image])                                   # warm-up, not counted
    log(f'obstacles: segmenting {count} frames')
    timings = [timed(lambda f=f: segmenter([f.image])[0]) for f in frames]
    return Frames(
        results=[result for _, result in timings],
        depths=[numpy_to_image(np.ascontiguousarray(f.depth, np.float32), '32FC1')
                for f in frames],
        camera=camera, segmenter_seconds=[t for t, _ in timings],
        inference_size=inference_shape(size, segmenter.inference_size,
                                       segmenter.max_inference_pixels,
                                       segmenter.max_native_width),
        threshold=segmenter.threshold, score_range=tuple(segmenter.score_range),
        class_names=segmenter.class_names)


# What the node builds when every object output is subscribed, in its order.
OBJECT_OUTPUTS = ('anomaly_instances', 'anomaly_detections', 'anomaly_markers')
THREE_D_OUTPUTS = ('camera_info', 'anomaly_points', 'anomaly_grid', 'anomaly_detections_3d')


class NodeOutputs:
    """One camera's object and 3-D outputs, built by the node's own functions, unpublished.

    ``objects`` is the part every frame with object subscribers pays, ``three_d`` the part a
    frame paired with camera_info (and, given, depth) adds.
    """

    def __init__(self, frames: Frames) -> None:
        from ...ros import object_msgs
        from ...ros.obstacle_outputs import obstacle_settings
        from ...ros.params import DEFAULTS
        from ...core.obstacles import Geometry

        self.msgs, self.frames = object_msgs, frames
        self.vision = object_msgs.VISION_MSGS_ERROR is None
        self.settings = obstacle_settings(dict(DEFAULTS, camera_height=1.0),
                                          frames.class_names, None, lambda text: None)
        self.pipeline = self.settings.pipeline()
        self.geometry = Geometry(frames.camera, self.settings.mount, self.settings.grid,
                                 self.settings.cloud_stride)
        self.info = camera_info(frames.camera)
        self.base = self.settings.base_frame

    def objects(self, result: Any, header: Any) -> Tuple[Any, Dict[int, float], List[Any]]:
        """Instances, tracks, track image, Detection2DArray, markers: frame, confidences, msgs."""
        from ...ros.obstacle_outputs import object_messages

        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        frame = self.pipeline.update(result.score, result.semantic, self.frames.threshold, stamp)
        confidences = self.msgs.track_confidences(frame.tracks, self.frames.score_range)
        built = object_messages(frame, header, confidences, self.geometry.camera, self.settings,
                                OBJECT_OUTPUTS, placed=False)
        return frame, confidences, list(built.values())

    def three_d(self, frame: Any, confidences: Dict[int, float], result: Any, header: Any,
                depth_msg: Optional[Any] = None) -> Tuple[np.ndarray, List[Any]]:
        """Placement, camera_info, points, grid, Detection3DArray: (points, msgs)."""
        from ...ros.obstacle_outputs import depth_from_message, three_d_messages

        depth = depth_from_message(depth_msg) if depth_msg is not None else None
        self.pipeline.place(frame, self.geometry, depth)
        built = three_d_messages(frame, self.geometry, result, depth, self.info, header,
                                 confidences, self.settings, THREE_D_OUTPUTS)
        cloud = built['anomaly_points']          # the points as the message carries them
        points = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 5)
        return points, list(built.values())


def ray_table_seconds(outputs: NodeOutputs) -> float:
    """Seconds to build a fresh ray table of the camera and mount and the grid's cell index."""
    from ...core.projection import RayTable

    geometry = outputs.geometry
    return seconds(lambda: RayTable(geometry.camera, geometry.mount).cell_pixels(geometry.grid))


def bench_obstacles(size: Size = FULL_SIZE, reps: int = 30, count: int = 5,
                    first: int = FIRST_FRAME, seed: int = 0,
                    log: Log = lambda text: None) -> Dict[str, Any]:
    """Every figure of the module docstring, with the workload it was measured on."""
    from std_msgs.msg import Header

    if reps < 1 or count < 2 or first < 0 or min(size) < 8:
        raise ValueError(f'need reps >= 1, at least 2 frames, first >= 0 and a size of at '
                         f'least 8 x 8, got reps {reps}, {count} frames from {first}, '
                         f'{size_name(size)}')
    frames = load_frames(size, first, count, seed, log)
    outputs = NodeOutputs(frames)
    order = back_and_forth(count)
    state: Dict[str, Any] = {}
    workload: Dict[str, List[int]] = {'instances': [], 'tracks': [], 'placed': [],
                                      'points': [], 'depth_points': []}

    def record(key: str, value: int) -> None:
        if state.get('timing'):
            workload[key].append(value)

    def header_for(step: int) -> Any:
        header = Header(frame_id=CAMERA_FRAME)
        stamp = (step + 1) * FRAME_PERIOD_NS
        header.stamp.sec, header.stamp.nanosec = stamp // 10 ** 9, stamp % 10 ** 9
        return header

    def objects(i: int) -> Tuple[float, float]:
        k = order[i % len(order)]
        state['step'] = state.get('step', -1) + 1
        header = header_for(state['step'])
        watch = Stopwatch().start()
        frame, confidences, _ = outputs.objects(frames.results[k], header)
        times = watch.lap(), watch.cpu()
        state.update(k=k, header=header, frame=frame, confidences=confidences)
        record('instances', len(frame.instances.instances))
        record('tracks', len(frame.tracks))
        return times

    def three_d(with_depth: bool) -> Callable[[int], Tuple[float, float]]:
        def measure(i: int) -> Tuple[float, float]:
            k = state['k']
            depth = frames.depths[k] if with_depth else None
            watch = Stopwatch().start()
            points, _ = outputs.three_d(state['frame'], state['confidences'], frames.results[k],
                                        state['header'], depth)
            times = watch.lap(), watch.cpu()
            record('depth_points' if with_depth else 'points', len(points))
            if not with_depth:
                record('placed', len(state['frame'].placements))
            return times
        return measure

    measures = [objects, three_d(False), three_d(True)]
    log(f'obstacles: {len(order)} warm-up rounds, then {reps} timed rounds')
    interleave(measures, len(order), pinned=1)            # confirms tracks, builds the table
    state['timing'] = True
    obj, plane, depth = interleave(measures, reps, pinned=1)
    frame_ms = 1e3 * median(frames.segmenter_seconds)
    ray_ms = 1e3 * ray_table_seconds(outputs)
    costs = {'obstacle': obj, 'three_d': plane, 'three_d_depth': depth}
    out: Dict[str, Any] = {
        'size': size_name(size), 'inference_size': size_name(frames.inference_size),
        'frames': list(range(first, first + count)), 'seed': seed, 'reps': reps,
        'frame_ms': frame_ms, 'ray_table_ms': ray_ms,
    }
    for name, values in costs.items():
        wall, cpu = [t for t, _ in values], [c for _, c in values]
        out[f'{name}_cost_ms'] = 1e3 * median(wall)
        out[f'{name}_ratio'] = out[f'{name}_cost_ms'] / frame_ms
        out.setdefault('p90_ms', {})[name] = 1e3 * percentile(wall, 90)
        out.setdefault('cpu_ms', {})[name] = 1e3 * median(cpu)
    out['workload_mean'] = {key: float(np.mean(v)) if v else 0.0 for key, v in workload.items()}
    out['vision_msgs'] = 'installed' if outputs.vision else (
        f'missing, Detection2DArray / Detection3DArray skipped ({outputs.msgs.VISION_MSGS_ERROR})')
    return out


def format_lines(figures: Dict[str, Any]) -> List[str]:
    """Return the figures as the subcommand prints them, one line each."""
    f, w = figures, figures['workload_mean']
    frame = f['frame_ms']
    lines = [f'obstacles at {f["size"]} (frames {f["frames"][0]}..{f["frames"][-1]}, '
             f'{f["reps"]} rounds; per frame {w["instances"]:.1f} instances, {w["tracks"]:.1f} '
             f'confirmed tracks, {w["points"]:.0f} points); Segmenter at {f["inference_size"]}: '
             f'{frame:.0f} ms']
    for key, ratio, label in (
            ('obstacle_cost_ms', 'obstacle_ratio', 'instances + tracks + markers'),
            ('three_d_cost_ms', 'three_d_ratio', '3-D outputs (ground plane)'),
            ('three_d_depth_cost_ms', 'three_d_depth_ratio', '3-D outputs with depth')):
        lines.append(f'  {label + ":":<30} {f[key]:7.2f} ms = {f[ratio]:.4f} of the frame '
                     f'({key})')
    lines.append(f'  {"ray table (once per camera):":<30} {f["ray_table_ms"]:7.1f} ms')
    lines.append('  CPU ms per step: ' + ', '.join(f'{k} {v:.2f}' for k, v in f['cpu_ms'].items()))
    if f['vision_msgs'] != 'installed':
        lines.append(f'  vision_msgs {f["vision_msgs"]}')
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``densehybrid-bench obstacles``."""
    p.add_argument('--size', nargs=2, type=int, metavar=('H', 'W'),
                   help=f'frame size (default {FULL_SIZE[0]} {FULL_SIZE[1]}; quick '
                        f'{QUICK_SIZE[0]} {QUICK_SIZE[1]})')
    p.add_argument('--reps', type=int, help='timed rounds, one frame each (default 30; quick 5)')
    p.add_argument('--frames', type=int, help='consecutive frames visited back and forth '
                                              '(default 5; quick 3)')
    p.add_argument('--first', type=int, default=FIRST_FRAME,
                   help=f'first frame of the sequence (default {FIRST_FRAME})')
    p.add_argument('--seed', type=int, default=0, help='the sequence (default 0)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--quick', action='store_true', help='tiny frames, few rounds (tests)')
    p.add_argument('--json', metavar='FILE', help='write the figures here too')


def run(args: argparse.Namespace) -> int:
    """Run ``densehybrid-bench obstacles``: print the figures and the JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    size = tuple(args.size) if args.size else QUICK_SIZE if args.quick else FULL_SIZE
    try:
        figures = bench_obstacles(
            size, args.reps or (5 if args.quick else 30), args.frames or (3 if args.quick else 5),
            args.first, args.seed, log=lambda text: print(
                f'[{time.monotonic() - start:6.1f} s] {text}', file=sys.stderr, flush=True))
    except (ValueError, ImportError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    figures.update(threads=torch.get_num_threads(), quick=bool(args.quick),
                   load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
                   elapsed_s=time.monotonic() - start)
    print('\n'.join(format_lines(figures)))
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + '\n')
    return 0
