"""Fast DDS shared-memory segments that outlived their process: find them and remove them.

Fast DDS (2.14) gives each participant's shared-memory transport a segment file in /dev/shm,
``fastrtps_<16 hex digits>`` (sized by the LARGE_DATA profile: about 35 MB here), with a lock
file beside it, ``<segment>_el``, that the owner holds with ``flock(LOCK_EX)`` for as long as it
lives. A process that ends without closing its participant (killed, ``os._exit``, a watchdog
exit) leaves both files behind: one clean-clone run of the suite left about 40 of them, and
runs on one machine had piled up 738 files (5.5 GB). A segment whose lock file can be locked has
no owner any more; ``fastdds shm clean`` (not on PyPI) removes those the same way. The ports'
files (``fastrtps_port<N>``, ``sem.fastrtps_*``) are shared by every participant of a domain
and are left alone.
"""

import fcntl
import os
from pathlib import Path
import re
from typing import List

SHM = Path('/dev/shm')
SEGMENT = re.compile(r'fastrtps_[0-9a-f]{16}')


def remove_stale_segments(folder: Path = SHM) -> List[str]:
    """Remove the segments in ``folder`` whose lock file no process holds; return their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:                         # no /dev/shm (not Linux)
        return removed
    for name in sorted(n for n in names if SEGMENT.fullmatch(n)):
        lock = folder / f'{name}_el'
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:                     # no lock file: not ours to judge
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:                     # held: its participant is alive
            os.close(fd)
            continue
        try:                                # held by us now: no process can claim it meanwhile
            (folder / name).unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
            removed.append(name)
        finally:
            os.close(fd)
    return removed
