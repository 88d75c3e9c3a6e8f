"""Look a peer up on a participant of ours, and on a new participant when one finds nothing.

A new participant now and then does not discover a running node for a long time while the next
one does at once (Fast DDS 2.14, the package's LARGE_DATA profile; the cause was not found).
Under load on this 2-core machine, 2 of 150 fresh processes found no ``get_parameters`` service
of a running node in 10 s, and a second participant in the same process found it in 1.3 and
1.5 s; ``densehybrid-ctl`` failed 1 call in 60 after 30 s, and its test needed a rerun for it in
most clean-clone CI runs. A healthy lookup takes about 1.5 s here. So the package's tools give
one participant ``DISCOVERY_S`` to find what they need first, then set it aside and start
another (``renew``), until their own time limit. A participant set aside is never closed (its
close hung in CI; ``middleware.set_aside``). Later lookups of the same peer are immediate:
discovery is per participant, so only the first one needs this.
"""

import time
from typing import Callable

DISCOVERY_S = 10.0


def look_up(look: Callable[[float], bool], renew: Callable[[], None], timeout: float,
            every: float = DISCOVERY_S) -> bool:
    """Call ``look(seconds)`` until it is True or ``timeout`` is over, ``renew()`` between tries.

    Each try gets at most ``every`` seconds; after a try that found nothing, ``renew`` replaces
    the participant ``look`` uses, unless no full try is left. Returns whether it was found.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if look(max(0.0, min(left, every))):
            return True
        if left <= every:
            return False
        renew()
