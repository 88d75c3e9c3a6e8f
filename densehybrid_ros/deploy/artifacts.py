"""Artifacts: exported graphs in folders with their metadata, written, read, checked, cached.

An artifact is a folder: ``model.onnx`` or ``model.xml``/``model.bin`` (OpenVINO IR), plus
``meta.json`` (arch, classes, palette, input size, precision, the threshold calibrated for
that precision, the weights' digest, and the SHA-256 of every file of the graph: ``files``).
:func:`ensure_artifact` caches exports by weights digest, format, size, precision and score.

Graphs are verified before they run (:func:`read_artifact`): every file's SHA-256 against
``meta.json``, the graph's input size against ``meta.json``'s (ONNX: the input's shape, parsed
without external data; OpenVINO: the Parameter's shape in the XML), and ONNX external data
must name files of the artifact folder. A cached graph that fails is exported again with one
warning; a given artifact that fails is refused with one error line. A digest finds a damaged
or swapped file, not a forger who rewrites ``meta.json`` too. Cost at configure, once per
graph, measured on the embedded model's graphs at 360x640 (ladder_resnet18_half, 2-core CPU,
mean of 10): 36 ms for the 13.0 MB ONNX graph (SHA-256 11 ms, parsing it 14 ms; 95 ms while
the machine was busy), 12 ms for the OpenVINO IR (12.5 MB .bin hashed, .xml read up to its
input), against 0.2 ms for ``meta.json`` alone.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
import re
import shutil
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union
from xml.etree import ElementTree

import numpy as np
import torch
from torch import nn

from ..core.classes import default_class_names, default_palette
from ..core.staging import remove_leftovers
from ..models import DenseHybridModel
from ..models.checkpoint import check_finite, load_checkpoint
from ..models.fusion import fuse_for_inference
from .graph import export_onnx, GRAPH_VERSION, OPSET, to_openvino
from .quantize import calibration_frames as read_calibration_frames, quantize_openvino
from .runtimes import check_precision, ExportError, require

FORMAT = 'densehybrid_ros-artifact/1'
FORMATS = {'onnx': 'model.onnx', 'openvino': 'model.xml'}
WEIGHTS = {'openvino': 'model.bin'}            # the graph's other file, where it has one
# The keys a backend reads from meta.json, and their types.
REQUIRED = {'runtime_format': str, 'arch': str, 'input_size': list, 'precision': str,
            'score': str, 'weights_sha256': str}
# Export folders of a cache entry being written: .<key>.<pid> (deleted when the pid is gone).
PARTIAL = re.compile(r'^\.(?P<key>.+)\.(?P<pid>\d+)$')
LOG = logging.getLogger(__name__)
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
    info['files'] = {name: file_digest(output / name) for name in graph_files(output, fmt)}
    (output / 'meta.json').write_text(json.dumps(info, indent=1) + '\n')
    return output


def graph_files(folder: PathLike, fmt: str) -> List[str]:
    """Names of the files a written graph consists of (graph, weights, ONNX external data)."""
    names = graph_names(fmt)
    if fmt == 'onnx':
        graph = Path(folder) / FORMATS[fmt]
        names += [loc for loc in _external_locations(_load_onnx(graph), graph)
                  if loc not in names]
    return names


def read_artifact(path: PathLike, verify: bool = True) -> Dict[str, Any]:
    """Read and check an artifact folder's ``meta.json``; adds ``graph`` (the model file).

    ``verify`` also checks every file's digest and the graph's input size
    (:func:`verify_artifact`); only a caller that has just verified the folder skips it.
    """
    path = Path(path)
    meta_path = path / 'meta.json'
    try:
        info = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ExportError(f'{path} is not an export artifact (no meta.json; make one with '
                          f'densehybrid-export)') from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ExportError(f'{meta_path} cannot be read: {exc}') from None
    if not isinstance(info, dict) or info.get('format') != FORMAT:
        raise ExportError(f'{meta_path} is not a {FORMAT} artifact')
    for key, kind in REQUIRED.items():
        if not isinstance(info.get(key), kind):
            raise ExportError(f'{meta_path}: {key} is missing or not a {kind.__name__}')
    size = info['input_size']
    if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                  for v in size)):
        raise ExportError(f'{meta_path}: input_size must be two positive integers, got {size}')
    if not isinstance(info.get('calibration', {}), dict):
        raise ExportError(f'{meta_path}: calibration must be an object')
    if info['runtime_format'] not in FORMATS:
        raise ExportError(f'{meta_path}: unknown runtime_format {info["runtime_format"]!r} '
                          f'(one of {", ".join(FORMATS)})')
    graph = path / FORMATS[info['runtime_format']]
    if not graph.is_file():
        raise ExportError(f'{path}: graph file {graph.name} is missing')
    if verify:
        verify_artifact(path, info)
    info['graph'] = str(graph)
    return info


def verify_artifact(path: PathLike, info: Dict[str, Any]) -> None:
    """Check the files of an artifact against its ``meta.json`` (``info``); raise if any fail.

    Every file of the graph must be listed in ``files`` with its SHA-256 and match it; the
    graph's input must take ``input_size``; ONNX external data must be files of the folder.
    """
    path = Path(path)
    fmt = info['runtime_format']
    files = info.get('files')
    if not isinstance(files, dict) or not files or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ExportError(f'{path / "meta.json"} lists no file digests (made by an older '
                          f'densehybrid-export?): export the artifact again')
    for name in graph_names(fmt):
        if name not in files:
            raise ExportError(f'{path / "meta.json"} lists no digest for {name}')
    for name in files:
        if name in ('', '.', '..', 'meta.json') or Path(name).name != name:
            raise ExportError(f'{path / "meta.json"}: {name!r} is not a file of the artifact '
                              f'folder')
    for name, want in files.items():
        file = path / name
        if not file.is_file():
            raise ExportError(f'{path}: {name} is missing')
        got = file_digest(file)
        if got != want:
            raise ExportError(f'{file}: SHA-256 {got[:16]} does not match meta.json '
                              f'({want[:16]}): the file was changed or damaged')
    if fmt == 'onnx':
        proto = _load_onnx(path / FORMATS[fmt])
        graph_size = _onnx_input_size(proto)
        for location in _external_locations(proto, path / FORMATS[fmt]):
            if location not in files:
                raise ExportError(f'{path / FORMATS[fmt]}: external data {location!r} is not '
                                  f'a file of the artifact folder listed in meta.json')
    else:
        graph_size = _openvino_input_size(path / FORMATS[fmt])
    if graph_size != tuple(info['input_size']):
        raise ExportError(f'{path / FORMATS[fmt]} takes {_hw(graph_size)} images but meta.json '
                          f'says {_hw(info["input_size"])}: not this artifact\'s graph')


def graph_names(fmt: str) -> List[str]:
    """List the files every graph of ``fmt`` has (ONNX external data comes on top)."""
    return [FORMATS[fmt]] + ([WEIGHTS[fmt]] if fmt in WEIGHTS else [])


def _hw(size: Any) -> str:
    return 'x'.join(str(v) for v in size) if size else 'unknown-size'


def _load_onnx(graph: Path) -> Any:
    """Load the ONNX model proto without its external data (nothing outside the file)."""
    onnx = require('onnx', 'checking ONNX artifacts')
    try:
        return onnx.load(str(graph), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a damaged graph
        raise ExportError(f'{graph} cannot be parsed as ONNX: {type(exc).__name__}: '
                          f'{" ".join(str(exc).split())}') from None


def _onnx_input_size(proto: Any) -> Optional[Size]:
    """Return (h, w) of the graph's ``image`` input (N x 3 x h x w), None if it has none."""
    for value in proto.graph.input:
        if value.name == 'image':
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4 and all(d.HasField('dim_value') for d in dims[2:]):
                return int(dims[2].dim_value), int(dims[3].dim_value)
    return None


def _tensors(graph: Any) -> Iterator[Any]:
    """Yield every tensor of an ONNX graph that can hold external data, subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField('t'):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField('g'):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)


def _external_locations(proto: Any, graph: Path) -> List[str]:
    """List the files an ONNX graph's external data names, each checked to be in its folder."""
    locations: List[str] = []
    folder = graph.parent.resolve()
    for tensor in _tensors(proto.graph):
        if tensor.data_location != 1:              # TensorProto.EXTERNAL
            continue
        location = {e.key: e.value for e in tensor.external_data}.get('location', '')
        target = (folder / location).resolve()
        if (not location or Path(location).is_absolute() or target.parent != folder):
            raise ExportError(f'{graph}: external data of tensor {tensor.name!r} points '
                              f'outside the artifact folder ({location!r}); refused')
        if target.name not in locations:
            locations.append(target.name)
    return locations


def _openvino_input_size(xml: Path) -> Optional[Size]:
    """Return (h, w) of an OpenVINO IR's Parameter (``<data shape="?,3,h,w">``)."""
    try:
        for _, element in ElementTree.iterparse(str(xml)):
            if element.tag == 'layer' and element.get('type') == 'Parameter':
                data = element.find('data')
                dims = (data.get('shape') or '').split(',') if data is not None else []
                if len(dims) == 4 and all(d.strip().isdigit() for d in dims[2:]):
                    return int(dims[2]), int(dims[3])
                return None
    except (ElementTree.ParseError, OSError) as exc:
        raise ExportError(f'{xml} cannot be parsed as OpenVINO IR: {exc}') from None
    return None


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
    folder = Path(root) if root is not None else cache_dir()
    target, ok = _cached(folder, digest, fmt, size, precision, score)
    if ok:
        return target
    # A new size stalls the frames waiting for it (measured on the busy 2-core CPU: 10-13 s
    # for the half-width ladder, onnx + openvino, 54x96 to 360x640): a line when it starts,
    # one with its duration.
    LOG.info(f'exporting the {fmt} {precision} graph for inference size {size[0]}x{size[1]} '
             f'(not in the cache {folder}): frames of this size wait until it is done')
    start = time.monotonic()
    _export(model, meta, fmt, size, precision, score, folder, digest, target)
    LOG.info(f'exported the {fmt} {precision} graph for {size[0]}x{size[1]} in '
             f'{time.monotonic() - start:.1f} s')
    return target


def _cached(folder: Path, digest: str, fmt: str, size: Size, precision: str,
            score: str) -> Tuple[Path, bool]:
    """Find the cache entry's folder and whether it holds a graph that passed its check."""
    key = f'{digest}_g{GRAPH_VERSION}_{fmt}_{size[0]}x{size[1]}_{precision}_{score}'
    target = folder / key
    remove_leftovers(folder, PARTIAL)          # exports of killed processes
    if (target / 'meta.json').is_file():
        try:
            read_artifact(target)
            return target, True
        except ExportError as exc:
            LOG.warning(f'cached graph {target.name} failed its check, exporting it again: '
                        f'{" ".join(str(exc).split())}')
            _remove(target)
    return target, False


def _export(model: DenseHybridModel, meta: Dict[str, Any], fmt: str, size: Size,
            precision: str, score: str, folder: Path, digest: str, target: Path) -> None:
    """Export into the cache entry ``target`` (through a partial folder, moved atomically)."""
    onnx_graph = None
    if fmt == 'openvino':      # convert the cached fp32 ONNX graph (made now if missing)
        onnx_dir, ok = _cached(folder, digest, 'onnx', size, 'fp32', score)
        if not ok:
            _export(model, meta, 'onnx', size, 'fp32', score, folder, digest, onnx_dir)
        onnx_graph = onnx_dir / FORMATS['onnx']
    tmp = folder / f'.{target.name}.{os.getpid()}'
    write_artifact(model, meta, fmt, size, tmp, precision, score, onnx_graph=onnx_graph,
                   digest=digest)
    try:
        os.replace(tmp, target)                # atomic: a concurrent exporter may have won
    except OSError:
        _remove(tmp)


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
