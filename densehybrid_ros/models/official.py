"""Import of the authors' raw DenseHybrid state_dicts (and re-import of project checkpoints).

Undoes the usual wrappers (``{'state_dict': ...}``, DataParallel's ``module.`` prefix), tells
the architecture from the keys when it is not given, checks keys and shapes on the ``meta``
device before allocating the weights, and returns a model plus the checkpoint meta that
``save_checkpoint`` writes.
"""

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .checkpoint import (check_fit, CheckpointError, FORMAT, load_state_dict_strict, PathLike,
                         read_checkpoint)
from ..core.classes import default_class_names, default_palette
from . import ARCHS, build_model, DenseHybridModel
from .signature import guess_arch, strip_module_prefix

OOD_HEAD = 'logits_ood.'              # the dataset-posterior head's keys, in every architecture


def import_official(state_dict_or_path: Union[PathLike, Mapping[str, Any]],
                    arch: Optional[str] = None, num_classes: Optional[int] = None,
                    class_names: Optional[Sequence[str]] = None,
                    calibration: Optional[Mapping[str, Any]] = None, new_ood_head: bool = False
                    ) -> Tuple[DenseHybridModel, Dict[str, Any]]:
    """Build a model from an authors' raw state_dict (strict); returns ``(model, meta)``.

    ``new_ood_head``: the file is a plain segmentation model (e.g. Cityscapes DeepLabV3+ weights,
    where the authors' DenseHybrid fine-tuning starts) without ``logits_ood.*``; that head keeps
    its fresh initialisation and every other key is still checked strictly.
    ``arch`` None: told from the keys. Wrappers (``{'state_dict': ...}``, ``module.`` keys) are
    undone. A project checkpoint re-imports with its arch, classes, palette and calibration;
    ``calibration`` fields given here override the stored ones.
    """
    if isinstance(state_dict_or_path, Mapping):
        container, source = dict(state_dict_or_path), 'state_dict'
    else:
        container, source = read_checkpoint(state_dict_or_path), str(state_dict_or_path)
    state_dict = container
    for wrapper in ('state_dict', 'model'):           # {'state_dict': ...} style containers
        if isinstance(container.get(wrapper), Mapping):
            state_dict = dict(container[wrapper])
            break
    state_dict = strip_module_prefix(state_dict)
    previous = container if container.get('format') == FORMAT else {}
    if previous:
        if arch is not None and arch != previous.get('arch'):
            raise CheckpointError(f'{source} is a densehybrid_ros checkpoint of arch '
                                  f'{previous.get("arch")!r}, not {arch!r}')
        arch, num_classes = previous.get('arch'), int(previous.get('num_classes', 0))
        class_names = class_names or previous.get('class_names')
    if arch is None:
        arch = guess_arch(state_dict)
        if arch is None:
            raise CheckpointError(f'cannot tell the architecture of {source} from its keys '
                                  f'(first: {", ".join(list(state_dict)[:3])}); give --arch, '
                                  f'one of: {", ".join(sorted(ARCHS))}')
    num_classes = num_classes or 19
    with torch.device('meta'):        # check keys and shapes before allocating the weights
        probe = build_model(arch, num_classes)
    if new_ood_head:
        present = [k for k in state_dict if k.startswith(OOD_HEAD)]
        if present:
            raise CheckpointError(f'{source} has its own OOD head ({present[0]}, ...); import it '
                                  f'without --new-ood-head')
        state_dict = {**state_dict, **_ood_head(probe)}
    check_fit(probe, state_dict, source=source)
    model = build_model(arch, num_classes)
    if new_ood_head:
        state_dict.update(_ood_head(model))
    load_state_dict_strict(model, state_dict, source=source)
    names = list(class_names) if class_names else default_class_names(num_classes)
    palette = (np.asarray(previous['palette'], dtype=np.uint8)
               if previous.get('palette') is not None and names == previous.get('class_names')
               else default_palette(num_classes, names))
    merged = {**(previous.get('calibration') or {}), **(calibration or {})}
    origin = os.path.basename(source) if source != 'state_dict' else source
    meta = {
        'format': FORMAT, 'arch': arch, 'num_classes': num_classes, 'class_names': names,
        'palette': palette, 'calibration': merged or None,
        'train': ({**previous.get('train', {}), 'reimported_from': origin} if previous
                  else {'imported_from': origin}),
    }
    if new_ood_head:
        meta['train']['new_ood_head'] = True
    return model.eval(), meta


def _ood_head(model: DenseHybridModel) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(OOD_HEAD)}
