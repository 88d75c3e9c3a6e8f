"""Data: synthetic scenes and sequences, Cityscapes-format folders, negatives, rosbag2 files.

Import from the modules (``data.bags``, ``data.bag_writer``, ``data.cityscapes``,
``data.negatives``, ...): nothing
is imported here, so a tool that only reads bags does not load torch (``densehybrid-eval
--help``: 7 s with it).
"""
