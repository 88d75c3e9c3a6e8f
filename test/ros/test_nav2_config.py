"""config/nav2_costmap.yaml: a Nav2 costmap that reads the node's outputs, checked by parsing.

The parameter names are those Nav2's ObstacleLayer declares for a layer and each observation
source (nav2_costmap_2d/plugins/obstacle_layer.cpp, Jazzy) and those of
kiwicampus/semantic_segmentation_layer (src/semantic_segmentation_layer.cpp): a misspelt one
would be ignored by Nav2 without a word, so the test holds the lists.
"""

from pathlib import Path

import yaml

from densehybrid_ros.core.classes import CITYSCAPES_CLASSES
from densehybrid_ros.core.outputs import output_namespaces, output_topics

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'nav2_costmap.yaml'
CAMERA = '/camera/image_raw'                  # the camera the example assumes
OBSTACLE_LAYER = {'plugin', 'enabled', 'footprint_clearing_enabled', 'min_obstacle_height',
                  'max_obstacle_height', 'combination_method', 'observation_sources'}
OBSERVATION_SOURCE = {'topic', 'sensor_frame', 'observation_persistence', 'expected_update_rate',
                      'data_type', 'min_obstacle_height', 'max_obstacle_height', 'inf_is_valid',
                      'marking', 'clearing', 'obstacle_max_range', 'obstacle_min_range',
                      'raytrace_max_range', 'raytrace_min_range'}
SEMANTIC_SOURCE = {'segmentation_topic', 'confidence_topic', 'labels_topic', 'pointcloud_topic',
                   'observation_persistence', 'expected_update_rate', 'class_types',
                   'max_obstacle_distance', 'min_obstacle_distance', 'tile_map_decay_time',
                   'visualize_tile_map', 'use_cost_selection'}
SEMANTIC_CLASS = {'classes', 'base_cost', 'max_cost', 'mark_confidence', 'samples_to_max_cost',
                  'dominant_priority'}


def costmap() -> dict:
    return yaml.safe_load(CONFIG.read_text())['local_costmap']['local_costmap']['ros__parameters']


def node_topic(output: str) -> str:
    """Where the node publishes ``output`` for the example's camera."""
    return f'{output_namespaces([CAMERA])[0]}/{output}'


def test_costmap_has_frames_and_its_plugins_are_configured():
    params = costmap()
    assert params['global_frame'] == 'odom' and params['robot_base_frame'] == 'base_link'
    assert params['rolling_window'] is True and params['resolution'] > 0
    assert params['plugins'] == ['anomaly_layer', 'inflation_layer']
    for name in params['plugins']:
        assert params[name]['plugin'].startswith('nav2_costmap_2d::')


def test_anomaly_points_are_a_marking_pointcloud_source():
    layer = costmap()['anomaly_layer']
    assert layer['plugin'] == 'nav2_costmap_2d::ObstacleLayer'
    assert set(layer) - {'anomaly_points'} <= OBSTACLE_LAYER
    assert layer['observation_sources'].split() == ['anomaly_points']
    source = layer['anomaly_points']
    assert set(source) <= OBSERVATION_SOURCE
    assert source['data_type'] == 'PointCloud2'
    assert source['marking'] is True and source['clearing'] is False
    assert source['sensor_frame'] == ''            # the cloud's own frame
    # The layer's per-source height band defaults to [0, 0]: both ends must be set.
    assert 0 <= source['min_obstacle_height'] < source['max_obstacle_height']
    assert source['expected_update_rate'] >= 0
    assert source['topic'] == node_topic('anomaly_points') == '/camera/densehybrid/anomaly_points'


def test_semantic_layer_reads_open_set_confidence_and_labels():
    params = costmap()
    layer = params['semantic_layer']
    assert 'semantic_layer' not in params['plugins']   # optional: a plugin outside Nav2
    assert layer['plugin'] == 'semantic_segmentation_layer::SemanticSegmentationLayer'
    assert layer['observation_sources'].split() == ['camera']
    source = layer['camera']
    assert set(source) - set(source['class_types']) <= SEMANTIC_SOURCE
    assert source['segmentation_topic'] == output_topics([CAMERA])[CAMERA]['open_set']
    assert source['confidence_topic'] == node_topic('confidence')
    assert source['labels_topic'] == node_topic('labels')
    # Every name the labels topic lists is in exactly one class type (else the layer drops it).
    named = [name for kind in source['class_types'] for name in source[kind]['classes']]
    assert sorted(named) == sorted(list(CITYSCAPES_CLASSES) + ['unknown'])
    for kind in source['class_types']:
        assert set(source[kind]) == SEMANTIC_CLASS
        assert 0 <= source[kind]['base_cost'] <= source[kind]['max_cost'] <= 254
    assert source['unknown']['base_cost'] == 254 and source['unknown']['dominant_priority']
