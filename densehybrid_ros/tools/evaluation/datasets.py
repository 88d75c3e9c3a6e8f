"""Benchmark folders as frame sources: Fishyscapes Lost&Found, SegmentMeIfYouCan, StreetHazards.

Layouts (the folder given on the command line, or found one level below it):

* ``smiyc``: SegmentMeIfYouCan anomaly track (``dataset_AnomalyTrack``) and obstacle track
  (``dataset_ObstacleTrack``): ``images/<name>.{jpg,png,webp}`` and
  ``labels_masks/<name>_labels_semantic.png`` with 0 inlier, 1 anomaly, 255 void. Only
  frames with a label are evaluated (the test split's labels are withheld).
* ``fishyscapes``: Fishyscapes Lost&Found validation, either as the DenseHybrid authors load
  it (``leftImg8bit/**/<name>_leftImg8bit.png`` and ``ood/**/<name>_ood_segmentation.png``)
  or as ``images/<name>.png`` and ``labels/<name>[_labels|_mask].png``; 0 inlier, 1 anomaly,
  any other value (2, 255) void.
* ``streethazards``: ``[test/]images/test/<town>/<n>.png`` and
  ``[test/]annotations/test/<town>/<n>.png`` with StreetHazards ids 1..14, mapped as the
  DenseHybrid authors' loader does: 14 = anomaly, 4 ('other') = void; semantic labels are the
  12 remaining classes (1-3 -> 0-2, 5-13 -> 3-11) and are used only by a 12-class model.
"""

from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ...data.bags import Frame

IMAGE_EXT = ('.png', '.jpg', '.jpeg', '.webp')
LAYOUTS = ('smiyc', 'fishyscapes', 'streethazards')
STREETHAZARDS_ANOMALY, STREETHAZARDS_OTHER, STREETHAZARDS_CLASSES = 14, 4, 12
FRAME_PERIOD_NS = 100_000_000          # stamps given to folder frames (10 Hz)


class BenchmarkError(ValueError):
    """A benchmark folder that cannot be read as asked."""


def _images(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob('*') if p.suffix.lower() in IMAGE_EXT)


def _layout_root(root: Path) -> Optional[Tuple[str, Path]]:
    if (root / 'images').is_dir() and (root / 'labels_masks').is_dir():
        return 'smiyc', root
    for base in (root, root / 'test'):
        if (base / 'images' / 'test').is_dir() and (base / 'annotations' / 'test').is_dir():
            return 'streethazards', base
    if ((root / 'images').is_dir() and (root / 'labels').is_dir()) or \
            ((root / 'leftImg8bit').is_dir() and (root / 'ood').is_dir()):
        return 'fishyscapes', root
    return None


def detect_layout(root: Path) -> Optional[Tuple[str, Path]]:
    """(layout, folder) of a benchmark folder or of its single recognised sub-folder."""
    found = _layout_root(root)
    if found or not root.is_dir():
        return found
    below = [f for f in (_layout_root(d) for d in sorted(root.iterdir()) if d.is_dir()) if f]
    return below[0] if len(below) == 1 else None


def smiyc_track(layout: str, root: Path) -> str:
    """Return the SegmentMeIfYouCan track that scores a benchmark folder: obstacle or anomaly.

    SMIYC scores its ObstacleTrack and LostAndFound data with the obstacle track's component
    size filters, everything else with the anomaly track's; the folder name tells them apart
    (``dataset_ObstacleTrack``, ``dataset_LostAndFound``).
    """
    name = root.name.lower()
    return 'obstacle' if layout == 'smiyc' and ('obstacle' in name or 'lostandfound' in name) \
        else 'anomaly'


def pairs(layout: str, root: Path) -> List[Tuple[Path, Optional[Path]]]:
    """(image, label or None) file pairs of a benchmark folder, sorted by image path."""
    out: List[Tuple[Path, Optional[Path]]] = []
    if layout == 'smiyc':
        for image in _images(root / 'images'):
            label = root / 'labels_masks' / f'{image.stem}_labels_semantic.png'
            out.append((image, label if label.is_file() else None))
    elif layout == 'fishyscapes' and (root / 'ood').is_dir():
        images = root / 'leftImg8bit'
        for image in _images(images):
            name = image.name.replace('_leftImg8bit', '_ood_segmentation')
            label = root / 'ood' / image.relative_to(images).parent / Path(name).with_suffix(
                '.png').name
            out.append((image, label if label.is_file() else None))
    elif layout == 'fishyscapes':
        labels = {p.stem: p for p in _images(root / 'labels')}
        for image in _images(root / 'images'):
            label = next((labels[image.stem + s] for s in ('', '_labels', '_mask', '_gt')
                          if image.stem + s in labels), None)
            out.append((image, label))
    elif layout == 'streethazards':
        images, annotations = root / 'images' / 'test', root / 'annotations' / 'test'
        for image in _images(images):
            label = annotations / image.relative_to(images).with_suffix('.png')
            out.append((image, label if label.is_file() else None))
    else:
        raise BenchmarkError(f'unknown layout {layout!r}; choose from {LAYOUTS}')
    return out


def _read(path: Path, color: bool) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if array is None:
        raise BenchmarkError(f'cannot read {path} (missing, truncated or not an image)')
    if color:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if array.ndim == 3:           # a label saved as RGB(A) with equal channels
        array = array[..., 0]
    return array


def load_labels(layout: str, path: Path) -> Dict[str, np.ndarray]:
    """Label arrays of one frame: ``anomaly`` (0/1/255) and, for StreetHazards, ``label``."""
    raw = _read(path, color=False)
    if layout != 'streethazards':
        return {'anomaly': raw.astype(np.uint8)}
    raw = raw.astype(np.int32)
    anomaly = np.where(raw == STREETHAZARDS_ANOMALY, 1,
                       np.where(raw == STREETHAZARDS_OTHER, 255, 0))
    label = np.where((raw >= 1) & (raw < STREETHAZARDS_OTHER), raw - 1,
                     np.where((raw > STREETHAZARDS_OTHER) & (raw < STREETHAZARDS_ANOMALY),
                              raw - 2, 255))
    return {'anomaly': anomaly.astype(np.uint8), 'label': label.astype(np.uint8)}


def frames(layout: str, root: Path, select: Optional[Callable[[int], bool]] = None,
           labelled_only: bool = True, stats: Optional[Dict[str, int]] = None
           ) -> Iterator[Frame]:
    """Frames of a benchmark folder (frames without labels skipped when ``labelled_only``).

    The folder is checked at once (empty folder, no labels); images are read lazily.
    """
    stats = stats if stats is not None else {}
    found = pairs(layout, root)
    if not found:
        raise BenchmarkError(f'{root} ({layout} layout) holds no images')
    if labelled_only:
        stats['unlabelled_skipped'] = sum(1 for _, label in found if label is None)
        found = [(image, label) for image, label in found if label is not None]
        if not found:
            raise BenchmarkError(f'{root} ({layout} layout): no image has a label file')
    return _read_frames(layout, found, select)


def _read_frames(layout: str, found: List[Tuple[Path, Optional[Path]]],
                 select: Optional[Callable[[int], bool]]) -> Iterator[Frame]:
    for index, (image_path, label_path) in enumerate(found):
        if select is not None and not select(index):
            continue
        arrays = {'image': _read(image_path, color=True)}
        if label_path is not None:
            arrays.update(load_labels(layout, label_path))
        yield Frame(index, index * FRAME_PERIOD_NS, image_path.stem, arrays)
