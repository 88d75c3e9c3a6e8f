"""Result pictures on disk, named one way by every tool: ``<stem>_<picture>.png``.

densehybrid-segment and densehybrid-eval both write these (segment: one stem per input file,
eval: the frame index), so the same picture has the same name whichever tool drew it.
"""

import os
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

# The input image and the node's colour outputs (as ``outputs.Renderer`` draws them).
PICTURES = ('image', 'semantic_color', 'anomaly_heatmap', 'open_set_color', 'overlay')


def picture_path(folder: Path, stem: str, picture: str) -> Path:
    """Path of one picture: ``folder/<stem>_<picture>.png``."""
    if picture not in PICTURES:
        raise ValueError(f'unknown picture {picture!r}; choose from {PICTURES}')
    return Path(folder) / f'{stem}_{picture}.png'


def write_pictures(folder: Path, stem: str, pictures: Dict[str, np.ndarray]) -> List[Path]:
    """Write the RGB pictures among ``PICTURES`` as PNGs (others are ignored); returns paths."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    written = []
    for picture in PICTURES:
        if pictures.get(picture) is not None:
            path = picture_path(folder, stem, picture)
            if not cv2.imwrite(str(path), cv2.cvtColor(pictures[picture], cv2.COLOR_RGB2BGR)):
                raise OSError(f'cannot write {path}')
            written.append(path)
    return written


def unique_stems(paths: Sequence[str]) -> List[str]:
    """File stems that tell the inputs apart: ``a/x.png b/x.jpg`` -> ``a_x``, ``b_x``.

    Stems shared by files of one folder take the extension (``x_png``, ``x_jpg``); stems still
    shared take as many parent folders as they need; a file given twice, its position.
    """
    full = [Path(os.path.abspath(p)) for p in paths]
    base = [f.stem for f in full]
    for i in _clashing([str(f.with_suffix('')) for f in full]):
        base[i] += '_' + (full[i].suffix.lstrip('.') or 'noext')
    for i in _clashing([str(f) for f in full]):          # one file given twice
        base[i] += f'_{i}'
    stems = list(base)
    for depth in range(1, max((len(f.parent.parts) for f in full), default=0) + 1):
        clashing = _clashing(stems)
        if not clashing:
            break
        for i in clashing:
            stems[i] = '_'.join([*full[i].parent.parts[-depth:], base[i]]).lstrip('/_')
    return stems


def _clashing(stems: List[str]) -> List[int]:
    return [i for i, s in enumerate(stems) if stems.count(s) > 1]
