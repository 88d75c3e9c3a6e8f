"""The pure core imports and runs with every ROS module made unimportable."""

CORE_MODULES = ['densehybrid_ros.models', 'densehybrid_ros.scoring', 'densehybrid_ros.checkpoint',
                'densehybrid_ros.inference', 'densehybrid_ros.visualize',
                'densehybrid_ros.classes', 'densehybrid_ros.paths', 'densehybrid_ros.outputs',
                'densehybrid_ros.evaluation', 'densehybrid_ros.prefetch',
                'densehybrid_ros.staging', 'densehybrid_ros.pictures',
                'densehybrid_ros.score_bins', 'densehybrid_ros.confusion',
                'densehybrid_ros.losses', 'densehybrid_ros.train_data']
OPTIONAL_CORE = ['densehybrid_ros.metrics', 'densehybrid_ros.data', 'densehybrid_ros.train',
                 'densehybrid_ros.bags']


def test_core_imports_without_rclpy(run_without_ros):
    run_without_ros(f'''
        import importlib, importlib.util
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
    ''')
