"""The GPU check says clearly that it needs CUDA, and installs nothing without it."""

import os
import subprocess
import sys

from densehybrid_ros.tools.speed.gpu_check import NO_CUDA_EXIT, REQUIREMENTS


def test_without_cuda_it_exits_with_a_clear_message():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, '-m', 'densehybrid_ros.tools.speed.bench', 'gpu-check',
                           '--setup'], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == NO_CUDA_EXIT
    assert 'gpu-check: no CUDA device on this machine' in proc.stderr
    assert 'Traceback' not in proc.stderr and 'replacing onnxruntime' not in proc.stderr


def test_setup_installs_the_repositorys_gpu_requirements():
    assert REQUIREMENTS.is_file(), REQUIREMENTS
    assert 'onnxruntime-gpu' in REQUIREMENTS.read_text()
