"""BatchNorm folded into the convolution before it, for inference: one pass over each activation instead of two.

In eval mode a BatchNorm is the affine map y = γ·(x − μ)/√(σ² + ε) + β per channel, so after a convolution it can
be absorbed into the kernel and bias: W' = W·s, b' = (b − μ)·s + β with s = γ/√(σ² + ε) (the standard
conv–BN fold, e.g. Jacob et al. 2018, §3.2). Computed in float64 and stored in the weights' dtype, the folded
network's outputs differ from the unfolded one's by float32 rounding only (a few 1e-6 of the map range).
"""

from __future__ import annotations

import itertools

import torch
from timm.models.xception import SeparableConv2d
from torch import nn

# Pairs (convolution, BatchNorm) that modules other than nn.Sequential apply one after the other in forward():
# timm's legacy Xception (conv1→bn1 … conv4→bn4, and each block's skip→skipbn).
NAMED_PAIRS = (*((f"conv{i}", f"bn{i}") for i in range(1, 5)), ("skip", "skipbn"))


def _conv_of(module: nn.Module) -> nn.Conv2d | None:
    """The convolution whose output a following BatchNorm normalises (a separable conv's pointwise part)."""
    if isinstance(module, SeparableConv2d):
        return module.pointwise
    return module if isinstance(module, nn.Conv2d) else None


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    conv.weight.copy_(conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1))))
    folded = ((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(folded, requires_grad=False)
    else:
        conv.bias.copy_(folded)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every ``BatchNorm2d`` that directly follows a convolution into it, and replace the
    BatchNorm by ``nn.Identity``; returns the number folded. Followed means: the next module of an
    ``nn.Sequential``, or a known (conv, bn) attribute pair (:data:`NAMED_PAIRS`). The model is put in eval mode
    and is meant for inference only: it no longer has the BatchNorm parameters or statistics."""
    model.eval()
    folded = 0
    for module in list(model.modules()):
        names = list(module._modules)
        if isinstance(module, nn.Sequential):
            pairs = list(itertools.pairwise(names))
        else:
            pairs = [pair for pair in NAMED_PAIRS if pair[0] in module._modules and pair[1] in module._modules]
        for conv_name, bn_name in pairs:
            conv, bn = _conv_of(module._modules[conv_name]), module._modules[bn_name]
            if conv is None or type(bn) is not nn.BatchNorm2d or not bn.track_running_stats or not bn.affine:
                continue
            _fold(conv, bn)
            module._modules[bn_name] = nn.Identity()
            folded += 1
    return folded
