"""Where the package's shared files (models/, config/, launch/) live, with or without ROS."""

from pathlib import Path
import sys

PACKAGE = 'densehybrid_ros'
DEFAULT_MODEL = 'densehybrid_ladder_resnet18_synthetic.pt'
_SOURCE_ROOT = Path(__file__).resolve().parents[2]      # the repository: densehybrid_ros/core/..


def package_share() -> Path:
    """Find the share directory: ament index, then the pip prefix, then the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed through colcon, or ament_index_python absent
        pass
    prefix_share = Path(sys.prefix) / 'share' / PACKAGE
    if (prefix_share / 'package.xml').is_file():
        return prefix_share
    return _SOURCE_ROOT


def default_checkpoint() -> Path:
    """Return the embedded default model shipped in ``models/``."""
    for root in (package_share(), _SOURCE_ROOT):
        candidate = root / 'models' / DEFAULT_MODEL
        if candidate.is_file():
            return candidate
    return package_share() / 'models' / DEFAULT_MODEL


def default_params_file() -> Path:
    """Return the shipped ``config/densehybrid.yaml``."""
    return package_share() / 'config' / 'densehybrid.yaml'
