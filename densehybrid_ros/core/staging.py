"""Results folders that are never half-overwritten: write elsewhere, move in on success.

A tool writes its files into :func:`staged_folder`'s temporary sibling folder; only when the
``with`` block ends without an exception are they moved into the real folder, one entry at a
time (a sub-folder such as ``frames/`` replaces the old one whole, so no stale picture of an
earlier run stays next to the new ones). On an exception the temporary folder is deleted and
the real one is left exactly as it was, and parent folders made for it are removed again. Files
in the real folder that the run did not write stay: the folder may hold other things
(``--output .``).

A killed run (SIGKILL, power loss) cannot delete its temporary folder, so the folder's name
carries the writer's process id, ``.<name>.partial-<pid>-<random>``, and the next run for the
same target deletes those whose process is gone (:func:`remove_leftovers`; the same rule cleans
the export cache's ``.<key>.<pid>`` folders). A leftover whose process id was taken by another
process since stays until that process ends.
"""

import contextlib
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Iterator, List, Pattern, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def staged_folder(target: PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; move its entries into ``target`` on success."""
    target = Path(target)
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, re.compile(
        rf'^\.{re.escape(target.name)}\.partial-(?P<pid>\d+)-'))
    # A sibling, so the moves stay on one file system (a rename each, no copying).
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial-{os.getpid()}-',
                                    dir=target.parent))
    moved = False
    try:
        yield staging
        target.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(entry, destination)
        moved = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not moved:
            for folder in made:              # innermost first; only while still empty
                try:
                    folder.rmdir()
                except OSError:
                    break


def pid_alive(pid: int) -> bool:
    """Tell whether a process with this id exists on this host (``os.kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True                           # another user's process
    except (ProcessLookupError, OverflowError):
        return False                          # gone, or a number no process id can be
    return True


def remove_leftovers(folder: PathLike, pattern: Pattern[str]) -> List[Path]:
    """Delete the entries of ``folder`` that ``pattern`` matches and whose ``pid`` is gone.

    ``pattern`` has a named group ``pid``. Returns what was deleted; entries that vanish or
    cannot be deleted meanwhile (another run cleaning, permissions) are skipped.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match.group('pid'))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed
