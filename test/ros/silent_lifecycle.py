"""A managed node stand-in in its own process whose transitions happen but are never answered.

  python silent_lifecycle.py NAMESPACE

Serves ``<NAMESPACE>/node/get_state`` and ``<NAMESPACE>/node/change_state``: a transition
request moves the state as the ROS 2 state machine does, and its reply never leaves (the
callback waits), as when a reply is lost because the server had not yet discovered the
client's reader. Prints ``ready`` once serving; runs until killed.
"""

import sys
import threading
from typing import Any

from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import ChangeState, GetState
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

from densehybrid_ros.core.transport import use_large_data
from densehybrid_ros.ros.ctl import GOAL_STATES


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
        state['label'] = GOAL_STATES[request.transition.label]
        silence.wait()
        return response

    def get_state(request: GetState.Request, response: GetState.Response) -> Any:
        response.current_state = State(label=state['label'])
        return response

    node.create_service(ChangeState, 'node/change_state', change_state, callback_group=group)
    node.create_service(GetState, 'node/get_state', get_state, callback_group=group)
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    print('ready', flush=True)
    executor.spin()
    return 0


if __name__ == '__main__':
    sys.exit(main())
