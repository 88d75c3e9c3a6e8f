"""densehybrid-make-bag: write a rosbag2 of synthetic road scenes with anomalies and labels.

Without --sequence the frames are unrelated scenes; with --sequence they are one street seen
from a camera driving along it, so the same obstacles approach over many frames, with ground
truth for tracking and 3-D placement.

Topics (all with the same header stamp and frame_id per frame):
  <ns>/image              sensor_msgs/Image rgb8 (or <ns>/image/compressed, CompressedImage,
                          with --image-format jpeg|png)
  <ns>/semantic_label     sensor_msgs/Image mono8, Cityscapes train ids, 255 = ignore
  <ns>/anomaly_label      sensor_msgs/Image mono8, 0 inlier, 1 anomaly, 255 void
With --sequence, also:
  <ns>/anomaly_instances  sensor_msgs/Image mono16, obstacle id (the same in every frame), 0 none
  <ns>/depth              sensor_msgs/Image 32FC1, metres (= generator units) along the optical
                          axis; +inf where the ray meets nothing (sky), NaN void (hood)
  <ns>/camera_info        sensor_msgs/CameraInfo: K, P = [K | 0], plumb_bob with zero D
  <ns>/ground_truth       std_msgs/String, JSON: header (stamp, frame_id), the camera pose and
                          mount (1 unit above the ground, level: base frame x = range,
                          y = -lateral, z up) and every obstacle's id, world x / z, range,
                          lateral, size, on_road, pixels, visible, contact pixel, base position

The bag is written into a hidden folder next to --output and moved there when complete, so
--output never holds a half-written bag; Ctrl-C stops early and keeps the frames written so far
(a complete, shorter bag).
"""

import argparse
import json
from pathlib import Path
import sqlite3
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ...data.bag_staging import staged_bag
from ...data.bag_writer import array_to_compressed, BagWriter, message, STORAGES
from ...data.bags import BagError, CAMERA_INFO_TYPE, SEQUENCE_NAMES, STRING_TYPE

EXAMPLE = '''example:
  densehybrid-make-bag --output out/sample_bag                     # 20 frames, mcap
  densehybrid-make-bag --output out/sample.db3 --storage sqlite3 --frames 100 \\
      --size 512 1024 --rate 5 --seed 2000000 --image-format jpeg
  densehybrid-eval out/sample_bag --output out/eval                 # then evaluate it
  densehybrid-make-bag --sequence --output out/sequence_bag --frames 100 --size 288 512 \\
      --family voronoi --speed 0.7 --yaw-rate 0.001 --fps 10        # one drive, ground truth
'''
START_S = 1_700_000_000          # first header stamp (seconds), fixed so bags are reproducible
LABEL_TOPIC, ANOMALY_TOPIC, IMAGE_TOPIC = 'semantic_label', 'anomaly_label', 'image'
SCENE_SIZE = (512, 1024)         # H, W: the scale the embedded model was trained at (the demo's)
FRAMES, SEQUENCE_FRAMES = 20, 100  # default --frames without and with --sequence
INSTANCE_TOPIC, DEPTH_TOPIC, INFO_TOPIC, TRUTH_TOPIC = (
    SEQUENCE_NAMES[k] for k in ('instances', 'depth', 'camera_info', 'truth'))
CAMERA_HEIGHT = 1.0              # the generator's camera: one unit above the ground, level


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-make-bag."""
    parser = argparse.ArgumentParser(prog='densehybrid-make-bag', description=__doc__,
                                     epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default='out/sample_bag',
                        help='bag to write (a folder; default: out/sample_bag)')
    parser.add_argument('--storage', default='mcap', choices=STORAGES,
                        help='rosbag2 storage plugin (default: mcap)')
    parser.add_argument('--frames', type=int, default=None,
                        help=f'number of frames (default {FRAMES}; {SEQUENCE_FRAMES} with '
                             '--sequence)')
    parser.add_argument('--size', type=int, nargs=2, default=SCENE_SIZE, metavar=('H', 'W'),
                        help='image size (default: %d %d, the scale of the embedded model)'
                        % SCENE_SIZE)
    parser.add_argument('--rate', '--fps', type=float, default=10.0,
                        help='frames per second: header stamps (default 10)')
    parser.add_argument('--seed', type=int, default=None,
                        help='first scene seed (default: the evaluation split start, so the '
                             'scenes are never training scenes)')
    parser.add_argument('--namespace', default='/camera', help='topic namespace (default /camera)')
    parser.add_argument('--frame-id', default='camera', help='header frame_id (default camera)')
    parser.add_argument('--anomaly-family', default='eval', choices=['eval', 'train', 'none'],
                        help='anomaly family pasted into scenes (default: eval, unseen in '
                             'training)')
    parser.add_argument('--image-format', default='raw', choices=['raw', 'jpeg', 'png'],
                        help='camera topic as raw Image or CompressedImage (default raw)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    sequence = parser.add_argument_group('sequences (--sequence)')
    sequence.add_argument('--sequence', action='store_true',
                          help='write one drive through one street world, with instance ids, '
                               'depth, camera_info and ground truth (see above)')
    sequence.add_argument('--family', default=None,
                          help="obstacles' anomaly family: eval (default), voronoi, fractal, "
                               'glyph or solids, held out from training; or train, varied')
    sequence.add_argument('--speed', type=float, default=None,
                          help='camera speed, generator units per frame (default 0.7)')
    sequence.add_argument('--yaw-rate', type=float, default=None,
                          help='heading change, radians per frame (default 0.001)')
    sequence.add_argument('--hood', action='store_true', default=None,
                          help='draw an ego-vehicle hood: void (255) labels, no instance, NaN '
                               'depth')
    parser.add_argument('--json', help='write a summary JSON here')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def write_sample_bag(output: str, frames: int = FRAMES, size=SCENE_SIZE, rate: float = 10.0,
                     seed: Optional[int] = None, namespace: str = '/camera',
                     frame_id: str = 'camera', storage: str = 'mcap',
                     anomaly_family: Optional[str] = 'eval', image_format: str = 'raw',
                     overwrite: bool = False, progress: bool = False) -> Dict:
    """Write the sample bag; returns a summary (topics, frames, stamps, pixels)."""
    from ...data.synthetic import EVAL_SEED_START, make_scene
    if frames < 1:
        raise ValueError(f'--frames must be >= 1, got {frames}')
    if not rate > 0:
        raise ValueError(f'--rate must be > 0, got {rate}')
    seed = EVAL_SEED_START if seed is None else seed
    topics = _topics(namespace, image_format)
    period = int(round(1e9 / rate))
    anomaly_pixels = 0
    with staged_bag(output, overwrite) as path, BagWriter(path, storage=storage) as bag:
        for i in tqdm(range(frames), desc='scenes', unit='frame', disable=not progress):
            scene = make_scene(seed + i, tuple(size), anomaly_family=anomaly_family)
            stamp = START_S * 1_000_000_000 + i * period
            _write_camera(bag, topics[IMAGE_TOPIC], scene['image'], image_format, stamp,
                          frame_id)
            bag.write_image(topics[LABEL_TOPIC], scene['label'], 'mono8', stamp, frame_id)
            bag.write_image(topics[ANOMALY_TOPIC], scene['anomaly'], 'mono8', stamp, frame_id)
            anomaly_pixels += int((scene['anomaly'] == 1).sum())
    return {'output': str(Path(output)), 'storage': storage, 'frames': frames,
            'size': list(size), 'rate': rate, 'first_seed': seed, 'topics': topics,
            'first_stamp_ns': START_S * 1_000_000_000, 'anomaly_pixels': anomaly_pixels}


def write_sequence_bag(output: str, frames: int = SEQUENCE_FRAMES, size=SCENE_SIZE,
                       rate: float = 10.0, seed: Optional[int] = None, family: str = 'eval',
                       speed: float = 0.7, yaw_rate: float = 0.001,
                       namespace: str = '/camera', frame_id: str = 'camera',
                       storage: str = 'mcap', image_format: str = 'raw',
                       overwrite: bool = False, progress: bool = False,
                       hood: bool = False) -> Dict:
    """Write one synthetic sequence with its ground truth; returns a summary.

    The topics are listed in the module docstring; ``seed`` (default: the evaluation split
    start) picks the street world, ``family`` its obstacles, ``speed`` / ``yaw_rate`` the drive,
    ``hood`` draws an ego-vehicle hood (void).
    """
    from ...data.synthetic import EVAL_SEED_START, Sequence
    if frames < 1:
        raise ValueError(f'--frames must be >= 1, got {frames}')
    if not rate > 0:
        raise ValueError(f'--rate must be > 0, got {rate}')
    seed = EVAL_SEED_START if seed is None else seed
    sequence = Sequence(seed, tuple(size), frames, family, speed=speed, yaw_rate=yaw_rate,
                        hood=hood)
    topics = _topics(namespace, image_format, (INSTANCE_TOPIC, DEPTH_TOPIC, INFO_TOPIC,
                                               TRUTH_TOPIC))
    period = int(round(1e9 / rate))
    anomaly_pixels, seen = 0, set()
    with staged_bag(output, overwrite) as path, BagWriter(path, storage=storage) as bag:
        for frame in tqdm(sequence, total=frames, desc='frames', unit='frame',
                          disable=not progress):
            stamp = START_S * 1_000_000_000 + frame.index * period
            _write_camera(bag, topics[IMAGE_TOPIC], frame.image, image_format, stamp, frame_id)
            bag.write_image(topics[LABEL_TOPIC], frame.label, 'mono8', stamp, frame_id)
            bag.write_image(topics[ANOMALY_TOPIC], frame.anomaly, 'mono8', stamp, frame_id)
            bag.write_image(topics[INSTANCE_TOPIC], frame.instances, 'mono16', stamp, frame_id)
            bag.write_image(topics[DEPTH_TOPIC], frame.depth, '32FC1', stamp, frame_id)
            camera = frame.camera
            bag.write(topics[INFO_TOPIC], camera_info_message(
                camera.matrix, camera.width, camera.height, stamp, frame_id))
            bag.write(topics[TRUTH_TOPIC], json_message(frame_truth(frame), stamp, frame_id),
                      stamp)
            anomaly_pixels += int((frame.anomaly == 1).sum())
            seen.update(o.id for o in frame.objects if o.visible)
    return {'output': str(Path(output)), 'storage': storage, 'frames': frames,
            'size': list(size), 'rate': rate, 'seed': seed, 'family': family,
            'speed': speed, 'yaw_rate': yaw_rate, 'hood': hood, 'topics': topics,
            'first_stamp_ns': START_S * 1_000_000_000, 'anomaly_pixels': anomaly_pixels,
            'objects': len(sequence.world.obstacles), 'objects_seen': len(seen)}


def frame_truth(frame: Any) -> Dict[str, Any]:
    """Ground truth of one ``SequenceFrame`` as JSON-ready data (the ground_truth topic).

    Units are the generator's (one unit = the camera height; metres in the depth image).
    ``camera.mount``: the camera stands ``CAMERA_HEIGHT`` above the base origin, level, looking
    along base x, so an object's base-frame position is ``(range, -lateral, 0)`` (``base``).
    """
    camera, pose = frame.camera, frame.pose
    objects = []
    for obj in frame.objects:
        objects.append({
            'id': int(obj.id), 'x': obj.x, 'z': obj.z, 'range': obj.range,
            'lateral': obj.lateral, 'distance': obj.distance, 'width': obj.width,
            'height': obj.height, 'on_road': bool(obj.on_road), 'pixels': int(obj.pixels),
            'footprint': int(obj.footprint), 'visible': bool(obj.visible),
            'contact': None if obj.contact is None else [float(v) for v in obj.contact],
            'base': [obj.range, -obj.lateral, 0.0]})
    return {'frame': int(frame.index),
            'camera': {'pose': {'x': pose.x, 'z': pose.z, 'yaw': pose.yaw},
                       'mount': {'height': CAMERA_HEIGHT, 'roll': 0.0, 'pitch': 0.0,
                                 'yaw': 0.0, 'x': 0.0, 'y': 0.0},
                       'k': [float(v) for v in camera.matrix.ravel()],
                       'width': int(camera.width), 'height': int(camera.height)},
            'objects': objects}


def camera_info_message(k: np.ndarray, width: int, height: int, stamp: int,
                        frame_id: str = '') -> Any:
    """Build the sensor_msgs/CameraInfo of an ideal pinhole ``k`` (3 x 3).

    As a rectified monocular camera publishes it: P = [K | 0], plumb_bob with five zero
    coefficients, identity R, no binning, full-image ROI.
    """
    k = np.asarray(k, np.float64).reshape(3, 3)
    roi = message('sensor_msgs/msg/RegionOfInterest', x_offset=0, y_offset=0, height=0,
                  width=0, do_rectify=False)
    return message(CAMERA_INFO_TYPE, stamp, frame_id, height=int(height), width=int(width),
                   distortion_model='plumb_bob', d=np.zeros(5), k=k.ravel(),
                   r=np.eye(3).ravel(), p=np.hstack([k, np.zeros((3, 1))]).ravel(),
                   binning_x=0, binning_y=0, roi=roi)


def json_message(payload: Dict[str, Any], stamp: int, frame_id: str = '') -> Any:
    """Build a std_msgs/String of JSON: ``payload`` plus a ``header`` (stamp, frame_id).

    std_msgs/String has no header of its own: ``data.bags.BagReader.frames`` takes the stamp
    from the JSON's to join it with the images of that stamp.
    """
    header = {'stamp': {'sec': int(stamp // 1_000_000_000),
                        'nanosec': int(stamp % 1_000_000_000)}, 'frame_id': frame_id}
    return message(STRING_TYPE, data=json.dumps({'header': header, **payload},
                                                allow_nan=False))


def _topics(namespace: str, image_format: str, extra: Tuple[str, ...] = ()) -> Dict[str, str]:
    """Topic names by role: camera image, labels and ``extra`` names under the namespace."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{k}' for k in (IMAGE_TOPIC, LABEL_TOPIC, ANOMALY_TOPIC) + extra}
    if image_format != 'raw':                 # image_transport naming for compressed images
        topics[IMAGE_TOPIC] += '/compressed'
    return topics


def _write_camera(bag: BagWriter, topic: str, image: Any, image_format: str, stamp: int,
                  frame_id: str) -> None:
    """Write the camera image raw (rgb8) or compressed."""
    if image_format == 'raw':
        bag.write_image(topic, image, 'rgb8', stamp, frame_id)
    else:
        bag.write(topic, array_to_compressed(image, image_format, stamp, frame_id))


def _sequence_only(args: argparse.Namespace) -> None:
    """Refuse the sequence options without --sequence."""
    given = [name for name in ('family', 'speed', 'yaw_rate', 'hood')
             if getattr(args, name) is not None]
    if given and not args.sequence:
        names = ', '.join('--' + n.replace('_', '-') for n in given)
        raise ValueError(f'{names}: only with --sequence')


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        _sequence_only(args)
        if args.sequence:
            summary = write_sequence_bag(
                args.output, SEQUENCE_FRAMES if args.frames is None else args.frames,
                tuple(args.size), args.rate, args.seed, args.family or 'eval',
                0.7 if args.speed is None else args.speed,
                0.001 if args.yaw_rate is None else args.yaw_rate, args.namespace,
                args.frame_id, args.storage, args.image_format, args.overwrite,
                progress=not args.quiet, hood=bool(args.hood))
        else:
            summary = write_sample_bag(
                args.output, FRAMES if args.frames is None else args.frames, tuple(args.size),
                args.rate, args.seed, args.namespace, args.frame_id, args.storage,
                None if args.anomaly_family == 'none' else args.anomaly_family,
                args.image_format, args.overwrite, progress=not args.quiet)
    except (BagError, ValueError) as exc:
        print(f'densehybrid-make-bag: error: {exc}', file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:    # a full disk: the staged bag is already gone
        print(f'densehybrid-make-bag: error: cannot write {args.output}: '
              f'{getattr(exc, "strerror", None) or exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:        # the writer closed the bag on the way out: it is readable
        print(f'\ndensehybrid-make-bag: interrupted; {args.output} holds the frames written '
              f'so far', file=sys.stderr)
        return 130
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + '\n')
    print(f'wrote {summary["frames"]} frames to {summary["output"]} ({args.storage}): '
          + ', '.join(summary['topics'].values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
