"""Machine facts recorded next to every bench figure: CPU, extensions, threads, versions."""

import os
from pathlib import Path
import platform
from typing import Any, Dict

import numpy as np


def cpu_flags() -> Dict[str, bool]:
    """Which of the vector / matrix extensions that matter for inference the CPU has."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return {}
    flags = set()
    for line in text.splitlines():
        if line.startswith('flags'):
            flags = set(line.split(':', 1)[1].split())
            break
    return {f: f in flags for f in ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16',
                                    'amx_bf16', 'amx_tile')}


def cpu_model() -> str:
    """Return the CPU model name."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: Any) -> Dict[str, Any]:
    """CPU, threads, library versions and device: what a figure depends on."""
    import cv2
    import torch

    facts: Dict[str, Any] = {
        'cpu': cpu_model(), 'cpu_flags': cpu_flags(), 'logical_cpus': os.cpu_count(),
        'usable_cpus': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
        else os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch_interop_threads': torch.get_num_interop_threads(),
        'torch': torch.__version__, 'numpy': np.__version__, 'opencv': cv2.__version__,
        'python': platform.python_version(), 'platform': platform.platform(),
        'device': str(device), 'mkldnn': bool(torch.backends.mkldnn.is_available()),
        'load_average_start': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
    }
    if device.type == 'cuda':
        facts['gpu'] = torch.cuda.get_device_name(device)
    return facts
