"""What one densehybrid-bench run measures: sizes, repetitions, and how figures are named."""

from dataclasses import dataclass
from typing import Callable, Tuple

Size = Tuple[int, int]          # (h, w)
Log = Callable[[str], None]
NUM_CLASSES = 19
THRESHOLD = 0.0                 # any finite value: open-set prediction does its full work


@dataclass(frozen=True)
class Plan:
    """Sizes and repetition counts of one bench run."""

    fps_sizes: Tuple[Size, ...]
    camera_size: Size
    cameras: Tuple[int, ...]
    pairs: int                    # interleaved pairs for hybrid_overhead / flop_utilisation
    reps: int                     # timed runs for the other sizes and batches
    peak_n: int                   # matmul size for the peak
    node_size: Size
    node_frames: int
    conv_reps: int


FULL = Plan(fps_sizes=((512, 1024), (1024, 2048)), camera_size=(288, 512), cameras=(1, 2, 4),
            pairs=4, reps=2, peak_n=2048, node_size=(720, 1280), node_frames=12, conv_reps=15)
QUICK = Plan(fps_sizes=((64, 128), (128, 256)), camera_size=(64, 128), cameras=(1, 2, 4),
             pairs=3, reps=2, peak_n=256, node_size=(90, 160), node_frames=3, conv_reps=3)


def size_name(size: Size) -> str:
    """Name an (h, w) size 'WxH', as figures are named."""
    return f'{size[1]}x{size[0]}'
