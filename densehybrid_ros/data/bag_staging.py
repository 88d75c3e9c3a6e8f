"""A bag written elsewhere and moved into place whole: a bag path never holds a half-written bag.

:func:`staged_bag` gives a writer (``bag_writer.BagWriter``) a path in a hidden sibling folder
of the target and replaces the target by the finished bag, so a failed run (a full disk, a bad
frame) leaves an earlier bag byte for byte as it was. densehybrid-make-bag writes its sample
bags through it and densehybrid-eval its ``--output-bag``. Results folders, which are merged
entry by entry instead of replaced, are ``core.staging.staged_folder``; both clean up after
killed runs with ``core.staging.remove_leftovers``.
"""

import contextlib
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Iterator, Union

from .bags import BagError
from ..core.staging import remove_leftovers

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def staged_bag(output: PathLike, overwrite: bool = False,
               interrupt_keeps: bool = True) -> Iterator[Path]:
    """Yield a path in a hidden sibling folder of ``output``; the bag there replaces ``output``.

    It moves in when the block ends without an exception (and, with ``interrupt_keeps``, on
    KeyboardInterrupt: the writer closed a readable, shorter bag); on any other exception it is
    deleted and ``output`` stays as it was. An existing ``output`` is refused unless
    ``overwrite`` (BagError), and never replaced when it is a non-empty folder that is not a
    rosbag2. The hidden folder's name carries the process id: the next run deletes those of
    killed runs.
    """
    target = Path(output)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise BagError(f'{target} exists; remove it or pass --overwrite')
        if target.is_dir() and not (target / 'metadata.yaml').exists() \
                and any(target.iterdir()):
            raise BagError(f'refusing to overwrite {target}: it is a non-empty folder that is '
                           f'not a rosbag2')
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, re.compile(
        rf'^\.{re.escape(target.name)}\.partial-(?P<pid>\d+)-'))
    # A sibling (one file system: a rename) holding a bag of the target's name, so the files in
    # it are named as if written in place (rosbags names them after the bag folder).
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial-{os.getpid()}-',
                                    dir=target.parent))
    bag = staging / target.name
    try:
        try:
            yield bag
        except KeyboardInterrupt:
            if interrupt_keeps and bag.exists():
                _move_in(bag, target, staging)
            raise
        _move_in(bag, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(bag: Path, target: Path, staging: Path) -> None:
    """Replace ``target`` by ``bag`` (the old one goes to ``staging`` first, then away)."""
    if target.exists() or target.is_symlink():
        old = staging / 'replaced'
        os.replace(target, old)
    os.replace(bag, target)
