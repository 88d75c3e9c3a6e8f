"""transport.py: one Fast DDS configuration, applied unless the user chose their own."""

import xml.etree.ElementTree as ET

from densehybrid_ros.core.transport import (child_env, LARGE_DATA, PROFILE_ENVS, profile_path,
                                            TRANSPORT_ENV, transport_warning, use_large_data)

NS = '{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}'


def test_profile_is_shipped_and_configures_large_data_heartbeats_and_the_log():
    root = ET.parse(profile_path()).getroot()
    participant = root.find(f'{NS}profiles/{NS}participant')
    assert participant.get('is_default_profile') == 'true'
    builtin = participant.find(f'{NS}rtps/{NS}builtinTransports')
    assert builtin.text == 'LARGE_DATA' and int(builtin.get('sockets_size')) == 16 * 2 ** 20
    assert LARGE_DATA == 'LARGE_DATA?sockets_size=16MB'      # the same transports for env peers
    period = root.find(f'{NS}profiles/{NS}data_writer/{NS}times/{NS}heartbeatPeriod')
    assert int(period.findtext(f'{NS}sec')) == 0
    assert int(period.findtext(f'{NS}nanosec')) == 100_000_000
    log = root.find(f'{NS}log')                  # Fast DDS's errors to stderr, not stdout
    assert log.findtext(f'{NS}use_default') == 'FALSE'
    consumer = log.find(f'{NS}consumer')
    assert consumer.findtext(f'{NS}class') == 'StdoutErrConsumer'
    assert consumer.findtext(f'{NS}property/{NS}value') == 'Log::Kind::Warning'


def test_profile_set_on_a_clean_environment():
    env = {}
    assert use_large_data(env) == LARGE_DATA
    assert all(env[key] == str(profile_path()) for key in PROFILE_ENVS)
    assert transport_warning(env) is None
    env = {TRANSPORT_ENV: LARGE_DATA}               # inherited from an older set-up: add it
    use_large_data(env)
    assert env[PROFILE_ENVS[0]] == str(profile_path())
    env = {PROFILE_ENVS[0]: str(profile_path())}     # ours already (Makefile): complete it
    use_large_data(env)
    assert env[TRANSPORT_ENV] == LARGE_DATA and env[PROFILE_ENVS[1]] == str(profile_path())


def test_user_choices_are_kept():
    env = {TRANSPORT_ENV: 'UDPv4'}
    assert use_large_data(env) == 'UDPv4' and not any(k in env for k in PROFILE_ENVS)
    env = {PROFILE_ENVS[0]: '/etc/my_profile.xml'}
    use_large_data(env)
    assert env == {PROFILE_ENVS[0]: '/etc/my_profile.xml'}


def test_warnings_name_what_defeats_the_configuration():
    assert 'UDPv4' in transport_warning({TRANSPORT_ENV: 'UDPv4'})
    localhost = transport_warning({TRANSPORT_ENV: 'LARGE_DATA',
                                   'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert 'localhost' in localhost
    assert 'localhost' in transport_warning({TRANSPORT_ENV: 'LARGE_DATA',
                                             'ROS_LOCALHOST_ONLY': '1'})
    assert transport_warning({TRANSPORT_ENV: 'LARGE_DATA'}) is None
    assert 'not found' in transport_warning({PROFILE_ENVS[0]: '/nonexistent/profile.xml'})
    env = {}
    use_large_data(env)
    assert transport_warning({**env, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}) is None
    assert 'rmw_cyclonedds_cpp' in transport_warning({**env,
                                                      'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'})
    assert 'USE_QOS_FROM_XML' in transport_warning({**env, 'RMW_FASTRTPS_USE_QOS_FROM_XML': '1'})


def test_child_env_sets_domain_and_profile(monkeypatch):
    for key in PROFILE_ENVS + (TRANSPORT_ENV,):
        monkeypatch.delenv(key, raising=False)
    env = child_env(42)
    assert env['ROS_DOMAIN_ID'] == '42' and env['PYTHONUNBUFFERED'] == '1'
    assert env[PROFILE_ENVS[1]] == str(profile_path())
