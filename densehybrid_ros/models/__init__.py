"""DenseHybrid architectures: one module per architecture over a shared base, and a registry."""

from typing import Callable, Dict

from .base import DenseHybridModel
from .dlv3plus_wrn38 import DeepLabV3PlusWRN38
from .ladder_resnet18 import LadderResNet18, LadderResNet18Half
from .ldn121 import LDN121

ARCHS: Dict[str, Callable[[int], DenseHybridModel]] = {
    DeepLabV3PlusWRN38.arch: DeepLabV3PlusWRN38,
    LDN121.arch: LDN121,
    LadderResNet18.arch: LadderResNet18,
    LadderResNet18Half.arch: LadderResNet18Half,
}


def build_model(arch: str, num_classes: int) -> DenseHybridModel:
    """Build an untrained model of a registered architecture."""
    try:
        factory = ARCHS[arch]
    except KeyError:
        raise ValueError(
            f'unknown arch {arch!r}; choose one of: {", ".join(sorted(ARCHS))}') from None
    return factory(num_classes)


__all__ = ['ARCHS', 'DenseHybridModel', 'build_model']
