"""densehybrid_ros.data.bag_writer: writer safety (what it refuses to clobber or mix)."""

import numpy as np
import pytest

from densehybrid_ros.data.bag_writer import BagWriter, message
from densehybrid_ros.data.bags import BagError, BagReader, STRING_TYPE


def test_writer_refuses_to_clobber(tmp_path) -> None:
    folder = tmp_path / 'notes'
    folder.mkdir()
    (folder / 'keep.txt').write_text('mine')
    with pytest.raises(BagError, match='non-empty folder that is not a rosbag2'):
        BagWriter(folder, overwrite=True)
    with BagWriter(tmp_path / 'bag') as bag:
        bag.write_image('/a', np.zeros((2, 2), np.uint8), 'mono8', 1)
    with pytest.raises(BagError, match='exists'):
        BagWriter(tmp_path / 'bag')
    with pytest.raises(BagError, match='storage must be one of'):
        BagWriter(tmp_path / 'x', storage='rosbag1')
    assert (folder / 'keep.txt').read_text() == 'mine'


def test_one_topic_holds_one_message_type(tmp_path) -> None:
    with BagWriter(tmp_path / 'bag', storage='sqlite3') as bag:
        bag.write_image('/a', np.zeros((2, 2), np.uint8), 'mono8', 5)
        with pytest.raises(BagError, match='/a already holds sensor_msgs/msg/Image, not std_msgs'):
            bag.write('/a', message(STRING_TYPE, data='{}'), log_time=6)
        assert bag.count == 1
    with BagReader(tmp_path / 'bag') as reader:
        assert reader.topics == {'/a': ('sensor_msgs/msg/Image', 1)}
