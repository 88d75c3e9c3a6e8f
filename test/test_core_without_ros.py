"""The pure core imports and runs with every ROS module made unimportable."""

import subprocess
import sys
import textwrap

CORE_MODULES = ['densehybrid_ros.models', 'densehybrid_ros.scoring', 'densehybrid_ros.checkpoint',
                'densehybrid_ros.inference', 'densehybrid_ros.visualize',
                'densehybrid_ros.classes', 'densehybrid_ros.paths']
OPTIONAL_CORE = ['densehybrid_ros.metrics', 'densehybrid_ros.data', 'densehybrid_ros.train',
                 'densehybrid_ros.bags']


def test_core_imports_without_rclpy(tmp_path):
    script = textwrap.dedent(f'''
        import importlib, importlib.util, sys
        BLOCKED = ('rclpy', 'cv_bridge', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs',
                   'builtin_interfaces', 'lifecycle_msgs', 'rosidl_runtime_py')

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError('blocked for this test: ' + name)
                return None

        sys.meta_path.insert(0, Block())
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        for name in {OPTIONAL_CORE!r}:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        import numpy as np
        from densehybrid_ros.models import build_model
        from densehybrid_ros.inference import Segmenter
        seg = Segmenter.from_model(build_model('ladder_resnet18_half', 19), device='cpu')
        assert seg([np.zeros((20, 30, 3), np.uint8)])[0].semantic.shape == (20, 30)
        assert not any(m.split('.')[0] in BLOCKED for m in sys.modules)
        print('ok')
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith('ok')
