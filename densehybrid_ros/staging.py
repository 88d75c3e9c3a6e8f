"""Results folders that are never half-overwritten: write elsewhere, move in on success.

A tool writes its files into :func:`staged_folder`'s temporary sibling folder; only when the
``with`` block ends without an exception are they moved into the real folder, one entry at a
time (a sub-folder such as ``frames/`` replaces the old one whole, so no stale picture of an
earlier run stays next to the new ones). On an exception the temporary folder is deleted and
the real one is left exactly as it was. Files in the real folder that the run did not write
stay: the folder may hold other things (``--output .``).
"""

import contextlib
import os
from pathlib import Path
import shutil
import tempfile
from typing import Iterator, Union


@contextlib.contextmanager
def staged_folder(target: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; move its entries into ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling, so the moves stay on one file system (a rename each, no copying).
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial-', dir=target.parent))
    try:
        yield staging
        target.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(entry, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
