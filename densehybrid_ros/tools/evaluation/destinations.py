"""Where a densehybrid-eval run writes, and the rule that keeps earlier results whole.

Every target is staged next to itself and moved in only when the run succeeds (or is stopped with
Ctrl-C: the finished frames are a result, exit 130): the ``--output`` folder
(``core.staging.staged_folder``) and the ``--output-bag`` (``data.bag_staging.staged_bag``:
replaced whole, only with ``--overwrite``). A run that fails leaves every target as it was, byte
for byte, on any error, a full disk included. When a broken message cuts the input short after some
frames, those frames were evaluated but the run still failed (exit 2): their results go to
``<output>.partial`` (and ``<output-bag>.partial``), replacing the previous partial results whole,
and the error line names the folder. An output that is an input, holds one or lies inside one is
refused before anything runs.
"""

import argparse
import contextlib
import errno
import os
from pathlib import Path
import shutil
from typing import Dict, Iterator, Optional, Sequence

from .sources import EvalError
from ...core.staging import staged_folder
from ...data.bag_staging import staged_bag

PARTIAL_SUFFIX = '.partial'
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def partial_path(target: os.PathLike) -> Path:
    """Where a run cut short by broken input leaves the results of ``target``."""
    target = Path(target)
    return target.with_name(target.name + PARTIAL_SUFFIX)


def overlap(a: os.PathLike, b: os.PathLike) -> bool:
    """Whether two paths are the same (links resolved) or one lies inside the other."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_outputs(inputs: Sequence[Optional[str]], outputs: Dict[str, Optional[str]]) -> None:
    """Refuse (EvalError) an output that would overwrite or write into an input.

    ``inputs``: paths (None: not given); ``outputs``: option name -> path (None: not given).
    """
    for name, out in outputs.items():
        for given in inputs:
            if out and given and overlap(out, given):
                raise EvalError(f'{name} {out} would overwrite or write into the input '
                                f'{given}; write the results elsewhere')


@contextlib.contextmanager
def staged_outputs(args: argparse.Namespace) -> Iterator['Destinations']:
    """Stage ``--output`` and ``--output-bag``; move them in when the block ends cleanly."""
    check_outputs([args.input], {'--output': args.output, '--output-bag': args.output_bag,
                                 '--json': args.json,
                                 '--calibrated-checkpoint': args.calibrated_checkpoint})
    check_outputs([args.checkpoint], {      # the checkpoint is never written (its folder may be)
        '--output-bag': args.output_bag, '--json': args.json,
        '--calibrated-checkpoint': args.calibrated_checkpoint})
    folder = None
    try:
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(staged_folder(args.output))
            bag = stack.enter_context(staged_bag(args.output_bag, args.overwrite,
                                                 interrupt_keeps=False)) \
                if args.output_bag else None
            yield Destinations(args, folder, bag)
    except OSError as exc:             # writing the results: say where they were going
        text = str(exc) if folder is None else str(exc).replace(str(folder), str(args.output))
        if exc.errno in FULL_DISK:
            text = f'cannot write the results to {args.output}: {exc.strerror}'
        elif text == str(exc):
            raise
        raise EvalError(text) from None


class Destinations:
    """The staged places of one run: ``folder`` (for ``--output``) and ``bag`` (or None)."""

    def __init__(self, args: argparse.Namespace, folder: Path, bag: Optional[Path]) -> None:
        self.args = args
        self.folder = folder
        self.bag = bag

    def keep_partial(self) -> Path:
        """Move the staged results to ``<output>.partial`` (and the bag's); returns the folder.

        Call it before raising the run's error: the targets themselves stay untouched.
        """
        folder = partial_path(self.args.output)
        replace_whole(folder)
        folder.mkdir()
        for entry in sorted(self.folder.iterdir()):
            os.replace(entry, folder / entry.name)
        if self.bag is not None and self.bag.exists():
            bag = partial_path(self.args.output_bag)
            replace_whole(bag)
            os.replace(self.bag, bag)
        return folder


def replace_whole(path: Path) -> None:
    """Delete an earlier partial result at ``path`` (a folder, a file or a link), if any."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
