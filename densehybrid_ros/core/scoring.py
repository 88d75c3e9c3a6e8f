"""DenseHybrid anomaly scores and open-set prediction.

For logits ``s`` of the closed-set head and ``o`` of the dataset-posterior head:

* generative score     ``-log p_hat(x) = -logsumexp(s)``  (unnormalised likelihood, negated)
* discriminative score ``log P(d_out | x) = log_softmax(o)[outlier]``
* hybrid score         the sum of both (the DenseHybrid score)

Higher means more anomalous everywhere. Scores work on tensors shaped N x C x H x W (C = K or 2)
and return N x H x W.
"""

from typing import Callable, Dict, Tuple, Union

import numpy as np
import torch

from .classes import UNKNOWN_ID


def stable_logsumexp(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``max + log(sum(exp(x - max)))`` over ``dim``, written out so that it stays finite.

    Exported graphs must not rely on a runtime's ReduceLogSumExp: TensorRT lowers it to
    log(sum(exp(x))) without the shift, and the embedded model's logits reach -450, where
    exp underflows to 0 (-inf in fp32; fp16 overflows above 11).
    """
    top = x.amax(dim, keepdim=True)
    return (x - top).exp().sum(dim).log() + top.squeeze(dim)


def generative_score(logits: torch.Tensor) -> torch.Tensor:
    """Return the negated log of the unnormalised likelihood, ``-logsumexp(logits, 1)``."""
    return -stable_logsumexp(logits, 1)


def discriminative_score(ood_logits: torch.Tensor) -> torch.Tensor:
    """Log dataset posterior of the outlier class, ``log_softmax(ood_logits, 1)[:, 1]``."""
    # For two classes log_softmax(o)[1] == logsigmoid(d), d = o1 - o0, written with the max
    # subtracted (min(d, 0) - log(1 + exp(-|d|))): exp never sees a positive argument, so it is
    # finite in fp16 and in any runtime's lowering (a graph's Log(Sigmoid(d)) gives -inf for
    # d < -104 in fp32, d < -17 in fp16). Equal to F.logsigmoid within 1e-7.
    d = ood_logits[:, 1] - ood_logits[:, 0]
    return d.clamp(max=0.0) - torch.log1p(torch.exp(-d.abs()))


def hybrid_score(logits: torch.Tensor, ood_logits: torch.Tensor) -> torch.Tensor:
    """Return the hybrid score ``-logsumexp(logits, 1) + log_softmax(ood_logits, 1)[:, 1]``."""
    return generative_score(logits) + discriminative_score(ood_logits)


SCORES: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    'hybrid': hybrid_score,
    'generative': lambda logits, ood_logits: generative_score(logits),
    'discriminative': lambda logits, ood_logits: discriminative_score(ood_logits),
}


def _check_kind(kind: str) -> None:
    if kind not in SCORES:
        raise ValueError(f'unknown score {kind!r}; choose one of {sorted(SCORES)}')


def compute_score(kind: str, logits: torch.Tensor, ood_logits: torch.Tensor) -> torch.Tensor:
    """Score by name: 'hybrid', 'generative' or 'discriminative'."""
    _check_kind(kind)
    return SCORES[kind](logits, ood_logits)


def first_argmax(logits: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1)`` (first maximum) from the max ``top`` (N x 1 x H x W), as a graph.

    An exported ArgMax becomes OpenVINO's TopK, which took 20 ms on 19 x 512 x 1024 (2 threads);
    a compare, select and min-reduce over the channels took 11 ms. The ids are float32 (exact
    integers, also in an fp16 graph); a NaN pixel (no channel equals the max) gets the last id.
    """
    k = logits.shape[1]
    ids = torch.arange(k, dtype=torch.float32, device=logits.device).view(1, k, 1, 1)
    return torch.where(logits == top, ids, float(k - 1)).amin(1).long()


def score_and_labels(kind: str, logits: torch.Tensor, ood_logits: torch.Tensor,
                     overwrite_logits: bool = False, graph: bool = False
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Score and closed-set argmax (N x H x W each) from one pass of max over the logits.

    The max that gives the labels is also logsumexp's shift, so the labels cost no extra pass
    (the result equals ``compute_score`` and ``logits.argmax(1)``). With ``overwrite_logits``
    the logits serve as scratch space for the exponentials: no full-size temporary, about
    half the time of the separate calls on a CPU; the logits are garbage afterwards. ``graph``
    writes the argmax for exported graphs (:func:`first_argmax`).
    """
    _check_kind(kind)
    if graph:
        top = logits.amax(1, keepdim=True)                                # N x 1 x H x W
        values, labels = top.squeeze(1), first_argmax(logits, top)
    else:
        values, labels = logits.max(1)                                    # N x H x W
    if kind == 'discriminative':
        return discriminative_score(ood_logits), labels
    shifted = logits.sub_(values.unsqueeze(1)) if overwrite_logits \
        else logits - values.unsqueeze(1)
    generative = shifted.exp_().sum(1).log_().add_(values).neg_()       # -logsumexp
    if kind == 'generative':
        return generative, labels
    return generative.add_(discriminative_score(ood_logits)), labels


Array = Union[torch.Tensor, np.ndarray]


def open_set_from_labels(labels: Array, score: Array, threshold: float,
                         unknown_id: int = UNKNOWN_ID) -> Array:
    """Replace the closed-set label by ``unknown_id`` where ``score > threshold``."""
    if isinstance(labels, torch.Tensor):
        return torch.where(score > threshold, torch.full_like(labels, unknown_id), labels)
    return np.where(score > threshold, np.asarray(unknown_id, labels.dtype), labels)


def open_set_prediction(logits: torch.Tensor, score: torch.Tensor, threshold: float,
                        unknown_id: int = UNKNOWN_ID) -> torch.Tensor:
    """Closed-set argmax (N x H x W), with pixels scoring above ``threshold`` set to unknown."""
    labels = logits.argmax(1)
    if logits.shape[1] <= 255:
        labels = labels.to(torch.uint8)
    return open_set_from_labels(labels, score, threshold, unknown_id)
