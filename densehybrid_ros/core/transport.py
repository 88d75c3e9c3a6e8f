"""The Fast DDS configuration every process of this package starts with (no ROS imports).

One configuration, in one place: the XML profile ``config/fastdds.xml`` (LARGE_DATA transports
with 16 MB buffers: shared memory on the same host, TCP to other hosts, UDP only for discovery;
reliable writers heartbeat every 100 ms). :func:`use_large_data` points Fast DDS at it through
``FASTRTPS_DEFAULT_PROFILES_FILE`` (Fast DDS 2.x, Jazzy) and ``FASTDDS_DEFAULT_PROFILES_FILE``
(3.x, Kilted) unless the user configured Fast DDS already.

Why a profile and not ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA?sockets_size=16MB`` alone: under
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (or ``ROS_LOCALHOST_ONLY=1``) rmw_fastrtps drops the
environment setting, and 1 of 20 best-effort 1280x720 frames arrived; with the profile 20 of 20
did, also at 1920x1080. The environment variable is still set (same value) for peers that read it,
and because a profile's transports win over it, both describe the same transports.
"""

import os
from pathlib import Path
from typing import Dict, MutableMapping, Optional, Tuple

from .paths import package_share

TRANSPORT_ENV = 'FASTDDS_BUILTIN_TRANSPORTS'
LARGE_DATA = 'LARGE_DATA?sockets_size=16MB'
# Fast DDS 2.x (Humble, Jazzy) reads the first, 3.x (Kilted) the second.
PROFILE_ENVS: Tuple[str, str] = ('FASTRTPS_DEFAULT_PROFILES_FILE',
                                 'FASTDDS_DEFAULT_PROFILES_FILE')
PROFILE_NAME = 'fastdds.xml'
FASTRTPS_RMWS = ('rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
_SOURCE_CONFIG = Path(__file__).resolve().parents[2] / 'config'


def profile_path() -> Path:
    """Return the shipped Fast DDS profile (installed share folder, else the source tree)."""
    installed = package_share() / 'config' / PROFILE_NAME
    return installed if installed.is_file() else _SOURCE_CONFIG / PROFILE_NAME


def user_configured(env: MutableMapping[str, str]) -> bool:
    """Tell whether the user chose Fast DDS transports or a profile file other than ours."""
    ours = str(profile_path())
    return (env.get(TRANSPORT_ENV, LARGE_DATA) != LARGE_DATA
            or any(env.get(key, ours) != ours for key in PROFILE_ENVS))


def use_large_data(env: MutableMapping[str, str] = os.environ) -> str:
    """Point Fast DDS at :func:`profile_path` unless the user configured it; return the setting.

    Call it before ``rclpy.init`` (the participant reads these variables when it is created).
    Returns the effective ``FASTDDS_BUILTIN_TRANSPORTS`` value.
    """
    if not user_configured(env):
        profile = str(profile_path())
        for key in PROFILE_ENVS:
            env[key] = profile
        env[TRANSPORT_ENV] = LARGE_DATA
    return env.get(TRANSPORT_ENV, '')


def child_env(domain_id: Optional[int] = None) -> Dict[str, str]:
    """Environment for a child process: ours plus this profile, unbuffered, this source tree.

    ``domain_id`` sets ``ROS_DOMAIN_ID`` (None keeps the inherited one).
    """
    env = dict(os.environ)
    use_large_data(env)
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    root = str(_SOURCE_CONFIG.parent)
    env['PYTHONPATH'] = os.pathsep.join(
        [root] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p and p != root])
    env['PYTHONUNBUFFERED'] = '1'
    return env


def discovery_is_localhost(env: MutableMapping[str, str]) -> bool:
    """Tell whether discovery is localhost-only (the discovery range or ROS_LOCALHOST_ONLY)."""
    return (env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').upper() == 'LOCALHOST'
            or env.get('ROS_LOCALHOST_ONLY', '') == '1')


def transport_warning(env: MutableMapping[str, str] = os.environ) -> Optional[str]:
    """Say why this environment will lose large images despite our profile (None: it won't)."""
    rmw = env.get('RMW_IMPLEMENTATION', '')
    if rmw and rmw not in FASTRTPS_RMWS:
        return (f'RMW_IMPLEMENTATION={rmw}: the Fast DDS profile {PROFILE_NAME} does not apply; '
                'make sure your middleware is configured for large images')
    if env.get('RMW_FASTRTPS_USE_QOS_FROM_XML') == '1':
        return ('RMW_FASTRTPS_USE_QOS_FROM_XML=1: topic QoS comes from XML, not from the node '
                '(outputs may not be reliable); unset it')
    profiles = [env[key] for key in PROFILE_ENVS if env.get(key)]
    missing = [p for p in profiles if not Path(p).is_file()]
    if missing:
        return f'Fast DDS profile file not found: {missing[0]} (Fast DDS ignores it)'
    if profiles:
        return None         # ours, or the user's own profile: their choice
    transports = env.get(TRANSPORT_ENV, '')
    if not transports.upper().startswith('LARGE_DATA'):
        return (f'{TRANSPORT_ENV}={transports or "(unset)"} and no Fast DDS profile: images '
                f'above ~1 MB over best effort will be lost; unset it to use {profile_path()}')
    if discovery_is_localhost(env):
        return (f'{TRANSPORT_ENV}={transports} has no effect with localhost-only discovery '
                f'(rmw_fastrtps drops it): unset it to use {profile_path()}')
    return None
