"""``densehybrid-ctl``: lifecycle, parameters and topic echo where ros2cli is not installed.

The PyPI set-up (requirements/ros.txt) has rclpy but not ``ros2 lifecycle/param/topic``. This is
a thin rclpy shell over the same services and topics, for any node:

  densehybrid-ctl lifecycle /densehybrid configure      # get|configure|activate|deactivate|...
  densehybrid-ctl param get /densehybrid overlay_alpha
  densehybrid-ctl param set /densehybrid overlay_alpha 0.3
  densehybrid-ctl param list /densehybrid
  densehybrid-ctl echo /diagnostics --count 1

Exit codes: 0 done, 1 refused (transition failed, value rejected, nothing received), 2 usage
error or node not found (one ``error:`` line).
"""

import argparse
import importlib
import sys
import time
import traceback
from typing import Any, Callable, List, Optional, Tuple

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
import yaml

from .discovery import look_up
from .middleware import close_middleware, leave, set_aside, SET_ASIDE
from ..core.transport import use_large_data

# The transitions by label, and the state each ends in when it succeeds (the ROS 2 managed-node
# state machine).
GOAL_STATES = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive',
               'cleanup': 'unconfigured', 'shutdown': 'finalized'}
TRANSITIONS = tuple(GOAL_STATES)
ARRAY_SHOWN = 16            # longer arrays (image data) print as their length


class CtlError(Exception):
    """A usage error or an unreachable node: one ``error:`` line, exit 2."""


# A service is "available" once the client has discovered the server; the server may not yet
# have discovered the client's reply reader, and a reply sent before that is lost (a ROS 2 race:
# seen here as a call that never answered on a loaded 2-core machine, once for over 100 s). So:
# a short settle after discovery, requests that change nothing when repeated are sent again
# while unanswered, and after RENEW_AFTER unanswered sends from a fresh client (new endpoints
# for the server to discover). A lifecycle transition must not be sent twice: while it is
# unanswered, the node's state says whether it happened (a configure whose reply was lost once
# left densehybrid-ctl waiting 120 s). A transition the current state does not offer is refused
# before it is sent: its failure changes no state, so a lost reply to it could never be told
# from a slow one (the ctl test's activate-from-unconfigured waited out 120 s that way in CI).
SETTLE_S = 0.3
RESEND_S = 5.0
RENEW_AFTER = 2

NODE_NAME = 'densehybrid_ctl'


def _not_available(name: str, timeout: float) -> CtlError:
    return CtlError(f'service {name} not available after {timeout:g} s (node running? '
                    'same ROS_DOMAIN_ID?)')


def _no_publisher(topic: str, timeout: float) -> CtlError:
    return CtlError(f'no publisher of {topic} found in {timeout:g} s')


def _ready_client(node: Node, srv_type: Any, name: str, timeout: float) -> Any:
    """Return a client of ``name`` that has discovered its server (CtlError if none)."""
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        raise _not_available(name, timeout)
    time.sleep(SETTLE_S)
    return client


Look = Callable[[Node, float], bool]    # (node, seconds): found within them?


def service_look(srv_type: Any, name: str) -> Look:
    """Return a lookup of service ``name`` for :func:`contact`."""
    def look(node: Node, seconds: float) -> bool:
        client = node.create_client(srv_type, name)
        try:
            return client.wait_for_service(timeout_sec=seconds)
        finally:
            node.destroy_client(client)
    return look


def topic_look(topic: str) -> Look:
    """Return a lookup of a publisher of ``topic`` for :func:`contact`."""
    def look(node: Node, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while topic not in dict(node.get_topic_names_and_types()):
            if time.monotonic() >= deadline:
                return False
            rclpy.spin_once(node, timeout_sec=0.1)
        return True
    return look


class Link:
    """This tool's node; :meth:`renew` replaces its participant with a new one."""

    def __init__(self) -> None:
        rclpy.init()
        self.node: Node = rclpy.create_node(NODE_NAME)

    def renew(self) -> None:
        """Set the node aside (not closed: ros/middleware.py); start a new context and node."""
        print('densehybrid-ctl: found nothing yet; trying again on a new participant '
              '(see ros/discovery.py)', file=sys.stderr, flush=True)
        set_aside(self.node)
        rclpy.init()
        self.node = rclpy.create_node(NODE_NAME)

    def close(self, code: int) -> int:
        """Close the node and its context, and return ``code``.

        After a renewal nothing is closed: the process ends here, with ``code`` (``leave``).
        """
        if not SET_ASIDE:
            close_middleware(self.node)
        return leave(code)


def contact(link: Link, look: Look, timeout: float) -> bool:
    """Look the target up within ``timeout``, on a new participant when one finds nothing."""
    return look_up(lambda seconds: look(link.node, seconds), link.renew, timeout)


def call(node: Node, srv_type: Any, name: str, request: Any, timeout: float,
         idempotent: bool = True, answered_by: Optional[Callable[[], Any]] = None) -> Any:
    """Call a service and wait for the answer (CtlError when it is not there).

    ``idempotent`` requests are resent every ``RESEND_S`` while unanswered, from a fresh client
    after every ``RENEW_AFTER`` sends; for other requests ``answered_by`` (if given) is asked
    every ``RESEND_S`` instead, and what it returns, unless None, stands for the answer.
    """
    client = _ready_client(node, srv_type, name, timeout)
    deadline = time.monotonic() + max(timeout, 120.0)
    futures: List[Any] = []
    while time.monotonic() < deadline:
        if idempotent and len(futures) == RENEW_AFTER:
            node.destroy_client(client)
            client, futures = _ready_client(node, srv_type, name, timeout), []
        if idempotent or not futures:
            futures.append(client.call_async(request))
        wait = deadline - time.monotonic()
        if idempotent or answered_by is not None:
            wait = min(wait, RESEND_S)
        rclpy.spin_until_future_complete(node, futures[-1], timeout_sec=max(wait, 0.0))
        answered = [f for f in futures if f.done()]
        if answered:
            return answered[0].result()
        if answered_by is not None:
            seen = answered_by()
            if seen is not None:
                return seen
    raise CtlError(f'service {name} did not answer')


def lifecycle(node: Node, target: str, command: str, timeout: float) -> int:
    """Print the state, or request a transition and print the new state."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState

    def current() -> str:
        return call(node, GetState, f'{target}/get_state', GetState.Request(),
                    timeout).current_state.label

    if command != 'get':       # by label: the node picks the transition of its current state
        before = current()
        offered = [t.transition.label for t in call(
            node, GetAvailableTransitions, f'{target}/get_available_transitions',
            GetAvailableTransitions.Request(), timeout).available_transitions]
        if command not in offered:
            print(f'{command} is not a transition from {before} (offered: '
                  f"{', '.join(offered) or 'none'})", file=sys.stderr)
            print(before)
            return 1

        def happened() -> Any:
            """Return a success answer when the node is now where the transition leads."""
            now = current()
            done = now != before and now == GOAL_STATES.get(command)
            return ChangeState.Response(success=True) if done else None

        request = ChangeState.Request(transition=Transition(label=command))
        ok = call(node, ChangeState, f'{target}/change_state', request, timeout,
                  idempotent=False, answered_by=happened).success
        if not ok:
            print(f'{command} failed (see the node log or /diagnostics)', file=sys.stderr)
    print(current())
    return 0 if command == 'get' or ok else 1


def check_param_args(command: str, names: List[str]) -> None:
    """Raise CtlError for a ``param`` command given the wrong number of arguments."""
    if command == 'get' and not names:
        raise CtlError('param get needs at least one parameter name')
    if command == 'set' and len(names) != 2:
        raise CtlError('param set needs NAME VALUE')


def param(node: Node, target: str, command: str, names: List[str], timeout: float) -> int:
    """``get NAME...``, ``set NAME VALUE`` or ``list`` (arguments checked: check_param_args)."""
    from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
    if command == 'list':
        result = call(node, ListParameters, f'{target}/list_parameters',
                      ListParameters.Request(), timeout).result
        print('\n'.join(sorted(result.names)))
        return 0
    if command == 'get':
        values = call(node, GetParameters, f'{target}/get_parameters',
                      GetParameters.Request(names=names), timeout).values
        for name, value in zip(names, values):
            print(f'{name}: {parameter_value_to_python(value)!r}')
        return 0
    value = yaml.safe_load(names[1])            # 0.3 -> float, [a, b] -> list, abc -> str
    request = SetParameters.Request(
        parameters=[Parameter(names[0], value=value).to_parameter_msg()])
    (result,) = call(node, SetParameters, f'{target}/set_parameters', request, timeout).results
    if not result.successful:
        print(f'rejected: {result.reason}', file=sys.stderr)
        return 1
    print(f'{names[0]}: {value!r}')
    return 0


def message_type(type_name: str) -> Any:
    """Import ``pkg/msg/Name`` (the form the graph reports)."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def plain(msg: Any) -> Any:
    """Turn a message into plain dicts and lists; long arrays (image bytes) into their length."""
    if hasattr(msg, 'get_fields_and_field_types'):
        return {field: plain(getattr(msg, field)) for field in msg.get_fields_and_field_types()}
    if isinstance(msg, (bytes, bytearray)) or hasattr(msg, 'tolist'):
        msg = list(msg)
    if isinstance(msg, (list, tuple)):
        return [plain(m) for m in msg] if len(msg) <= ARRAY_SHOWN else f'<{len(msg)} values>'
    return msg


def echo(node: Node, topic: str, count: int, timeout: float) -> int:
    """Print ``count`` messages of ``topic`` (found by :func:`contact`) as YAML documents."""
    deadline = time.monotonic() + timeout
    types = dict(node.get_topic_names_and_types()).get(topic)
    if not types:                           # its publisher went away since the lookup
        raise _no_publisher(topic, timeout)
    received: List[Any] = []
    node.create_subscription(message_type(types[0]), topic, received.append, 10)
    while len(received) < count and time.monotonic() < deadline + timeout:
        rclpy.spin_once(node, timeout_sec=0.1)
    for msg in received[:count]:
        print(yaml.safe_dump(plain(msg), sort_keys=False, width=99).rstrip() + '\n---')
    return 0 if len(received) >= count else 1


def parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    ap = argparse.ArgumentParser(prog='densehybrid-ctl', description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog='\n'.join(__doc__.split('\n')[3:10]))
    ap.add_argument('--timeout', type=float, default=10.0,
                    help='seconds to wait for the node or topic (default 10)')
    sub = ap.add_subparsers(dest='command', required=True)
    lc = sub.add_parser('lifecycle', help='get the state or request a transition')
    lc.add_argument('node')
    lc.add_argument('transition', choices=('get',) + TRANSITIONS)
    pa = sub.add_parser('param', help='get, set or list parameters')
    pa.add_argument('action', choices=('get', 'set', 'list'))
    pa.add_argument('node')
    pa.add_argument('args', nargs='*', help='get: NAME...; set: NAME VALUE (YAML)')
    ec = sub.add_parser('echo', help='print messages of a topic')
    ec.add_argument('topic')
    ec.add_argument('--count', type=int, default=1, help='messages to print (default 1)')
    return ap


def first_lookup(opts: argparse.Namespace) -> Tuple[str, Look]:
    """Return what a command needs first: the service (or topic) name and its lookup."""
    from lifecycle_msgs.srv import GetState
    from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
    if opts.command == 'lifecycle':
        name, srv_type = f'{opts.node}/get_state', GetState
    elif opts.command == 'param':
        srv_type = {'get': GetParameters, 'set': SetParameters, 'list': ListParameters}[
            opts.action]
        name = f'{opts.node}/{opts.action}_parameters'
    else:
        return opts.topic, topic_look(opts.topic)
    return name, service_look(srv_type, name)


def command(link: Link, opts: argparse.Namespace) -> int:
    """Run the command of ``opts`` through ``link``; return the exit code."""
    if opts.command == 'param':             # a usage error before any wait for the node
        check_param_args(opts.action, opts.args)
    name, look = first_lookup(opts)
    if not contact(link, look, opts.timeout):
        missing = _no_publisher if opts.command == 'echo' else _not_available
        raise missing(name, opts.timeout)
    node = link.node
    if opts.command == 'lifecycle':
        return lifecycle(node, opts.node, opts.transition, opts.timeout)
    if opts.command == 'param':
        return param(node, opts.node, opts.action, opts.args, opts.timeout)
    return echo(node, opts.topic, opts.count, opts.timeout)


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``densehybrid-ctl``."""
    opts = parser().parse_args(argv)
    use_large_data()
    link = Link()
    try:
        code = command(link, opts)
    except CtlError as exc:
        print(f'densehybrid-ctl: error: {exc}', file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except Exception:                       # a bug: its traceback, exit 1, the same close
        traceback.print_exc()
        code = 1
    return link.close(code)


if __name__ == '__main__':
    sys.exit(main())
