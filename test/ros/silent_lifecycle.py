"""A managed node stand-in in its own process whose transitions happen but are never answered.

  python silent_lifecycle.py NAMESPACE

Serves ``<NAMESPACE>/node/get_state``, ``.../get_available_transitions`` and
``.../change_state``: a transition request moves the state as the ROS 2 state machine does (one
its state does not offer changes nothing), and its reply never leaves (the callback waits), as
when a reply is lost because the server had not yet discovered the client's reader. Prints
``ready`` once serving; runs until killed.
"""

import sys
import threading
from typing import Any

from lifecycle_msgs.msg import State, Transition, TransitionDescription
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

from densehybrid_ros.core.transport import use_large_data
from densehybrid_ros.ros.ctl import GOAL_STATES

# The transitions each primary state offers (the ROS 2 managed-node state machine).
OFFERED = {'unconfigured': ('configure', 'shutdown'),
           'inactive': ('activate', 'cleanup', 'shutdown'),
           'active': ('deactivate', 'shutdown'), 'finalized': ()}


def main() -> int:
    """Serve until killed."""
    namespace = sys.argv[1]
    use_large_data()
    rclpy.init()
    node = rclpy.create_node('silent', namespace=namespace)
    state = {'label': 'unconfigured'}
    silence = threading.Event()                 # never set
    group = ReentrantCallbackGroup()

    def change_state(request: ChangeState.Request, response: ChangeState.Response) -> Any:
        if request.transition.label in OFFERED[state['label']]:
            state['label'] = GOAL_STATES[request.transition.label]
        silence.wait()
        return response

    def get_state(request: GetState.Request, response: GetState.Response) -> Any:
        response.current_state = State(label=state['label'])
        return response

    def get_available_transitions(request: GetAvailableTransitions.Request,
                                  response: GetAvailableTransitions.Response) -> Any:
        response.available_transitions = [
            TransitionDescription(transition=Transition(label=label),
                                  start_state=State(label=state['label']))
            for label in OFFERED[state['label']]]
        return response

    node.create_service(ChangeState, 'node/change_state', change_state, callback_group=group)
    node.create_service(GetAvailableTransitions, 'node/get_available_transitions',
                        get_available_transitions, callback_group=group)
    node.create_service(GetState, 'node/get_state', get_state, callback_group=group)
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    print('ready', flush=True)
    executor.spin()
    return 0


if __name__ == '__main__':
    sys.exit(main())
