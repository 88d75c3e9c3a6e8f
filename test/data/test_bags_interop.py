"""Bags we write, read by the mcap reference libraries; bags others write, read by us."""

import json
import shutil

import numpy as np
import pytest
import yaml

from densehybrid_ros.data.bag_writer import BagWriter, message
from densehybrid_ros.data.bags import BagError, BagReader
from densehybrid_ros.tools.rostools.make_bag import camera_info_message, json_message

mcap_reader = pytest.importorskip('mcap.reader')
mcap_ros2_decoder = pytest.importorskip('mcap_ros2.decoder')

TOPIC = '/camera/image'


@pytest.fixture
def bag(tmp_path):
    """A two-frame mcap bag of 6 x 8 rgb8 images written by BagWriter."""
    path = tmp_path / 'bag'
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    with BagWriter(path) as writer:
        for stamp in (1_000_000_000, 2_000_000_000):
            writer.write_image(TOPIC, image, 'rgb8', stamp)
    return path, image


def test_mcap_channels_offer_qos_and_decode_with_the_reference_reader(bag):
    path, image = bag
    (mcap_file,) = path.glob('*.mcap')
    with open(mcap_file, 'rb') as stream:
        reader = mcap_reader.make_reader(stream, decoder_factories=[
            mcap_ros2_decoder.DecoderFactory()])
        summary = reader.get_summary()
        (channel,) = summary.channels.values()
        assert channel.topic == TOPIC and channel.message_encoding == 'cdr'
        assert summary.schemas[channel.schema_id].name == 'sensor_msgs/msg/Image'
        qos = channel.metadata['offered_qos_profiles']
        assert 'reliability: reliable' in qos and 'depth: 10' in qos      # was empty
        decoded = [msg for _, _, _, msg in reader.iter_decoded_messages()]
    assert [(m.height, m.width, m.encoding) for m in decoded] == [(6, 8, 'rgb8')] * 2
    assert bytes(decoded[0].data) == image.tobytes()
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    (topic,) = meta['topics_with_message_count']
    assert topic['topic_metadata']['type_description_hash'].startswith('RIHS01_')
    # the channel carries the same hash, as ros2 bag record writes it
    assert channel.metadata['topic_type_hash'] == topic['topic_metadata']['type_description_hash']


def test_a_folder_with_a_lone_mcap_and_no_metadata_opens(bag, tmp_path):
    path, _ = bag
    folder = tmp_path / 'recorded'
    folder.mkdir()
    (mcap_file,) = path.glob('*.mcap')
    shutil.copy(mcap_file, folder / 'recording_0.mcap')          # no metadata.yaml
    with BagReader(folder) as reader:
        assert reader.topics == {TOPIC: ('sensor_msgs/msg/Image', 2)}


def test_metadata_qos_that_disagrees_with_the_mcap_channels_is_named(bag):
    path, _ = bag
    meta = path / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('reliability: reliable', 'reliability: best_effort'))
    with BagReader(path) as reader:             # rosbags then yields nothing, silently
        with pytest.raises(BagError, match='disagree with metadata.yaml') as error:
            list(reader.messages([TOPIC]))
    assert f'{TOPIC} (2)' in str(error.value)


# ----------------------------------------------------------------- sequence ground truth
NS = '/camera'


@pytest.fixture
def sequence_bag(tmp_path):
    """Three frames: image, instance ids, depth, camera_info and JSON truth per stamp."""
    path = tmp_path / 'seq'
    k = np.array([[50.0, 0, 15.5], [0, 50.0, 4.5], [0, 0, 1]])
    ids = np.zeros((6, 8), np.uint16)
    ids[2:4, 1:3] = 300                                   # over 255: needs 16 bits
    depth = np.full((6, 8), 7.5, np.float32)
    depth[0], depth[5] = np.inf, np.nan                   # sky, void
    with BagWriter(path) as writer:
        for i in range(3):
            stamp = (i + 1) * 1_000_000_000
            writer.write_image(f'{NS}/image', np.full((6, 8, 3), i, np.uint8), 'rgb8', stamp,
                               'cam')
            writer.write_image(f'{NS}/anomaly_instances', ids, 'mono16', stamp, 'cam')
            writer.write_image(f'{NS}/depth', depth, '32FC1', stamp, 'cam')
            writer.write(f'{NS}/camera_info', camera_info_message(k, 8, 6, stamp, 'cam'))
            writer.write(f'{NS}/ground_truth',
                         json_message({'frame': i, 'objects': [{'id': 300}]}, stamp, 'cam'),
                         stamp)
    return path, k, ids, depth


def test_sequence_topics_join_by_stamp_and_are_no_cameras(sequence_bag):
    path, k, ids, depth = sequence_bag
    with BagReader(path) as reader:
        assert reader.camera_topics() == [f'{NS}/image']
        assert reader.label_topics() == [f'{NS}/anomaly_instances']
        roles = {'image': f'{NS}/image', **reader.sequence_roles(NS)}
        assert roles == {'image': f'{NS}/image', 'instances': f'{NS}/anomaly_instances',
                         'depth': f'{NS}/depth', 'camera_info': f'{NS}/camera_info',
                         'truth': f'{NS}/ground_truth'}
        frames = list(reader.frames(roles, partial=False))
        assert reader.sequence_roles('/other') == {}
    assert [f.stamp for f in frames] == [1_000_000_000, 2_000_000_000, 3_000_000_000]
    for i, frame in enumerate(frames):
        assert len(frame.arrays) + len(frame.data) == 5 and frame.frame_id == 'cam'
        np.testing.assert_array_equal(frame.arrays['instances'], ids)
        np.testing.assert_array_equal(frame.arrays['depth'], depth)
        info = frame.data['camera_info']
        np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), k)
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), np.hstack([k, np.zeros((3, 1))]))
        np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
        assert frame.data['truth']['frame'] == i
        assert frame.data['truth']['header'] == {
            'stamp': {'sec': i + 1, 'nanosec': 0}, 'frame_id': 'cam'}


def test_sequence_topics_decode_with_the_reference_reader(sequence_bag):
    path, k, _, _ = sequence_bag
    (mcap_file,) = path.glob('*.mcap')
    with open(mcap_file, 'rb') as stream:
        reader = mcap_reader.make_reader(stream, decoder_factories=[
            mcap_ros2_decoder.DecoderFactory()])
        decoded = {}
        for _, channel, _, msg in reader.iter_decoded_messages(
                topics=[f'{NS}/camera_info', f'{NS}/ground_truth']):
            decoded.setdefault(channel.topic, []).append(msg)
    infos, truths = decoded[f'{NS}/camera_info'], decoded[f'{NS}/ground_truth']
    assert [(m.width, m.height, m.distortion_model) for m in infos] == [(8, 6, 'plumb_bob')] * 3
    assert list(infos[0].k) == list(k.ravel())
    assert [json.loads(m.data)['frame'] for m in truths] == [0, 1, 2]


def test_wide_maps_are_only_read_in_their_roles(sequence_bag):
    path, _, ids, _ = sequence_bag
    with BagReader(path) as reader:
        # As a plain label map, mono16 is refused (as the node refuses it) ...
        with pytest.raises(BagError, match="unsupported encoding 'mono16'"):
            list(reader.frames({'image': f'{NS}/image', 'label': f'{NS}/anomaly_instances'}))
        # ... as instance ids it is read.
        (frame, *_) = reader.frames({'image': f'{NS}/image',
                                     'instances': f'{NS}/anomaly_instances'})
    assert frame.arrays['instances'].dtype == np.uint16 and frame.arrays['instances'].max() == 300


def test_truth_without_a_header_is_named(tmp_path):
    with BagWriter(tmp_path / 'bag') as writer:
        writer.write_image(f'{NS}/image', np.zeros((2, 2, 3), np.uint8), 'rgb8', 5)
        writer.write(f'{NS}/ground_truth', message('std_msgs/msg/String', data='{"a": 0}'), 5)
    with BagReader(tmp_path / 'bag') as reader:
        with pytest.raises(BagError, match='truth on /camera/ground_truth lacks a JSON header '
                                           "stamp: KeyError: 'header'"):
            list(reader.frames({'image': f'{NS}/image', 'truth': f'{NS}/ground_truth'}))
