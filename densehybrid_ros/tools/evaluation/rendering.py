"""What densehybrid-eval draws: frame pictures (frames/*.png) and the output bag of result topics.

Both are drawn as the node draws them (``core.outputs.Renderer``): the pictures are named as by
densehybrid-segment, the bag holds the node's result topics for RViz / Foxglove, plus the
frame's label messages (and, with --copy-images, the camera) copied along. The bag is written
where ``destinations`` staged it; a failed write (a full disk) is one error naming
``--output-bag``.
"""

import argparse
import contextlib
from pathlib import Path
import sqlite3
from typing import Dict, Iterator, Optional

import numpy as np

from .results import Results
from .sources import EvalError, RECORDED_PICTURES, Source
from ...core.outputs import needs, OUTPUTS, output_topics, Renderer
from ...core.pictures import write_pictures
from ...data.bag_writer import BagWriter
from ...data.bags import Frame

DRAWN_PICTURES = ('anomaly_heatmap', 'semantic_color', 'open_set_color', 'overlay')


def drawable(name: str, result: Dict[str, np.ndarray], image: Optional[np.ndarray]) -> bool:
    """Whether ``result`` (and the camera image, for the overlay) has what ``name`` needs."""
    have = {key for key, value in result.items() if value is not None}
    return needs([name]) <= have and (name != 'overlay'
                                      or (image is not None and image.ndim == 3))


class ResultWriter:
    """Writes the first ``--pictures`` frames as PNGs and every frame to ``--output-bag``."""

    def __init__(self, args: argparse.Namespace, output: Path, results: Results,
                 source: Source, bag: Optional[Path] = None) -> None:
        """Draw into ``output``/frames and, given ``bag`` (the staged --output-bag), a bag."""
        self.renderer = Renderer(results.palette, results.calibration, args.alpha)
        self.folder = output / 'frames'
        self.pictures_left = args.pictures
        self.source = source
        self.target = args.output_bag
        self.bag: Optional[BagWriter] = None
        if bag is not None:
            with self.writing():
                self.bag = BagWriter(bag, storage=args.bag_storage)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Turn a failed bag write (a full disk) into one EvalError naming the bag."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:       # mcap: ENOSPC; sqlite3: 'disk is full'
            raise EvalError(f'cannot write the output bag {self.target}: '
                            f'{getattr(exc, "strerror", None) or exc}') from None

    def add(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Draw what is due for one frame."""
        if self.pictures_left > 0:
            self.pictures(frame, result)
            self.pictures_left -= 1
        if self.bag is not None:
            with self.writing():
                self.write_bag(frame, result)

    def pictures(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Write the frame's PNGs as frames/INDEX_PICTURE.png, named as by densehybrid-segment."""
        image = frame.arrays.get('image')
        names = [name for name in DRAWN_PICTURES if drawable(name, result, image)]
        rendered = self.renderer.render_all(names, image, result)
        if image is not None and image.ndim == 3:
            rendered['image'] = image
        rendered.update({k: frame.arrays[k] for k in RECORDED_PICTURES if k in frame.arrays})
        write_pictures(self.folder, f'{frame.index:06d}', rendered)

    def write_bag(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Write the node's result topics for one frame, and copy its label messages."""
        base = f'{self.source.namespace}/image'     # one camera: <ns>/densehybrid/<output>
        topics = output_topics([base])[base]
        image = frame.arrays.get('image')
        for name, spec in OUTPUTS.items():
            if drawable(name, result, image):
                self.bag.write_image(topics[name], self.renderer.render(name, image, result),
                                     spec.encoding, frame.stamp, frame.frame_id)
        for role, (msgtype, raw) in frame.raw.items():
            self.bag.write_raw(self.source.topics[role], msgtype, raw, frame.stamp)

    def close(self) -> None:
        """Close the output bag."""
        if self.bag is not None:
            bag, self.bag = self.bag, None
            with self.writing():
                bag.close()
