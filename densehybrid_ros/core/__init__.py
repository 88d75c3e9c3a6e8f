"""Pure core: maths and data handling with no ROS and no model runtime."""
