"""Fixtures for the ROS tests: an rclpy context on a private domain and a probe node."""

import os

import pytest

rclpy = pytest.importorskip('rclpy')
from ros_helpers import DOMAIN_ID, Probe, ros_env  # noqa: E402


@pytest.fixture(scope='session')
def ros_context():
    """An rclpy context on this session's private domain (same env as the node processes)."""
    env = ros_env()      # the domain id goes to init; transports and discovery via the env
    for key in ('FASTDDS_BUILTIN_TRANSPORTS', 'ROS_AUTOMATIC_DISCOVERY_RANGE'):
        os.environ[key] = env[key]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def probe(ros_context):
    """The session's probe node."""
    p = Probe(ros_context)
    yield p
    p.close()
