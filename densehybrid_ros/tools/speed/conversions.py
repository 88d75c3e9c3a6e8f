"""Node figures of densehybrid-bench without the node: per-step conversion cost at camera size.

cv_bridge input conversion, per-output rendering (``outputs.Renderer``) and message building,
and the resize between camera and inference size timed on the Segmenter's own CPU path
(``deploy.preprocess.to_batch``: OpenCV area resize of the uint8 image; OpenCV bilinear /
nearest for the score and labels), not a torch stand-in.
"""

from typing import Any, Callable, Dict

import numpy as np

from .harness import median_seconds
from .node import make_frames
from .plan import Log, NUM_CLASSES, Size, size_name, THRESHOLD


def bench_conversions(size: Size, reps: int, inference_width: int, seed: int,
                      lut_palette: np.ndarray, log: Log) -> Dict[str, Any]:
    """Milliseconds per conversion step at the camera size (median of ``reps``)."""
    import cv2
    from std_msgs.msg import Header
    import torch

    from ...deploy.preprocess import resize_np, to_batch  # the Segmenter's own steps
    from ...deploy.segmenter import Result
    from ...core.outputs import OUTPUTS, Renderer
    from ...ros import conversions

    log(f'conversions at {size_name(size)}')
    h, w = size
    rgb = make_frames(1, size, seed)[0]
    rng = np.random.default_rng(seed)
    score = rng.normal(-3.0, 1.5, (h, w)).astype(np.float32)
    semantic = rng.integers(0, NUM_CLASSES, (h, w), dtype=np.uint8)
    result = Result(semantic=semantic, score=score,
                    open_set=np.where(score > THRESHOLD, np.uint8(255), semantic),
                    anomaly_mask=score > THRESHOLD)
    renderer = Renderer(lut_palette, {'score_p01': -6.0, 'score_p99': 1.0}, alpha=0.5)

    def timed(fn: Callable[[], Any]) -> float:
        return 1e3 * median_seconds(fn, reps, warmup=1)

    header = Header()
    msg = conversions.numpy_to_image(rgb, 'rgb8', header)
    bgr_msg = conversions.numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8', header)
    out: Dict[str, Any] = {
        'size': size_name(size),
        'input_rgb8_cv_bridge': timed(lambda: conversions.msg_to_rgb(msg)),
        'input_bgr8_cv_bridge': timed(lambda: conversions.msg_to_rgb(bgr_msg)),
        'outputs': {},
    }
    for name, encoding, _ in OUTPUTS.values():
        image = renderer.render(name, rgb, result)
        out['outputs'][name] = {
            'render': timed(lambda n=name: renderer.render(n, rgb, result)),
            'to_message': timed(lambda i=image, e=encoding: conversions.numpy_to_image(
                i, e, header)),
        }
    if inference_width and inference_width != w:
        small = (max(1, round(h * inference_width / w)), inference_width)
        s = np.ascontiguousarray(score[:small[0], :small[1]])
        lab = np.ascontiguousarray(semantic[:small[0], :small[1]])
        cpu = torch.device('cpu')
        out['resize'] = {       # as Segmenter._run on a CPU: OpenCV on uint8 / float32 maps
            'from': size_name(small),
            'input_down_antialias': timed(lambda: to_batch([rgb], small, cpu)),  # area + float
            'score_up_bilinear': timed(lambda: resize_np(s, size, cv2.INTER_LINEAR)),
            'labels_up_nearest': timed(lambda: resize_np(lab, size, cv2.INTER_NEAREST)),
        }
    out['total_all_outputs'] = (out['input_rgb8_cv_bridge'] + sum(
        v['render'] + v['to_message'] for v in out['outputs'].values())
        + sum(v for k, v in out.get('resize', {}).items() if k != 'from'))
    return out
