"""Install the densehybrid_ros package (ament_python, also pip-installable without ROS)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'densehybrid_ros'
TEST_REQUIRES = ['pytest', 'pytest-timeout', 'pytest-rerunfailures', 'flake8', 'flake8-quotes',
                 'flake8-docstrings', 'scikit-learn', 'hypothesis']


def share(folder: str, pattern: str = '*'):
    """List ``folder/pattern`` files for installation into ``share/<package>/folder``."""
    return (os.path.join('share', PACKAGE, folder),
            [f for f in glob(os.path.join(folder, pattern)) if os.path.isfile(f)])


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        share('launch', '*.py'),
        share('config'),
        share('models'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='densehybrid_ros maintainers',
    maintainer_email='maintainers@densehybrid-ros.invalid',
    description='DenseHybrid dense open-set segmentation for ROS 2',
    license='Apache-2.0',
    # setuptools >= 72 ignores tests_require, and colcon test then ran 0 tests: the test
    # dependencies are an extra (pip install -e .[test]); pinned in requirements/dev.txt.
    extras_require={'test': TEST_REQUIRES},
    entry_points={
        'console_scripts': [
            'densehybrid-import = densehybrid_ros.tools.model.import_official:main',
            'densehybrid-weights = densehybrid_ros.tools.model.weights:main',
            'densehybrid-segment = densehybrid_ros.tools.model.segment:main',
            'densehybrid-node = densehybrid_ros.ros.main:main',
            'densehybrid-ctl = densehybrid_ros.ros.ctl:main',
            'densehybrid-train = densehybrid_ros.training.train:main',
            'densehybrid-eval = densehybrid_ros.tools.evaluation.eval_bag:main',
            'densehybrid-make-bag = densehybrid_ros.tools.rostools.make_bag:main',
            'densehybrid-replay = densehybrid_ros.tools.rostools.replay:main',
            'densehybrid-demo = densehybrid_ros.tools.rostools.demo:main',
            'densehybrid-bench = densehybrid_ros.tools.speed.bench:main',
            'densehybrid-eval-families = densehybrid_ros.tools.evaluation.families:main',
            'densehybrid-export = densehybrid_ros.tools.model.export:main',
        ],
    },
)
