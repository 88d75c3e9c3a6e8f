"""Preprocessing: which size the model sees, the device, images to one float batch and back.

``inference_shape`` picks the model's input size for an image (native, a width, or fixed, within
a pixel budget); ``to_batch`` turns H_i x W_i x 3 uint8 RGB images into one N x 3 x h x w float
batch in [0, 1] on the device; ``resize_np`` / ``resize_map`` bring labels and scores back to
each image's size.
"""

import math
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Size = Tuple[int, int]
# Default bound on the pixels the model sees per image (the outputs keep the camera size):
# 2 MiP = 1024 x 2048, Cityscapes' native size. Without a bound one 8000 x 8000 frame took the
# node past 6.7 GB RSS in 17 s (issue 15).
MAX_INFERENCE_PIXELS = 2048 * 1024


def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' -> CUDA when available, else CPU; an explicit CUDA device must exist."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f'invalid device {device!r}: {exc}') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available '
                             f'(use device "cpu" or "auto")')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r} does not exist '
                             f'({torch.cuda.device_count()} CUDA devices)')
    elif dev.type != 'cpu':
        raise ValueError(f'unsupported device {device!r}: use auto, cpu, cuda or cuda:N')
    return dev


def inference_shape(image_shape: Sequence[int], inference_size: Union[None, int, Size],
                    max_pixels: int = MAX_INFERENCE_PIXELS, max_native_width: int = 0) -> Size:
    """(h, w) the model sees for an H x W image: native, a width keeping aspect, or fixed.

    Native (``inference_size`` None or 0) wider than ``max_native_width`` (0 = no bound: the
    checkpoint's ``max_inference_width``) shrinks to that width; larger than ``max_pixels``
    (0 = no bound), the size shrinks keeping the aspect ratio.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    if not inference_size and 0 < max_native_width < w:
        inference_size = max_native_width                   # downscale only, never up
    if isinstance(inference_size, int) and inference_size > 0:
        h, w = max(1, round(h * inference_size / w)), inference_size
    elif inference_size is not None and not isinstance(inference_size, int):
        h, w = int(inference_size[0]), int(inference_size[1])
    if max_pixels and h * w > max_pixels:
        scale = math.sqrt(max_pixels / (h * w))
        h, w = max(1, int(h * scale)), max(1, int(w * scale))
    return h, w


def to_batch(images: Sequence[np.ndarray], size: Size, device: torch.device = torch.device('cpu'),
             memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Stack uint8 HWC images of any sizes into one float batch at ``size`` on the device."""
    if all(image.shape == images[0].shape for image in images):
        chunks = [np.stack(images)]
    else:
        chunks = [image[None] for image in images]
    batches = []
    for chunk in chunks:
        if device.type == 'cpu' and chunk.shape[1:3] != size:
            # On the CPU, resize the uint8 image with OpenCV (area averaging when shrinking):
            # several times cheaper than a float antialiased resize in torch.
            chunk = np.stack([resize_np(im, size, cv2.INTER_AREA if size[0] < im.shape[0]
                                        else cv2.INTER_LINEAR) for im in chunk])
        x = torch.from_numpy(chunk).to(device, non_blocking=True)  # n x H x W x 3
        x = x.permute(0, 3, 1, 2).float().div_(255.0)                   # n x 3 x H x W
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False,
                              antialias=size[0] < x.shape[-2])
        batches.append(x)
    x = batches[0] if len(batches) == 1 else torch.cat(batches)
    return x.contiguous(memory_format=memory_format)


def resize_np(x: np.ndarray, size: Sequence[int], interpolation: int) -> np.ndarray:
    """Resize an H x W (x C) array to ``size`` (H, W) with OpenCV (half-pixel centres)."""
    if tuple(x.shape[:2]) == tuple(size):
        return x
    return cv2.resize(x, (int(size[1]), int(size[0])), interpolation=interpolation)


def resize_map(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize one h x w map to ``size``; labels with nearest, scores bilinear."""
    if tuple(x.shape) == tuple(size):
        return x
    if mode == 'nearest':
        return F.interpolate(x[None, None].float(), size=tuple(size),
                             mode='nearest')[0, 0].to(x.dtype)
    return F.interpolate(x[None, None], size=tuple(size), mode='bilinear',
                         align_corners=False)[0, 0]


def check_image(index: int, image: np.ndarray) -> None:
    """Refuse anything but a non-empty H x W x 3 uint8 RGB array, naming its index."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        desc = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f'image {index} must be a non-empty H x W x 3 uint8 RGB array, '
                         f'got {desc}')
