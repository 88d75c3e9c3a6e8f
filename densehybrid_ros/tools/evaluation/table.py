"""frames.csv of densehybrid-eval: one row per evaluated frame, and merging shards' tables."""

import csv
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from ...data.bags import Frame
from ...core.classes import UNKNOWN_ID
from ...metrics.evaluation import rejection_counts


class FrameTable:
    """frames.csv: one row per evaluated frame, written as it goes (survives Ctrl-C)."""

    COLUMNS = ('index', 'stamp_ns', 'frame_id', 'score_mean', 'score_max', 'unknown_fraction',
               'anomaly_pixels', 'inlier_pixels', 'anomalies_rejected', 'inliers_rejected')

    def __init__(self, path: Path) -> None:
        self.file = path.open('w', newline='')
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.COLUMNS)

    def add(self, frame: Frame, result: Dict[str, np.ndarray]) -> None:
        """Append the row of one frame."""
        score, open_set = result['score'], result.get('open_set')
        anomaly = frame.arrays.get('anomaly')
        row: List[Any] = [frame.index, frame.stamp, frame.frame_id,
                          f'{float(score.mean()):.6g}', f'{float(score.max()):.6g}',
                          '' if open_set is None else f'{(open_set == UNKNOWN_ID).mean():.6g}']
        if anomaly is not None:
            counts = rejection_counts(open_set if open_set is not None
                                      else np.zeros_like(anomaly), anomaly)
            hit_a, ano, hit_i, inl = (int(v) for v in counts)
            row += [ano, inl] + (['', ''] if open_set is None else [hit_a, hit_i])
        else:
            row += [''] * 4
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def merge_tables(paths: Sequence[Path], target: Path) -> int:
    """Concatenate shard frames.csv files ordered by frame index; returns the row count."""
    rows: List[List[str]] = []
    for path in paths:
        if path.is_file():
            with path.open(newline='') as f:
                rows += list(csv.reader(f))[1:]
    rows.sort(key=lambda row: int(row[0]))
    with target.open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(FrameTable.COLUMNS)
        writer.writerows(rows)
    return len(rows)
