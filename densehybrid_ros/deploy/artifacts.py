"""Artifacts: exported graphs in folders with their metadata, written, read, checked, cached.

An artifact is a folder: ``model.onnx`` or ``model.xml``/``model.bin`` (OpenVINO IR), plus
``meta.json`` (arch, classes, palette, input size, precision, the threshold calibrated for
that precision, the weights' digest). :func:`ensure_artifact` caches exports by weights digest,
format, size, precision and score.
"""

import hashlib
import json
import os
from pathlib import Path
import shutil
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..core.classes import default_class_names, default_palette
from ..models import DenseHybridModel
from ..models.checkpoint import check_finite, load_checkpoint
from ..models.fusion import fuse_for_inference
from .graph import export_onnx, GRAPH_VERSION, OPSET, to_openvino
from .quantize import calibration_frames as read_calibration_frames, quantize_openvino
from .runtimes import check_precision, ExportError

FORMAT = 'densehybrid_ros-artifact/1'
FORMATS = {'onnx': 'model.onnx', 'openvino': 'model.xml'}
Size = Tuple[int, int]
PathLike = Union[str, os.PathLike]


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (hex, 16 chars) of a model's state_dict: names, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def file_digest(path: PathLike) -> str:
    """SHA-256 (hex) of a file, e.g. the source checkpoint."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def build_meta(model: DenseHybridModel, meta: Dict[str, Any], fmt: str, size: Size,
               precision: str, score: str, calibration: Optional[Dict[str, Any]] = None,
               digest: Optional[str] = None) -> Dict[str, Any]:
    """Build the artifact's ``meta.json``: everything a backend needs without the checkpoint.

    ``digest`` is :func:`weights_digest` of ``model`` when the caller has it already.
    """
    k = model.num_classes
    palette = meta.get('palette')
    palette = default_palette(k) if palette is None else np.asarray(palette, np.uint8)
    return {
        'format': FORMAT, 'runtime_format': fmt, 'arch': model.arch, 'num_classes': k,
        'class_names': list(meta.get('class_names') or default_class_names(k)),
        'palette': np.asarray(palette).tolist(), 'input_size': [int(size[0]), int(size[1])],
        'precision': precision, 'score': score,
        'labels_dtype': 'uint8' if k <= 255 else 'int32',
        'calibration': dict(calibration if calibration is not None
                            else meta.get('calibration') or {}),
        'weights_sha256': digest or weights_digest(model),
        'checkpoint_sha256': meta.get('checkpoint_sha256', ''),
        'opset': OPSET, 'graph_version': GRAPH_VERSION, 'torch': torch.__version__,
    }


def write_artifact(model: DenseHybridModel, meta: Dict[str, Any], fmt: str, size: Size,
                   output: PathLike, precision: str = 'fp32', score: str = 'hybrid',
                   calibration_frames: Optional[Iterable[np.ndarray]] = None,
                   onnx_graph: Optional[PathLike] = None, digest: Optional[str] = None) -> Path:
    """Export ``model`` at ``size`` into the artifact folder ``output``; returns the folder.

    OpenVINO artifacts convert ``onnx_graph`` (the fp32 ONNX graph of the same model, size and
    score) when given, instead of exporting again.
    """
    if fmt not in FORMATS:
        raise ExportError(f'format must be one of {sorted(FORMATS)}, got {fmt!r}')
    check_precision(fmt, precision)
    if precision == 'int8' and calibration_frames is None:
        raise ExportError('int8 needs calibration frames (densehybrid-export --calibration '
                          'DIR_OR_BAG)')
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    calibration = None
    if fmt == 'onnx':
        export_onnx(model, size, output / FORMATS['onnx'], score, precision)
    else:
        tmp = output / '_graph.onnx'
        if onnx_graph is not None:
            shutil.copyfile(onnx_graph, tmp)
        else:
            export_onnx(model, size, tmp, score)
        if precision == 'int8':
            calibration = quantize_openvino(model, meta, tmp, size, calibration_frames,
                                            output / FORMATS['openvino'], score)
        else:
            to_openvino(tmp, output / FORMATS['openvino'])
        tmp.unlink()
    info = build_meta(model, meta, fmt, size, precision, score, calibration, digest)
    (output / 'meta.json').write_text(json.dumps(info, indent=1) + '\n')
    return output


def read_artifact(path: PathLike) -> Dict[str, Any]:
    """Read and check an artifact folder's ``meta.json``; adds ``graph`` (the model file)."""
    path = Path(path)
    meta_path = path / 'meta.json'
    try:
        info = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ExportError(f'{path} is not an export artifact (no meta.json; make one with '
                          f'densehybrid-export)') from None
    except (OSError, ValueError) as exc:
        raise ExportError(f'{meta_path} cannot be read: {exc}') from None
    if not isinstance(info, dict) or info.get('format') != FORMAT:
        raise ExportError(f'{meta_path} is not a {FORMAT} artifact')
    graph = path / FORMATS.get(info.get('runtime_format'), '?')
    if not graph.is_file():
        raise ExportError(f'{path}: graph file {graph.name} is missing')
    info['graph'] = str(graph)
    return info


def cache_dir() -> Path:
    """Where lazily exported graphs live: $DENSEHYBRID_CACHE or ~/.cache/densehybrid_ros."""
    root = os.environ.get('DENSEHYBRID_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'densehybrid_ros')
    return Path(root) / 'artifacts'


def ensure_artifact(model: DenseHybridModel, meta: Dict[str, Any], fmt: str, size: Size,
                    precision: str, score: str, root: Optional[PathLike] = None,
                    digest: Optional[str] = None) -> Path:
    """Return the cached artifact for these weights/size/precision, exporting it if missing.

    ``digest`` is :func:`weights_digest` of ``model`` when the caller has it already (hashing
    the weights costs about 1 s for the 550 MB DeepLabV3+ model).
    """
    if precision == 'int8':
        raise ExportError('int8 is not exported lazily (it needs calibration frames): make an '
                          'artifact with densehybrid-export --precision int8 --calibration '
                          'DIR_OR_BAG and pass it to the Segmenter')
    digest = digest or weights_digest(model)
    key = f'{digest}_g{GRAPH_VERSION}_{fmt}_{size[0]}x{size[1]}_{precision}_{score}'
    folder = Path(root) if root is not None else cache_dir()
    target = folder / key
    if (target / 'meta.json').is_file():
        return target
    onnx_graph = None
    if fmt == 'openvino':      # convert the cached fp32 ONNX graph (made now if missing)
        onnx_graph = Path(ensure_artifact(model, meta, 'onnx', size, 'fp32', score, root,
                                          digest), FORMATS['onnx'])
    tmp = folder / f'.{key}.{os.getpid()}'
    write_artifact(model, meta, fmt, size, tmp, precision, score, onnx_graph=onnx_graph,
                   digest=digest)
    try:
        os.replace(tmp, target)                # atomic: a concurrent exporter may have won
    except OSError:
        _remove(tmp)
    return target


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def as_size(values: Sequence[int]) -> Size:
    """(h, w) from two positive integers, with a clear error otherwise."""
    if len(values) != 2 or any(int(v) < 16 for v in values):
        raise ExportError(f'size must be two integers H W >= 16, got {list(values)}')
    return int(values[0]), int(values[1])


def export_checkpoint(checkpoint: PathLike, fmt: str, size: Size, output: PathLike,
                      precision: str = 'fp32', calibration: Optional[PathLike] = None,
                      score: str = 'hybrid', calibration_limit: int = 64) -> Dict[str, Any]:
    """Load, check and fold a checkpoint, export it; returns the artifact's metadata."""
    if fmt not in FORMATS:
        raise ExportError(f'format must be one of {sorted(FORMATS)}, got {fmt!r}')
    check_precision(fmt, precision)
    if calibration is not None and precision != 'int8':
        raise ExportError('--calibration is for --precision int8 only')
    frames = None
    if precision == 'int8':
        if calibration is None:
            raise ExportError('int8 needs --calibration DIR_OR_BAG (frames from your cameras)')
        frames = read_calibration_frames(calibration, calibration_limit)
    model, meta = load_checkpoint(checkpoint, device='cpu')
    check_finite(model, checkpoint)
    meta = dict(meta, checkpoint_sha256=file_digest(checkpoint))
    folder = write_artifact(fuse_for_inference(model), meta, fmt, size, output, precision,
                            score, frames)
    return read_artifact(folder)
