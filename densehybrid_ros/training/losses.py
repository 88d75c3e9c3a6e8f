"""The DenseHybrid training objective: closed-set segmentation plus the hybrid open-set terms.

For a crop with one pasted negative patch (``outlier`` pixels) the loss is

    ce_weight * CE(logits, label)            over inlier pixels (pasted pixels are ignore)
  + beta * mean(logsumexp(logits))           over pasted pixels (lower their likelihood)
  + disc_weight * CE2(ood_logits, outlier)   over all valid pixels (dataset-posterior head)

with ``disc_weight = 10 * beta`` by default. An optional energy margin ``m`` replaces the
generative term by ``mean(relu(logsumexp - m))`` so it stops pushing once outliers are below m.
An optional inlier hinge adds ``mean(relu(inlier_margin - logsumexp) ** inlier_power)`` over
inlier pixels; power 2 pushes the low tail (class boundaries) harder than the bulk near the
margin.

An optional ``outlier_weight`` (B x H x W, read on outlier pixels only) weighs each outlier pixel
in both open-set terms, each a weighted mean (inlier pixels keep weight 1 in the dataset head's
term): :func:`densehybrid_ros.training.data.outlier_weights` gives small outlier components more,
so an obstacle of a few dozen pixels pulls as hard as a near one of thousands.
"""

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..core.classes import IGNORE_ID as IGNORE


def densehybrid_loss(logits: torch.Tensor, ood_logits: torch.Tensor, label: torch.Tensor,
                     outlier: torch.Tensor, beta: float = 0.03,
                     disc_weight: Optional[float] = None, ce_weight: float = 1.0,
                     energy_margin: Optional[float] = None,
                     class_weights: Optional[torch.Tensor] = None,
                     inlier_margin: Optional[float] = None,
                     inlier_power: float = 1.0,
                     outlier_weight: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Compute the DenseHybrid loss terms and their weighted sum (key ``loss``).

    ``energy_margin`` stops the generative term once an outlier's logsumexp is below it;
    ``inlier_margin`` (optional, not in the authors' loss) adds ``relu(margin - lse)`` over
    inlier pixels to the generative term, so inlier log-likelihoods cannot drift low;
    ``inlier_power`` 2 squares the hinge, so the gradient grows with the distance below it;
    ``outlier_weight`` weighs outlier pixels in the two open-set terms (None: all alike).
    """
    disc_weight = 10.0 * beta if disc_weight is None else disc_weight
    out = outlier.bool()
    closed_target = label.masked_fill(out, IGNORE)
    if (closed_target != IGNORE).any():
        ce = F.cross_entropy(logits.float(), closed_target, weight=class_weights,
                             ignore_index=IGNORE)
    else:
        ce = logits.float().sum() * 0.0
    lse_raw = torch.logsumexp(logits.float(), 1)
    lse = lse_raw if energy_margin is None else F.relu(lse_raw - energy_margin)
    outf = out.float() if outlier_weight is None else out.float() * outlier_weight.float()
    gen = (lse * outf).sum() / outf.sum().clamp(min=1.0)
    if inlier_margin is not None:
        inf = (closed_target != IGNORE).float()
        hinge = F.relu(inlier_margin - lse_raw) ** inlier_power
        gen = gen + (hinge * inf).sum() / inf.sum().clamp(min=1.0)
    ood_target = torch.where(out, torch.ones_like(label),
                             torch.where(label != IGNORE, torch.zeros_like(label),
                                         torch.full_like(label, IGNORE)))
    valid = ood_target != IGNORE
    if valid.any() and outlier_weight is not None:
        per_pixel = F.cross_entropy(ood_logits.float(), ood_target, ignore_index=IGNORE,
                                    reduction='none')                       # B x H x W
        weight = torch.where(out, outlier_weight.float(), valid.float())    # 0 on ignored
        disc = (per_pixel * weight).sum() / weight.sum().clamp(min=1.0)
    elif valid.any():
        disc = F.cross_entropy(ood_logits.float(), ood_target, ignore_index=IGNORE)
    else:
        disc = ood_logits.float().sum() * 0.0
    loss = ce_weight * ce + beta * gen + disc_weight * disc
    return {'loss': loss, 'ce': ce.detach(), 'gen': gen.detach(), 'disc': disc.detach()}
