"""ROS 2 layer: the lifecycle node, its parameters, image conversions and diagnostics.

Only this subpackage (and tools/) imports rclpy, cv_bridge and message packages.
"""
