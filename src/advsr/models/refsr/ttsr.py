"""TTSR-style texture transformer for reference-based SR (Yang et al., CVPR 2020).

"Learning Texture Transformer Network for Image Super-Resolution" transfers textures from a
reference image (Ref) into the SR of a low-resolution input (LR). The pieces, as built here:

* **Learnable texture extractor (LTE)**: a VGG-like stack (conv-ReLU, conv-ReLU-pool-conv-ReLU,
  conv-ReLU-pool-conv-ReLU, the layout of VGG19 up to ``relu3_1``) giving features at 3 levels:
  level 1 at the input size, level 2 at 1/2, level 3 at 1/4. It is applied to LR-up (LR
  upscaled x4 by MATLAB bicubic, :func:`advsr.imaging.resize.imresize`), Ref-down-up (Ref
  downscaled x4 then upscaled x4 with the same bicubic, so it is as blurry as LR-up) and Ref.
  Inputs are normalised with the ImageNet mean/std, as for VGG. The LTE trains from scratch
  (no VGG weights are downloaded); :meth:`LTE.init_from_vgg19` copies user-given VGG19
  weights (see :func:`load_vgg19_features`) when the widths are VGG's (64, 128, 256).
* **Relevance embedding** (:func:`relevance`): 3x3 patches of the level-3 features of LR-up
  (queries, one per LR pixel) and Ref-down-up (keys) are unfolded, L2-normalised and compared
  by inner products, ``R[n, j, i] = <k_j / |k_j|, q_i / |q_i|>`` of shape
  ``(N, HW_ref, HW_lr)``, computed by batched matmul, optionally in chunks of queries.
* **Hard attention** (:func:`transfer`): ``idx_i = argmax_j R[n, j, i]``; the Ref (value)
  patch at ``idx_i`` is copied to query position ``i`` at every level, with kernel/stride/pad
  ``(3f, f, f)`` for the level at ``f`` times the LR size, and folded back with overlap
  averaging. Convention: ``overlap="count"`` (default) divides each output pixel by the number
  of patches covering it, so a transferred exact copy is reproduced exactly, borders included;
  ``overlap="nine"`` divides by 9 everywhere as the reference code does (borders darker;
  reproduces the published TTSR numbers with its weights).
* **Soft attention**: ``S_i = max_j R[n, j, i]``, a confidence map at LR size (resized with
  torch bicubic interpolation to the x2 and x4 levels, as the reference code does).
* **Texture fusion** into a residual backbone: shallow features of LR (conv + residual blocks),
  then at each level ``x = x + conv(concat(x, T_level)) * S`` followed by residual blocks,
  with two PixelShuffle x2 upsamplers between the levels. Simplification: the paper's
  cross-scale feature integration (CSFI) between the levels is left out; one branch is kept.

Value range: the backbone works on ``[-1, 1]`` as TTSR does (``2 * x - 1``) and maps back;
``global_residual=True`` adds the bicubic LR-up to the output (not in TTSR; it speeds up
training from scratch). Ref may have any size that is a multiple of 4 (CUFED5 references are
not the HR size); the SR output is always ``4h x 4w``. Only x4 is supported (the LTE's two
poolings fix the level ratios). Eval mode clamps the output to ``[0, 1]``.

Reference structure: researchmm/TTSR ``model/LTE.py``, ``model/SearchTransfer.py``,
``model/MainNet.py``. Also :func:`vgg19_features` / :func:`load_vgg19_features`: torchvision's
VGG19 ``features`` layout (indices 0..36) for the perceptual loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advsr.checks import check_image, check_int_range, check_positive_int
from advsr.errors import InputError, ModelLoadError, ShapeError
from advsr.imaging.resize import imresize
from advsr.models.refsr.zoo import RefSRModelEntry, register_refsr_model
from advsr.models.sr.common import finish
from advsr.models.sr.edsr import ResBlock  # TTSR's blocks are EDSR's (no BN)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LTE",
    "TTSR",
    "check_lr_ref",
    "load_vgg19_features",
    "relevance",
    "search_transfer",
    "transfer",
    "vgg19_features",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Overlap = Literal["count", "nine"]

VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def vgg19_features() -> nn.Sequential:
    """VGG19's convolutional part with torchvision's indices (conv at 0, 2, 5, 7, 10, ...).

    Returns:
        ``nn.Sequential`` of 37 layers (conv/ReLU/max-pool), randomly initialised.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 512, H/32, W/32)``.

    Example:
        >>> f = vgg19_features()
        >>> len(f), f[34].weight.shape
        (37, torch.Size([512, 512, 3, 3]))
    """
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = v
    return nn.Sequential(*layers)


def load_vgg19_features(path: str | Path) -> nn.Sequential:
    """Load user-given VGG19 weights (torchvision ``state_dict`` layout) into VGG19 features.

    Only the ``features.*`` keys are used (``classifier.*`` is ignored); a bare
    ``features`` state_dict (keys ``0.weight``...) works too. The file is read by
    :func:`advsr.io.load_state_dict` (safetensors or ``weights_only`` torch files).

    Args:
        path: weight file.

    Returns:
        the loaded features in eval mode with ``requires_grad=False``.

    Raises:
        ModelLoadError: unreadable file, missing keys or mismatching shapes (one line).
    """
    from advsr.io import load_state_dict

    sd = load_state_dict(path)
    feats = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    if not feats:
        feats = {k: v for k, v in sd.items() if k.split(".")[0].isdigit()}
    model = vgg19_features()
    own = model.state_dict()
    missing = [k for k in own if k not in feats]
    extra = [k for k in feats if k not in own]
    bad = [f"{k} {tuple(feats[k].shape)} vs {tuple(own[k].shape)}" for k in own
           if k in feats and feats[k].shape != own[k].shape]  # fmt: skip
    if missing or extra or bad:
        parts = [
            f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", extra), ("shapes", bad))
            if items
        ]
        raise ModelLoadError(f"{path} is not a VGG19 features state_dict ({'; '.join(parts)})")
    from advsr.models.loading import check_values

    check_values(feats, path, own)
    model.load_state_dict(feats)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


class LTE(nn.Module):
    """Learnable texture extractor: VGG19 layers up to ``relu3_1`` with configurable widths.

    Args:
        channels: widths of levels 1, 2, 3 (VGG: ``(64, 128, 256)``).

    Returns (forward):
        features at levels 1 (input size), 2 (1/2) and 3 (1/4).

    Shape:
        ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, c1, H, W)``, ``(N, c2, H/2, W/2)``,
        ``(N, c3, H/4, W/4)`` (H, W multiples of 4).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: Sequence[int] = (64, 128, 256)) -> None:
        super().__init__()
        c1, c2, c3 = _three(channels, "lte_channels")
        self.channels = (c1, c2, c3)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.slice1 = nn.Sequential(nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(inplace=True))
        self.slice2 = nn.Sequential(
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.slice3 = nn.Sequential(
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / self.std
        lv1 = self.slice1(x)
        lv2 = self.slice2(lv1)
        lv3 = self.slice3(lv2)
        return lv1, lv2, lv3

    def init_from_vgg19(self, features: nn.Sequential) -> None:
        """Copy VGG19 conv1_1, conv1_2, conv2_1, conv2_2, conv3_1 (needs widths 64, 128, 256).

        Raises:
            InputError: if the LTE widths are not VGG's.
        """
        if self.channels != (64, 128, 256):
            raise InputError(f"LTE widths {self.channels} differ from VGG19's (64, 128, 256)")
        pairs = [(self.slice1[0], 0), (self.slice2[0], 2), (self.slice2[3], 5)]
        pairs += [(self.slice3[0], 7), (self.slice3[3], 10)]
        with torch.no_grad():
            for conv, i in pairs:
                src = features[i]
                assert isinstance(conv, nn.Conv2d) and isinstance(src, nn.Conv2d)
                conv.weight.copy_(src.weight)
                assert conv.bias is not None and src.bias is not None
                conv.bias.copy_(src.bias)


def _three(values: Sequence[int], name: str) -> tuple[int, int, int]:
    vals = tuple(values)
    if len(vals) != 3:
        raise InputError(f"{name} must have 3 entries, got {vals!r}")
    a, b, c = (check_positive_int(v, name) for v in vals)
    return a, b, c


def relevance(
    query: torch.Tensor, key: torch.Tensor, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance embedding: best key patch and its normalised inner product per query patch.

    3x3 patches (zero padding 1) of ``query`` and ``key`` are flattened to ``C * 9`` vectors,
    L2-normalised (eps 1e-12) and compared with every key patch by batched matmul; the
    relevance matrix ``(N, HW_key, HW_query)`` is reduced by max/argmax over keys. With
    ``chunk_size`` queries are processed in chunks of that many (memory ``N * HW_key *
    chunk_size``); the result is the same.

    Args:
        query: features of LR-up at level 3.
        key: features of Ref-down-up at level 3 (same channels).
        chunk_size: queries per chunk, ``None`` for all at once.

    Returns:
        ``(confidence, index)``: max relevance (float) and argmax key index (int64).

    Shape:
        ``(N, C, h, w)``, ``(N, C, hk, wk)`` -> ``(N, h*w)``, ``(N, h*w)``.

    Example:
        >>> q = torch.rand(1, 4, 5, 5)
        >>> s, i = relevance(q, q)
        >>> bool(torch.allclose(s, torch.ones(1, 25))), bool((i == torch.arange(25)).all())
        (True, True)
    """
    if query.ndim != 4 or key.ndim != 4 or query.shape[:2] != key.shape[:2]:
        raise ShapeError(
            f"query and key must be (N, C, H, W) with equal N and C, got "
            f"{tuple(query.shape)} and {tuple(key.shape)}"
        )
    q = F.normalize(F.unfold(query, 3, padding=1), dim=1)  # (N, C*9, hw)
    k = F.normalize(F.unfold(key, 3, padding=1), dim=1).transpose(1, 2)  # (N, HWk, C*9)
    n_q = q.shape[2]
    step = n_q if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    confs, idxs = [], []
    for start in range(0, n_q, step):
        r = torch.bmm(k, q[:, :, start : start + step])  # (N, HWk, chunk)
        conf, idx = r.max(dim=1)
        confs.append(conf)
        idxs.append(idx)
    return torch.cat(confs, dim=1), torch.cat(idxs, dim=1)


def transfer(
    value: torch.Tensor,
    index: torch.Tensor,
    out_size: tuple[int, int],
    factor: int,
    overlap: Overlap = "count",
) -> torch.Tensor:
    """Hard-attention transfer of value patches at a level ``factor`` times the LR size.

    The value map is cut into patches of size ``3f`` with stride ``f`` and padding ``f`` (one
    patch per key position of the level-3 grid), the patch ``index[n, i]`` is placed at query
    position ``i`` and the patches are folded back with overlap averaging (see module doc).

    Args:
        value: Ref features at level ``factor`` (``(hk * f, wk * f)`` spatial size).
        index: argmax key index per query, from :func:`relevance`.
        out_size: the query grid ``(h, w)`` (LR size).
        factor: 1, 2 or 4 (level size over LR size).
        overlap: ``"count"`` or ``"nine"`` normalisation of overlapping patches.

    Returns:
        transferred texture ``T``.

    Shape:
        ``(N, C, hk*f, wk*f)``, ``(N, h*w)`` -> ``(N, C, h*f, w*f)``.
    """
    if overlap not in ("count", "nine"):
        raise InputError(f"overlap must be 'count' or 'nine', got {overlap!r}")
    f = factor
    h, w = out_size
    patches = F.unfold(value, 3 * f, padding=f, stride=f)  # (N, C*9f^2, HWk)
    if index.shape[1] != h * w:
        raise ShapeError(f"index has {index.shape[1]} queries, out_size {h}x{w} needs {h * w}")
    gathered = patches.gather(2, index.unsqueeze(1).expand(-1, patches.shape[1], -1))
    out = F.fold(gathered, (h * f, w * f), 3 * f, padding=f, stride=f)
    if overlap == "nine":
        return out / 9.0
    ones = torch.ones(1, 1, h * f, w * f, device=value.device, dtype=value.dtype)
    count = F.fold(F.unfold(ones, 3 * f, padding=f, stride=f), (h * f, w * f), 3 * f,
                   padding=f, stride=f)  # fmt: skip
    return out / count


def search_transfer(
    query: torch.Tensor,
    key: torch.Tensor,
    values: Sequence[torch.Tensor],
    factors: Sequence[int] = (4, 2, 1),
    *,
    chunk_size: int | None = None,
    overlap: Overlap = "count",
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Relevance search on level-3 features, then hard-attention transfer of every value map.

    Args:
        query: LR-up level-3 features ``(N, C, h, w)``.
        key: Ref-down-up level-3 features ``(N, C, hk, wk)``.
        values: Ref features, one per entry of ``factors``.
        factors: size of each value level over the level-3 size.
        chunk_size: see :func:`relevance`.
        overlap: see :func:`transfer`.

    Returns:
        ``(S, textures, index)``: soft attention ``(N, 1, h, w)``, textures
        ``(N, C_l, h*f, w*f)``, argmax index ``(N, h*w)``.

    Shape:
        see Returns.
    """
    if len(values) != len(factors):
        raise InputError(f"got {len(values)} value maps for {len(factors)} factors")
    h, w = int(query.shape[2]), int(query.shape[3])
    conf, index = relevance(query, key, chunk_size)
    textures = [
        transfer(v, index, (h, w), f, overlap) for v, f in zip(values, factors, strict=True)
    ]
    return conf.view(-1, 1, h, w), textures, index


def check_lr_ref(lr: object, ref: object, scale: int, *, exact: bool) -> None:
    """Check an LR/Ref pair: images, equal batch, Ref a multiple of ``scale`` (or ``scale``x LR).

    Raises:
        ShapeError: with a one-line message.
    """
    lr_t, ref_t = check_image(lr, "lr"), check_image(ref, "ref")
    if lr_t.shape[0] != ref_t.shape[0]:
        raise ShapeError(f"lr and ref batch sizes differ: {lr_t.shape[0]} vs {ref_t.shape[0]}")
    h, w = int(lr_t.shape[2]), int(lr_t.shape[3])
    hr, wr = int(ref_t.shape[2]), int(ref_t.shape[3])
    if exact and (hr, wr) != (scale * h, scale * w):
        raise ShapeError(
            f"ref must be {scale}x the lr size ({scale * h}x{scale * w}), got {hr}x{wr}"
        )
    if hr % scale or wr % scale:
        raise ShapeError(f"ref height and width must be multiples of {scale}, got {hr}x{wr}")


def res_stack(n_feats: int, n_blocks: int, res_scale: float = 1.0) -> nn.Sequential:
    """``n_blocks`` residual blocks then a 3x3 conv (used with a long skip by the caller)."""
    layers: list[nn.Module] = [ResBlock(n_feats, res_scale) for _ in range(n_blocks)]
    layers.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
    return nn.Sequential(*layers)


class _Level(nn.Module):
    """Texture fusion at one level: ``x + conv(cat(x, T)) * S``, then a residual stack."""

    def __init__(self, n_feats: int, t_channels: int, n_blocks: int, res_scale: float) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(n_feats + t_channels, n_feats, 3, padding=1)
        self.body = res_stack(n_feats, n_blocks, res_scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = x + self.fuse(torch.cat([x, t], dim=1)) * s
        return x + self.body(x)


class TTSR(nn.Module):
    """TTSR-style texture transformer SR network (x4), see the module docstring.

    Args:
        scale: must be 4.
        n_feats: backbone width (TTSR: 64).
        n_resblocks: residual blocks of the shallow feature extractor (TTSR: 16).
        level_blocks: residual blocks after fusion at levels 3 (LR), 2 (x2), 1 (x4)
            (TTSR: 16, 8, 4).
        lte_channels: LTE widths of levels 1, 2, 3 (VGG: 64, 128, 256).
        res_scale: residual scaling of the blocks.
        chunk_size: queries per relevance chunk (``None``: all at once).
        overlap: ``"count"`` or ``"nine"`` patch-overlap normalisation (see module doc).
        global_residual: add the bicubic LR-up to the output.

    Raises:
        InputError: scale other than 4, bad widths/depths.

    Shape:
        lr ``(N, 3, h, w)``, ref ``(N, 3, H, W)`` (H, W multiples of 4) -> ``(N, 3, 4h, 4w)``.

    Example:
        >>> m = TTSR(4, n_feats=8, n_resblocks=1, level_blocks=(1, 1, 1), lte_channels=(4, 8, 8))
        >>> m(torch.rand(1, 3, 6, 5), torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 24, 20])
    """

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_resblocks: int = 16,
        level_blocks: Sequence[int] = (16, 8, 4),
        lte_channels: Sequence[int] = (64, 128, 256),
        res_scale: float = 1.0,
        chunk_size: int | None = None,
        overlap: Overlap = "count",
        global_residual: bool = False,
    ) -> None:
        super().__init__()
        if scale != 4:
            raise InputError(f"TTSR supports only scale 4, got {scale!r}")
        if overlap not in ("count", "nine"):
            raise InputError(f"overlap must be 'count' or 'nine', got {overlap!r}")
        if chunk_size is not None:
            check_positive_int(chunk_size, "chunk_size")
        n_feats = check_positive_int(n_feats, "n_feats")
        n_res = check_int_range(n_resblocks, "n_resblocks", 0)
        b3, b2, b1 = _three(level_blocks, "level_blocks")
        self.scale = 4
        self.chunk_size = chunk_size
        self.overlap: Overlap = overlap
        self.global_residual = global_residual
        self.lte = LTE(lte_channels)
        c1, c2, c3 = self.lte.channels
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.sfe = res_stack(n_feats, n_res, res_scale)
        self.level3 = _Level(n_feats, c3, b3, res_scale)
        self.up2 = nn.Sequential(
            nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(True)
        )
        self.level2 = _Level(n_feats, c2, b2, res_scale)
        self.up1 = nn.Sequential(
            nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(True)
        )
        self.level1 = _Level(n_feats, c1, b1, res_scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)

    def search(
        self, lr: torch.Tensor, ref: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Texture search and transfer: ``(S, [T_lv3, T_lv2, T_lv1], index)``.

        Shape:
            ``S`` ``(N, 1, h, w)``; textures at LR, 2x and 4x size; index ``(N, h*w)``.
        """
        check_lr_ref(lr, ref, self.scale, exact=False)
        lr_up = imresize(lr, 4)
        ref_du = imresize(imresize(ref, 1 / 4), 4)
        _, _, q = self.lte(lr_up)
        _, _, k = self.lte(ref_du)
        v1, v2, v3 = self.lte(ref)
        return search_transfer(
            q, k, (v3, v2, v1), (1, 2, 4), chunk_size=self.chunk_size, overlap=self.overlap
        )

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        s, (t3, t2, t1), _ = self.search(lr, ref)
        x = self.head(lr * 2 - 1)
        x = x + self.sfe(x)
        x = self.level3(x, t3, s)
        x = self.level2(self.up2(x), t2, F.interpolate(s, scale_factor=2, mode="bicubic"))
        x = self.level1(self.up1(x), t1, F.interpolate(s, scale_factor=4, mode="bicubic"))
        out = (self.tail(x) + 1) / 2
        if self.global_residual:
            out = out + imresize(lr, 4)
        return finish(self, out)


register_refsr_model(
    "ttsr",
    RefSRModelEntry(
        TTSR,
        (4,),
        "TTSR-style texture transformer (LTE, hard/soft attention at 3 scales, no CSFI)",
        {"n_feats": 64, "n_resblocks": 16, "level_blocks": (16, 8, 4)},
        tiny={"n_feats": 8, "n_resblocks": 1, "level_blocks": (1, 1, 1), "lte_channels": (4, 8, 8)},
        reference="Yang et al. CVPR 2020; researchmm/TTSR model/{LTE,SearchTransfer,MainNet}.py",
    ),
    "TTSR-style texture transformer",
)
