"""Cityscapes-format data set folders, checked before training starts.

Images ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with labels
``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (train ids, 255 = ignore).

The folder is checked when the data set is built (every image has a label of the same size), so a
bad folder fails before any training starts, with a message naming the offending file.
"""

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image
from torch.utils.data import Dataset

IMAGE_SUFFIX = '_leftImg8bit.png'
LABEL_SUFFIX = '_gtFine_labelTrainIds.png'


class DatasetError(ValueError):
    """A data set folder that cannot be used; the message says what is wrong and where."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f'cannot read image {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_map(path: Union[str, Path]) -> np.ndarray:
    """Read a single-channel label/mask PNG as HxW uint8 (or the file's integer type)."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DatasetError(f'cannot read label {path}')
    if m.ndim == 3:
        raise DatasetError(f'label {path} has {m.shape[2]} channels; expected a single-channel '
                           f'train-id PNG ({LABEL_SUFFIX})')
    return m


def _size(path: Path) -> Tuple[int, int]:
    with Image.open(path) as im:          # reads the header only
        return im.size


class CityscapesFolder(Dataset):
    """One split of a Cityscapes-format folder; items are numpy samples (or ``transform``'s).

    ``num_classes`` bounds the valid train ids; other values than those and 255 raise on load.
    """

    def __init__(self, root: Union[str, Path], split: str = 'train', num_classes: int = 19,
                 transform: Optional[Callable[[Dict], Dict]] = None,
                 check_sizes: bool = True) -> None:
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.transform = transform
        image_dir = self.root / 'leftImg8bit' / split
        label_dir = self.root / 'gtFine' / split
        if not self.root.is_dir():
            raise DatasetError(f'data set folder not found: {self.root}')
        if not image_dir.is_dir():
            raise DatasetError(f'{self.root} has no leftImg8bit/{split}/ folder '
                               f'(expected leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX})')
        self.images = sorted(image_dir.glob(f'*/*{IMAGE_SUFFIX}'))
        if not self.images:
            raise DatasetError(f'{image_dir} holds no <city>/*{IMAGE_SUFFIX} images')
        self.labels: List[Path] = []
        missing = []
        for img in self.images:
            stem = img.name[:-len(IMAGE_SUFFIX)]
            lab = label_dir / img.parent.name / (stem + LABEL_SUFFIX)
            if not lab.is_file():
                missing.append(lab)
            self.labels.append(lab)
        if missing:
            more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
            raise DatasetError(f'{len(missing)} of {len(self.images)} images in {image_dir} have '
                               f'no label: {missing[0]} is missing{more}')
        if check_sizes:
            for img, lab in zip(self.images, self.labels):
                si, sl = _size(img), _size(lab)
                if si != sl:
                    raise DatasetError(f'size mismatch: {img} is {si[0]}x{si[1]} but its label '
                                       f'{lab} is {sl[0]}x{sl[1]}')

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Dict[str, np.ndarray]:
        """Load the raw numpy sample: ``image`` HxWx3 uint8 RGB, ``label`` HxW uint8."""
        image = read_image(self.images[index])
        label = read_map(self.labels[index])
        if label.shape != image.shape[:2]:
            raise DatasetError(f'size mismatch: {self.images[index]} vs {self.labels[index]}')
        bad = (label >= self.num_classes) & (label != 255)
        if bad.any():
            raise DatasetError(f'{self.labels[index]} holds train id {int(label[bad].max())}, '
                               f'outside 0..{self.num_classes - 1} and 255')
        return {'image': image, 'label': label.astype(np.uint8), 'name': self.images[index].name}

    def __getitem__(self, index: int) -> Dict:
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample
