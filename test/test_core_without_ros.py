"""The pure core imports and runs with every ROS module made unimportable."""

# Every layer below ros/ and tools/: all of their modules must import without ROS.
CORE_PACKAGES = ['densehybrid_ros.core', 'densehybrid_ros.metrics', 'densehybrid_ros.models',
                 'densehybrid_ros.data', 'densehybrid_ros.deploy', 'densehybrid_ros.training']


def test_core_imports_without_rclpy(run_without_ros):
    run_without_ros(f'''
        import importlib
        import pkgutil
        names = []
        for package in {CORE_PACKAGES!r}:
            module = importlib.import_module(package)
            names += [m.name for m in pkgutil.walk_packages(module.__path__, package + '.')]
        assert len(names) > 40, names
        for name in names:
            importlib.import_module(name)
        import numpy as np
        from densehybrid_ros.models import build_model
        from densehybrid_ros.deploy.segmenter import Segmenter
        seg = Segmenter.from_model(build_model('ladder_resnet18_half', 19), device='cpu')
        assert seg([np.zeros((20, 30, 3), np.uint8)])[0].semantic.shape == (20, 30)
    ''')
