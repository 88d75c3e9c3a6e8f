"""Fixtures for the ROS tests: an rclpy context on a private domain and a probe node.

Skipped as a whole where rclpy is not installed. The process environment is left as it was:
the session's domain id goes to ``rclpy.init``, and Fast DDS reads its transport settings
(transport.py: profile file and FASTDDS_BUILTIN_TRANSPORTS) only while the probe's participant
is created.
"""

import os

import pytest

try:
    import rclpy
except ImportError:  # the core must work without ROS; these tests need it
    rclpy = None


@pytest.fixture(scope='session')
def _session(tmp_path_factory):
    """Context on this session's domain plus the probe node (created in one env window)."""
    if rclpy is None:
        pytest.skip('rclpy is not installed')
    from ros_helpers import DOMAIN_ID, Probe, ros_env
    from densehybrid_ros.core.transport import PROFILE_ENVS, TRANSPORT_ENV
    keys = (TRANSPORT_ENV,) + PROFILE_ENVS
    saved = {key: os.environ.get(key) for key in keys}
    env = ros_env()
    os.environ.update({key: env[key] for key in keys if key in env})
    try:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=DOMAIN_ID)
        probe = Probe(context)          # creates the DDS participant with these transports
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield context, probe
    probe.close()
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def ros_context(_session):
    """An rclpy context on this session's private domain."""
    return _session[0]


@pytest.fixture(scope='session')
def probe(_session):
    """The session's probe node, spun in a background thread."""
    return _session[1]
