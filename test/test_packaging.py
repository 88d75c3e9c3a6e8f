"""Packaging: the wheel installs share files and console scripts the way colcon would."""

from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARE_DIRS = ('launch', 'config', 'models')


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '--quiet', '--disable-pip-version-check', '-w', str(out), str(REPO)],
                   check=True, timeout=300, capture_output=True)
    (path,) = out.glob('densehybrid_ros-*.whl')
    return zipfile.ZipFile(path)


def test_wheel_installs_every_share_file(wheel):
    names = set(wheel.namelist())
    data = [n for n in names if '.data/data/share/densehybrid_ros/' in n]
    assert any(n.endswith('share/densehybrid_ros/package.xml') for n in data)
    assert any(n.endswith('share/ament_index/resource_index/packages/densehybrid_ros')
               for n in names)
    for folder in SHARE_DIRS:
        for f in (REPO / folder).glob('*'):
            if f.is_file():
                assert any(n.endswith(f'share/densehybrid_ros/{folder}/{f.name}') for n in data), \
                    f'{folder}/{f.name} is not installed'


def test_console_scripts_are_registered(wheel):
    (entry,) = [n for n in wheel.namelist() if n.endswith('entry_points.txt')]
    text = wheel.read(entry).decode()
    for script in ('densehybrid-node', 'densehybrid-train', 'densehybrid-eval',
                   'densehybrid-replay', 'densehybrid-bench', 'densehybrid-import',
                   'densehybrid-make-bag', 'densehybrid-segment', 'densehybrid-demo',
                   'densehybrid-ctl', 'densehybrid-weights'):
        assert f'{script} = ' in text


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == 'densehybrid_ros'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root if e.tag.endswith('depend')}
    for dep in ('rclpy', 'sensor_msgs', 'diagnostic_msgs', 'lifecycle_msgs', 'cv_bridge'):
        assert dep in deps


def package_deps() -> dict:
    """package.xml dependencies by tag (exec_depend, test_depend, ...)."""
    deps: dict = {}
    for element in ET.parse(REPO / 'package.xml').getroot():
        if element.tag.endswith('depend'):
            deps.setdefault(element.tag, set()).add(element.text)
    return deps


def test_package_xml_names_runtime_and_test_keys_and_rviz_is_optional():
    deps = package_deps()
    assert {'python3-torch', 'python3-torchvision', 'python3-pil', 'ros2launch', 'launch',
            'launch_ros'} <= deps['exec_depend']
    assert 'rviz2' not in set().union(*deps.values())          # optional on a headless vehicle
    assert {'python3-pytest', 'python3-pytest-timeout', 'python3-flake8',
            'python3-flake8-docstrings', 'python3-flake8-quotes'} <= deps['test_depend']
    unused = {'ament_copyright', 'ament_pep257', 'ament_flake8'} & deps['test_depend']
    assert not unused, f'no test uses {unused}'


def test_setup_py_declares_test_extra_not_tests_require(wheel):
    text = (REPO / 'setup.py').read_text()
    assert 'tests_require=' not in text       # ignored by setuptools >= 72: colcon ran 0 tests
    (metadata,) = [n for n in wheel.namelist() if n.endswith('.dist-info/METADATA')]
    extras = [line.split(':', 1)[1] for line in wheel.read(metadata).decode().splitlines()
              if line.startswith('Requires-Dist:') and 'extra == "test"' in line]
    for name in ('pytest', 'pytest-timeout', 'flake8', 'flake8-quotes', 'flake8-docstrings'):
        assert any(r.split(';')[0].strip() == name for r in extras), name
