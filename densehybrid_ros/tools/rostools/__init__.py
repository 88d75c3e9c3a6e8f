"""ROS tools without ROS: make-bag, replay and the demo."""
