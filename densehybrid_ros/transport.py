"""The Fast DDS transport setting every process of this package starts with (no ROS imports).

Fast DDS's default transports fragment large best-effort samples over UDP and lose them.
``LARGE_DATA`` sends user data over TCP/shared memory instead, but with the default socket and
shared-memory buffer sizes it still dropped most best-effort 1.5-2.7 MB images here (6 of 20
720p frames at 5 Hz arrived); with 16 MB buffers all 20 did. ``sockets_size`` only sizes the
buffers, so peers that use plain ``LARGE_DATA`` still talk to ours (Fast DDS >= 2.14, Jazzy).
"""

import os
from typing import MutableMapping

TRANSPORT_ENV = 'FASTDDS_BUILTIN_TRANSPORTS'
LARGE_DATA = 'LARGE_DATA?sockets_size=16MB'


def use_large_data(env: MutableMapping[str, str] = os.environ) -> str:
    """Set ``FASTDDS_BUILTIN_TRANSPORTS`` to :data:`LARGE_DATA` unless it is set; return it."""
    return env.setdefault(TRANSPORT_ENV, LARGE_DATA)
