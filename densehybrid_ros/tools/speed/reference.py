"""densehybrid-bench --reference: the authors' LadderDenseNetTH against this project's ldn121.

Their class is imported from a checkout at run time (never copied here) and run on the same
weights and input as ours; speed-up and the largest output difference are reported.
"""

import contextlib
import importlib.util
import io
from pathlib import Path
import types
from typing import Any, Dict
import warnings

from .agreement import label_agreement, max_abs_diff
from .arch import Pipelines
from .harness import device_sync, interleave, median, percentile, seconds
from .plan import Log, NUM_CLASSES, Plan, size_name


def load_reference_class(path: Path) -> Any:
    """Import ``LadderDenseNetTH`` from the authors' checkout (``models/ladder_densenet.py``)."""
    path = Path(path).expanduser()
    candidates = [path, path / 'ladder_densenet.py', path / 'models' / 'ladder_densenet.py']
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise FileNotFoundError(f'no models/ladder_densenet.py under {path} (point --reference '
                                f"at a checkout of the authors' DenseHybrid repository)")
    spec = importlib.util.spec_from_file_location('densehybrid_reference_ladder_densenet', file)
    if spec is None or spec.loader is None:
        raise ImportError(f'cannot import {file}')
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    if not hasattr(module, 'LadderDenseNetTH'):
        raise ImportError(f'{file} has no LadderDenseNetTH')
    return module.LadderDenseNetTH


def bench_reference(path: Path, state_dict: Dict[str, Any], model: Any, meta: Dict[str, Any],
                    plan: Plan, device: Any, seed: int, log: Log) -> Dict[str, Any]:
    """Time the authors' LDN-121 against ours on the same weights and input; compare outputs."""
    import torch

    from ...deploy.segmenter import Segmenter
    from ...core.scoring import hybrid_score

    cls = load_reference_class(path)
    with contextlib.redirect_stdout(io.StringIO()):       # their constructor prints sizes
        ref = cls(types.SimpleNamespace(last_block_pooling=0), num_classes=NUM_CLASSES)
    ref.load_state_dict(state_dict, strict=True)
    ref = ref.eval().to(device)
    seg = Segmenter.from_model(model, meta, device=str(device))
    ours = Pipelines(seg.model, device, seg.memory_format)
    size = plan.fps_sizes[0]
    x = ours.input(1, size, seed)
    x_ref = x.contiguous()

    def call_ref() -> Any:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return ref(x_ref)

    log(f'reference: warm-up and {plan.pairs} interleaved pairs at {size_name(size)}')
    mine: Dict[str, Any] = {}
    ours.full(x, mine)
    ref_logits, ref_ood = call_ref()                                # warm-up, outputs
    sync = device_sync(device)
    t_ref, t_ours = interleave([lambda i: seconds(call_ref, sync), lambda i: ours.full(x)[0]],
                               plan.pairs)
    speedups = [a / b for a, b in zip(t_ref, t_ours)]
    ref_score = hybrid_score(ref_logits.float(), ref_ood.float())
    diffs = {
        'logits': max_abs_diff(mine['logits'], ref_logits),
        'ood_logits': max_abs_diff(mine['ood_logits'], ref_ood),
        'score': max_abs_diff(mine['score'], ref_score),
    }
    p25, p75 = percentile(speedups, 25), percentile(speedups, 75)
    return {
        'speedup': median(speedups), 'p25': p25, 'p75': p75, 'pairs': len(speedups),
        'size': size_name(size), 'reference_ms': 1e3 * median(t_ref),
        'ours_ms': 1e3 * median(t_ours), 'max_abs_diff': max(diffs.values()),
        'max_abs_diff_by_output': diffs, 'source': str(path),
        'label_agreement': label_agreement(mine['logits'].argmax(1), ref_logits.argmax(1)),
    }
