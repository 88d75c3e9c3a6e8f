"""ament-style lint: flake8 at 99 columns, single quotes, pep257 docstrings (setup.cfg)."""

from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent


def test_flake8_is_clean():
    targets = [p for p in ('densehybrid_ros', 'test', 'launch', 'setup.py')
               if (REPO / p).exists()]
    proc = subprocess.run([sys.executable, '-m', 'flake8', *targets], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'flake8 found issues:\n{proc.stdout}{proc.stderr}'
