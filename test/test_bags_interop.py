"""Bags we write, read by the mcap reference libraries; bags others write, read by us."""

import shutil

import numpy as np
import pytest
import yaml

from densehybrid_ros.bags import BagError, BagReader, BagWriter

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
