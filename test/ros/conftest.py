"""Fixtures for the ROS tests: an rclpy context on a private domain and a probe node.

Skipped as a whole where rclpy is not installed. The process environment is left as it was:
the session's domain id goes to ``rclpy.init``, and Fast DDS reads its transport settings
(transport.py: profile file and FASTDDS_BUILTIN_TRANSPORTS) only while the probe's participant
is created.

A test that used the probe and failed leaves the probe suspect: the next test that asks for it
(the rerun the conftest one level up grants a live-middleware test, or the next test) gets a new
one, on a new context and participant in the same domain. In a clean-clone CI run one test
failed three times over five minutes, each time with a node process of its own that became
active, the probe hearing none of its outputs, while the tests before it on the same probe had
passed: reruns that share the probe's participant share whatever state that participant is in.
The old probe keeps spinning until the session ends (a module's node may still talk to it) and
is not destroyed before then: in-process participants finalised while their TCP channels were
open deadlocked Fast DDS 2.14 (ros_helpers.close_node).
"""

import os
from typing import Any, List, Tuple

import pytest

try:
    import rclpy
except ImportError:  # the core must work without ROS; these tests need it
    rclpy = None

SUSPECT = pytest.StashKey[bool]()           # a test that used the probe failed


class Middleware:
    """This session's rclpy context and probe node, renewed after a failure (module docstring)."""

    def __init__(self) -> None:
        self.context, self.probe = self._start()
        self._retired: List[Tuple[Any, Any]] = []

    @staticmethod
    def _start() -> Tuple[Any, Any]:
        """Return a context on this session's domain and a probe node (in one env window)."""
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
        return context, probe

    def renew(self) -> None:
        """Start a new context and probe; the old ones spin on until :meth:`close`."""
        self._retired.append((self.context, self.probe))
        self.context, self.probe = self._start()

    def close(self) -> None:
        """Stop every probe and shut every context down."""
        for context, probe in [(self.context, self.probe)] + self._retired:
            probe.close()
            rclpy.try_shutdown(context=context)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark the probe suspect when a test that used it fails (a failure that gets a rerun too)."""
    outcome = yield
    report = outcome.get_result()
    if report.when in ('setup', 'call') and (report.failed or report.outcome == 'rerun') \
            and {'probe', 'module_probe'} & set(item.fixturenames):
        item.config.stash[SUSPECT] = True


@pytest.fixture(scope='session')
def middleware():
    """This session's :class:`Middleware`."""
    if rclpy is None:
        pytest.skip('rclpy is not installed')
    middleware = Middleware()
    yield middleware
    middleware.close()


@pytest.fixture
def ros_context(middleware, request):
    """An rclpy context on this session's private domain (the probe's)."""
    return current(middleware, request).context


@pytest.fixture
def probe(middleware, request):
    """The session's probe node, spun in a background thread; a new one after a failure."""
    return current(middleware, request).probe


@pytest.fixture(scope='module')
def module_probe(middleware, request):
    """The probe for a module's fixtures: the current one when the module's node starts."""
    return current(middleware, request).probe


def current(middleware: Middleware, request: Any) -> Middleware:
    """Renew ``middleware`` if a test that used the probe failed since the last renewal."""
    if request.config.stash.get(SUSPECT, False):
        request.config.stash[SUSPECT] = False
        middleware.renew()
    return middleware
