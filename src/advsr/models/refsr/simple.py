"""CorrRefSR: a small two-branch RefSR network aligning Ref to LR by soft local correlation.

A second, structurally different RefSR model next to :mod:`advsr.models.refsr.ttsr` (the
BadRefSR paper checks every result on two architectures, TTSR and MASA-SR). Where TTSR
matches globally with a hard argmax (no gradient through the choice of patch) at three scales,
this model:

* encodes LR with an LR branch (conv + residual blocks) and Ref, brought to LR resolution by
  pixel-unshuffle (space-to-depth, lossless: all HR detail is kept in channels), with a Ref
  branch;
* computes matching features with one shared encoder on LR and on Ref-down (Ref downscaled by
  MATLAB bicubic to the LR grid), so query and key see the same blur;
* aligns the Ref-branch features to LR by **soft attention** over the cosine-similarity cost
  volume: ``matching="local"`` (default) takes a ``window x window`` neighbourhood of
  displacements around each LR position (positions outside the image are masked out), like
  the local refinement of MASA-SR / optical-flow cost volumes; ``matching="global"`` takes all
  Ref positions (any Ref size that is a multiple of ``scale``). Weights are
  ``softmax(cos / temperature)``; the temperature is learnable (stored as its log);
* concatenates LR features and aligned Ref features, then decodes with residual blocks and a
  PixelShuffle upsampler; the bicubic upsampling of LR is added (global residual).

Why it is useful: every path from Ref to output is differentiable (the attention weights
get gradients), the matching is local rather than global, and there is a single scale; a
backdoor or attack that works on both this and TTSR does not hinge on TTSR's hard-attention
argmax. Local matching expects Ref roughly aligned with the HR image (same size: ``scale * h
x scale * w``), e.g. neighbouring video frames or triggered copies of the HR; use
``"global"`` for unaligned references.

Eval mode clamps the output to ``[0, 1]``. Scales 2, 3 and 4.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advsr.checks import check_int_range, check_positive_int
from advsr.errors import InputError
from advsr.imaging.resize import imresize
from advsr.models.refsr.ttsr import ResBlock, check_lr_ref, res_stack
from advsr.models.refsr.zoo import RefSRModelEntry, register_refsr_model
from advsr.models.sr.common import finish, pixel_shuffle_upsampler

__all__ = ["CorrRefSR", "global_soft_align", "local_soft_align"]

Matching = Literal["local", "global"]


def local_soft_align(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    window: int,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Align ``value`` to ``query`` by softmax attention over a ``window x window`` neighbourhood.

    ``w[d] = softmax_d(cos(q(p), k(p + d)) / temperature)`` over displacements ``d`` with
    ``p + d`` inside the image; output ``sum_d w[d] * value(p + d)``. Features are compared
    per pixel (cosine over channels).

    Args:
        query: matching features of LR.
        key: matching features of Ref at LR resolution (same size as ``query``).
        value: features to align (same spatial size).
        window: odd neighbourhood size.
        temperature: softmax temperature (> 0).

    Returns:
        aligned values.

    Shape:
        ``(N, C, h, w)``, ``(N, C, h, w)``, ``(N, Cv, h, w)`` -> ``(N, Cv, h, w)``.

    Example:
        >>> q, v = torch.rand(1, 4, 6, 6), torch.rand(1, 2, 6, 6)
        >>> local_soft_align(q, q, v, 3, 0.1).shape
        torch.Size([1, 2, 6, 6])
    """
    n, c, h, w = query.shape
    pad = window // 2
    q = F.normalize(query, dim=1).view(n, c, 1, h * w)
    k = F.unfold(F.normalize(key, dim=1), window, padding=pad).view(n, c, window * window, h * w)
    cost = (q * k).sum(dim=1)  # (N, k^2, hw)
    ones = torch.ones(1, 1, h, w, device=query.device, dtype=query.dtype)
    inside = F.unfold(ones, window, padding=pad) > 0.5  # (1, k^2, hw)
    cost = (cost / temperature).masked_fill(~inside, float("-inf"))
    attn = cost.softmax(dim=1).unsqueeze(1)  # (N, 1, k^2, hw)
    v = F.unfold(value, window, padding=pad).view(n, value.shape[1], window * window, h * w)
    return (attn * v).sum(dim=2).view(n, value.shape[1], h, w)


def global_soft_align(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Align ``value`` to ``query`` by softmax attention over all key positions (cosine).

    Shape:
        ``(N, C, h, w)``, ``(N, C, hk, wk)``, ``(N, Cv, hk, wk)`` -> ``(N, Cv, h, w)``.
    """
    n, _, h, w = query.shape
    q = F.normalize(query.flatten(2), dim=1)  # (N, C, hw)
    k = F.normalize(key.flatten(2), dim=1)  # (N, C, HWk)
    attn = (torch.bmm(k.transpose(1, 2), q) / temperature).softmax(dim=1)  # (N, HWk, hw)
    return torch.bmm(value.flatten(2), attn).view(n, value.shape[1], h, w)


class CorrRefSR(nn.Module):
    """Two-branch RefSR with soft correlation alignment (see the module docstring).

    Args:
        scale: 2, 3 or 4.
        n_feats: width.
        enc_blocks: residual blocks of each encoder branch.
        n_resblocks: residual blocks of the decoder.
        window: odd local search window (``matching="local"``).
        matching: ``"local"`` or ``"global"``.
        temperature: initial softmax temperature.

    Raises:
        InputError: bad scale, window, matching or temperature.

    Shape:
        lr ``(N, 3, h, w)``, ref ``(N, 3, s*h, s*w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> m = CorrRefSR(4, n_feats=8, enc_blocks=1, n_resblocks=1)
        >>> m(torch.rand(1, 3, 6, 5), torch.rand(1, 3, 24, 20)).shape
        torch.Size([1, 3, 24, 20])
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        enc_blocks: int = 4,
        n_resblocks: int = 16,
        window: int = 7,
        matching: Matching = "local",
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise InputError(f"CorrRefSR supports scales 2, 3 and 4, got {scale!r}")
        window = check_positive_int(window, "window")
        if window % 2 == 0:
            raise InputError(f"window must be odd, got {window}")
        if matching not in ("local", "global"):
            raise InputError(f"matching must be 'local' or 'global', got {matching!r}")
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise InputError(f"temperature must be a positive number, got {temperature!r}")
        n_feats = check_positive_int(n_feats, "n_feats")
        enc_blocks = check_int_range(enc_blocks, "enc_blocks", 0)
        n_resblocks = check_int_range(n_resblocks, "n_resblocks", 0)
        self.scale = scale
        self.window = window
        self.matching: Matching = matching
        self.log_temperature = nn.Parameter(torch.tensor(math.log(float(temperature))))

        def branch(c_in: int) -> nn.Sequential:
            blocks = [ResBlock(n_feats) for _ in range(enc_blocks)]
            return nn.Sequential(nn.Conv2d(c_in, n_feats, 3, padding=1), *blocks)

        self.lr_branch = branch(3)
        self.ref_branch = branch(3 * scale * scale)
        self.match = nn.Sequential(
            nn.Conv2d(3, n_feats, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.fuse = nn.Conv2d(2 * n_feats, n_feats, 3, padding=1)
        self.body = res_stack(n_feats, n_resblocks)
        self.tail = nn.Sequential(
            pixel_shuffle_upsampler(n_feats, scale), nn.Conv2d(n_feats, 3, 3, padding=1)
        )

    def align(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Ref-branch features aligned to the LR grid.

        Shape:
            ``(N, 3, h, w)``, ``(N, 3, s*h, s*w)`` -> ``(N, n_feats, h, w)``.
        """
        check_lr_ref(lr, ref, self.scale, exact=self.matching == "local")
        value = self.ref_branch(F.pixel_unshuffle(ref, self.scale) * 2 - 1)
        q = self.match(lr * 2 - 1)
        k = self.match(imresize(ref, 1 / self.scale) * 2 - 1)
        temp = self.log_temperature.exp()
        if self.matching == "local":
            return local_soft_align(q, k, value, self.window, temp)
        return global_soft_align(q, k, value, temp)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        aligned = self.align(lr, ref)
        x = self.fuse(torch.cat([self.lr_branch(lr * 2 - 1), aligned], dim=1))
        x = x + self.body(x)
        out = self.tail(x) / 2 + imresize(lr, self.scale)
        return finish(self, out)


register_refsr_model(
    "corr-refsr",
    RefSRModelEntry(
        CorrRefSR,
        (2, 3, 4),
        "two-branch RefSR, soft local-correlation alignment, PixelShuffle decoder",
        {"n_feats": 64, "enc_blocks": 4, "n_resblocks": 16, "window": 7},
        tiny={"n_feats": 8, "enc_blocks": 1, "n_resblocks": 1, "window": 3},
        reference="advsr (local cost-volume attention as in MASA-SR's refinement)",
    ),
    "two-branch soft-correlation RefSR",
)
