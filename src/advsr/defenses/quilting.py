"""Image quilting defense of Guo et al. (2018), "Countering adversarial images using input
transformations" (ICLR 2018), built on the quilting of Efros & Freeman (SIGGRAPH 2001).

Algorithm: a *patch bank* holds ``s x s`` patches cut from clean images. The input image is
covered by a grid of ``s x s`` patches with ``overlap`` pixels shared between neighbours
(stride ``s - overlap``); every input patch is replaced by one of its ``K`` nearest bank
patches (Euclidean distance over the whole ``3*s*s`` patch), drawn uniformly at random, and
neighbouring replacements are stitched along their overlap. An adversarial perturbation does
not survive because the output consists of clean patches only.

Conventions (where the paper, the reference code and common practice differ):

* Grid: positions ``0, t, 2t, ...`` with stride ``t = s - overlap``; when ``H - s`` (or
  ``W - s``) is not a multiple of ``t``, one more row (column) of patches is aligned to the
  bottom (right) border, so every pixel is covered and the size is kept. The reference code
  (facebookresearch/adversarial_image_defenses, ``quilting_fast.py``) iterates
  ``range(0, H - s, t)`` and leaves the uncovered bottom/right band at zero; Athalye et al.'s
  re-implementation (obfuscated-gradients) requires ``(299 - 5) % 3 == 0``.
* Defaults ``patch_size=5`` and ``overlap=patch_size // 2 = 2`` are those of both codes.
* Search: exact nearest neighbours of the whole input patch (both references search with the
  input patch only, never with the already placed neighbours), computed as
  ``||b||^2 - 2 q.b (+ ||q||^2)`` by matrix products over blocks of the bank, pruned
  exactly by the triangle inequality on patch norms (``search="pruned"``, the default, about
  3 times less work than ``search="dense"`` at 224 px with a 20,000-patch bank; the same
  neighbours, equal distances ordered by bank index, see :func:`nearest_patches`). The
  choice depends on the input patch only, so all patches are searched at once. The
  reference code searches
  approximately (faiss PCA-64 + IVF-PQ, ``nprobe=5``); Athalye et al. search exactly.
* ``K``: uniform choice among the ``K`` nearest (both codes). The reference code's default is
  ``K = 1`` (deterministic), Athalye et al. use ``K = 10``; the default here is 10.
  ``K`` larger than the bank is reduced to the bank size.
* Stitching, ``stitch="min-cut"`` (default): Efros & Freeman's minimum-error boundary cut. The
  cost on an overlap is the squared difference summed over channels; a dynamic program finds
  the cheapest 8-connected path across the overlap (ties: straight on, then left, then right;
  last row: lowest column) and the new patch keeps the seam and the pixels on its side. The
  seam of a patch is computed against the *chosen patch* of its left neighbour and,
  separately, of its top neighbour (not against the composited canvas, which would make the
  process sequential), and the two masks are combined by AND (Efros & Freeman combine an
  L-shaped overlap the same way). Patches are then composited in raster order, a later patch
  winning wherever its mask is set, which is done for all patches at once as a scatter-max
  of the raster index. The reference code calls a Boykov-Kolmogorov graph cut, but its
  terminal weights only pin the non-overlap pixels to the *new* patch and never pin anything
  to the existing content, so the cut assigns (almost) the whole overlap to the new patch:
  in effect the newer patch overwrites. ``stitch="overwrite"`` reproduces that (the later
  patch in raster order wins everywhere) and is the setting closest to the published
  numbers; the published evaluation of Athalye et al. used the boundary cut with ``K = 10``.
* Bank: :meth:`PatchBank.from_images` takes all patches on a stride grid of the given clean
  images, or a seeded random subset of ``max_patches`` of them. The reference code draws
  1,000,000 patches at random positions from 20,000 ImageNet training images, Athalye et
  al. one random patch from each of 1,000,000 training images.

The defense is stochastic (``K > 1``; ``K = 1`` is deterministic) and not differentiable
(the output is made of bank pixels only); BPDA uses the identity surrogate.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Annotated, ClassVar, Literal, get_args

import torch
from pydantic import Field, StrictInt

from advsr.checks import check_image, check_int_range
from advsr.defenses.base import Chain, Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.defenses.tvm import TVMDefense, TVMSettings, build_tvm
from advsr.errors import InputError, ModelLoadError, ShapeError
from advsr.settings import DATA, FILE

__all__ = [
    "MAX_BANK_PATCHES",
    "MAX_BLOCK_ELEMENTS",
    "MAX_K",
    "MAX_PATCH_SIZE",
    "BankSettings",
    "PatchBank",
    "Quilting",
    "QuiltingSettings",
    "QuiltingTVMSettings",
    "SearchMode",
    "StitchMode",
    "build_quilting",
    "build_quilting_tvm",
    "extract_patches",
    "min_error_boundary_cut",
    "nearest_patches",
    "patch_grid",
    "quilt",
]

StitchMode = Literal["min-cut", "overwrite"]
SearchMode = Literal["pruned", "dense"]
_STITCH_MODES: tuple[str, ...] = get_args(StitchMode)
_SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
_BANK_CHUNK = 16384  # bank rows per distance block (dense search)
_WINDOW = 1024  # pruned search, stage 1: bank rows (closest in norm) per query chunk
_CHUNK_BOUND = 128  # pruned search, stage 1: queries per chunk
_CHUNK_PRUNED = 64  # pruned search, stage 2: queries per chunk
_BUCKETS = 8  # pruned search, stage 2: query groups by the width of their norm range
_COLS_PRUNED = 8192  # pruned search, stage 2: bank rows per score block (stays in the cache)
_GROUP = 16  # pruned search, stage 2: columns per group of the threshold test

MAX_PATCH_SIZE = 64
"""The largest quilting patch side (Guo et al. use 5)."""
MAX_K = 1_000
"""The most nearest bank patches a patch is chosen among (Athalye et al. use 10)."""
MAX_BANK_PATCHES = 10_000_000
"""The most patches drawn into a bank (the reference code draws 1,000,000)."""
MAX_BLOCK_ELEMENTS = 1 << 30
"""The largest nearest-neighbour score block (entries; 4 GiB in float32)."""


def _check_patch_size(patch_size: object) -> int:
    return check_int_range(patch_size, "patch_size", 2, MAX_PATCH_SIZE)


def _check_block(block_elements: object) -> int:
    return check_int_range(block_elements, "block_elements", 1, MAX_BLOCK_ELEMENTS)


def _check_settings(patch_size: object, overlap: object, k: object, stitch: object) -> int:
    """Validate the quilting settings; returns the overlap (``None`` -> ``patch_size // 2``)."""
    p = _check_patch_size(patch_size)
    o = p // 2 if overlap is None else check_int_range(overlap, "overlap", 0)
    if o >= p:
        raise InputError(f"overlap must be smaller than patch_size ({p}), got {o}")
    check_int_range(k, "quilting k", 1, MAX_K)
    if stitch not in _STITCH_MODES:
        raise InputError(f"unknown stitch mode {stitch!r}; use one of {', '.join(_STITCH_MODES)}")
    return o


def _check_search(search: object) -> None:
    if search not in _SEARCH_MODES:
        raise InputError(
            f"unknown nearest-neighbour search {search!r}; use one of {', '.join(_SEARCH_MODES)}"
        )


# --- patch bank ------------------------------------------------------------------------------


class PatchBank:
    """A database of ``s x s`` RGB patches, one flattened ``(3, s, s)`` patch per row.

    Args:
        patches: ``(P, 3*s*s)`` floating tensor with values in ``[0, 1]``, ``P >= 1``.
        patch_size: ``s >= 2``.

    Raises:
        InputError: empty bank, wrong width, values outside ``[0, 1]``, bad ``patch_size``.

    Shape:
        ``patches``: ``(P, 3*s*s)``, channel-major (``c, y, x``) like ``Tensor.flatten``.

    Example:
        >>> bank = PatchBank.from_images(torch.rand(2, 3, 8, 8), patch_size=5, stride=1)
        >>> len(bank), bank.patches.shape[1]
        (32, 75)
    """

    def __init__(self, patches: torch.Tensor, patch_size: int) -> None:
        s = _check_patch_size(patch_size)
        if not isinstance(patches, torch.Tensor) or patches.ndim != 2:
            shape = tuple(patches.shape) if isinstance(patches, torch.Tensor) else patches
            raise InputError(f"bank patches must be a 2-D tensor (P, 3*s*s), got {shape!r}")
        if patches.shape[0] == 0:
            raise InputError("the patch bank is empty")
        if patches.shape[1] != 3 * s * s:
            raise InputError(
                f"bank patches have {patches.shape[1]} values each; "
                f"patch_size {s} needs {3 * s * s}"
            )
        if not patches.is_floating_point():
            raise InputError(f"bank patches must be floating point, got {patches.dtype}")
        lo, hi = float(patches.min()), float(patches.max())
        if not (lo >= 0.0 and hi <= 1.0):  # also refuses NaN
            raise InputError(f"bank values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        self.patches = patches
        self.patch_size = s

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    def __repr__(self) -> str:
        return f"PatchBank({len(self)} patches of {self.patch_size}x{self.patch_size})"

    def to(self, *args: object, **kwargs: object) -> PatchBank:
        """A bank whose patches are moved/cast like ``Tensor.to``."""
        return PatchBank(self.patches.to(*args, **kwargs), self.patch_size)  # type: ignore[call-overload]

    @classmethod
    def from_images(
        cls,
        images: torch.Tensor,
        patch_size: int = 5,
        *,
        stride: int = 1,
        max_patches: int | None = None,
        generator: torch.Generator | None = None,
    ) -> PatchBank:
        """All ``s x s`` patches on a stride grid of clean images, or a random subset.

        Args:
            images: clean images in ``[0, 1]`` (e.g. training images of the dataset).
            patch_size: ``s >= 2``.
            stride: step between patch positions in each image (>= 1).
            max_patches: keep a uniformly random subset (without replacement) of this many
                patches, drawn from ``generator``; ``None`` keeps all.
            generator: CPU generator for the subset.

        Returns:
            a float32 bank on the device of ``images``.

        Raises:
            ShapeError: bad images or images smaller than the patch.
            InputError: bad ``patch_size``, ``stride`` or ``max_patches``.

        Shape:
            ``(M, 3, H, W)`` -> bank of ``M * ((H-s)//stride+1) * ((W-s)//stride+1)`` rows
            (or ``max_patches``).
        """
        check_image(images, "images", check_range=True)
        s = _check_patch_size(patch_size)
        t = check_int_range(stride, "stride", 1)
        m, _, h, w = images.shape
        if h < s or w < s:
            raise ShapeError(f"images of {h}x{w} are smaller than the {s}x{s} patches")
        nh, nw = (h - s) // t + 1, (w - s) // t + 1
        total = m * nh * nw
        if max_patches is not None:
            check_int_range(max_patches, "max_patches", 1, MAX_BANK_PATCHES)
        if max_patches is None or max_patches >= total:
            idx = torch.arange(total)
        else:
            idx = torch.randperm(total, generator=generator)[:max_patches].sort().values
        src = images.detach().to(torch.float32).reshape(-1)
        off = torch.arange(3)[:, None, None] * (h * w)
        off = off + torch.arange(s)[None, :, None] * w + torch.arange(s)[None, None, :]
        off = off.reshape(-1).to(images.device)  # (3*s*s,) offsets from a patch's corner
        chunks = []
        for start in range(0, idx.numel(), 65536):  # bounded index memory
            i = idx[start : start + 65536].to(images.device)
            img, r = i // (nh * nw), i % (nh * nw)
            corner = img * (3 * h * w) + (r // nw) * t * w + (r % nw) * t
            chunks.append(src[corner[:, None] + off[None, :]])
        return cls(torch.cat(chunks), s)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bank as ``.safetensors`` (keys ``patches`` and ``patch_size``)."""
        from advsr.io import save_safetensors

        save_safetensors(
            path,
            {"patches": self.patches, "patch_size": torch.tensor([self.patch_size])},
            metadata={"format": "advsr-patch-bank", "patch_size": str(self.patch_size)},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatchBank:
        """Read a bank written by :meth:`save` (CPU, float32).

        Raises:
            ModelLoadError: missing/corrupt file or not a patch bank.
        """
        from advsr.io import load_state_dict

        sd = load_state_dict(path)
        if "patches" not in sd or "patch_size" not in sd or sd["patch_size"].numel() != 1:
            raise ModelLoadError(f"{path} is not a patch bank (keys: {', '.join(sorted(sd))})")
        try:
            return cls(sd["patches"].to(torch.float32), int(sd["patch_size"].item()))
        except InputError as exc:
            raise ModelLoadError(f"{path} holds an invalid patch bank: {exc}") from None


def _bank_tensor(bank: PatchBank | torch.Tensor, patch_size: int) -> torch.Tensor:
    if isinstance(bank, PatchBank):
        if bank.patch_size != patch_size:
            raise InputError(
                f"the bank holds {bank.patch_size}x{bank.patch_size} patches but patch_size is "
                f"{patch_size}"
            )
        return bank.patches
    if not isinstance(bank, torch.Tensor) or bank.ndim != 2:
        raise InputError("bank must be a PatchBank or a (P, 3*s*s) tensor")
    if bank.shape[0] == 0:
        raise InputError("the patch bank is empty")
    if bank.shape[1] != 3 * patch_size * patch_size:
        side = math.isqrt(bank.shape[1] // 3)
        raise InputError(
            f"bank rows have {bank.shape[1]} values (patches of about {side}x{side}) but "
            f"patch_size {patch_size} needs {3 * patch_size * patch_size}"
        )
    return bank


# --- building blocks -------------------------------------------------------------------------


def patch_grid(size: int, patch_size: int, stride: int) -> list[int]:
    """Patch start positions along one axis: ``0, t, 2t, ...`` plus one aligned to the end.

    Example:
        >>> patch_grid(12, 5, 3)
        [0, 3, 6, 7]
        >>> patch_grid(11, 5, 3)
        [0, 3, 6]
    """
    if size < patch_size:
        raise ShapeError(f"the image ({size} px) is smaller than the patch ({patch_size} px)")
    pos = list(range(0, size - patch_size + 1, stride))
    if pos[-1] != size - patch_size:
        pos.append(size - patch_size)
    return pos


def extract_patches(x: torch.Tensor, ys: list[int], xs: list[int], patch_size: int) -> torch.Tensor:
    """The patches of ``x`` whose top-left corners are ``(ys[i], xs[j])``.

    Shape:
        ``(N, C, H, W)`` -> ``(N, len(ys), len(xs), C, s, s)``.
    """
    d = torch.arange(patch_size, device=x.device)
    rows = torch.tensor(ys, device=x.device)[:, None] + d  # (ny, s)
    cols = torch.tensor(xs, device=x.device)[:, None] + d  # (nx, s)
    p = x[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (N, C, ny, nx, s, s)
    return p.permute(0, 2, 3, 1, 4, 5)


PRUNED_MIN_QUERIES = 4096
"""Fewer queries than this run the dense search even with ``search="pruned"``."""


def nearest_patches(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    *,
    block_elements: int = 1 << 24,
    search: SearchMode = "pruned",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``k`` nearest bank rows of every query row (squared Euclidean distance).

    Scores ``||b||^2 - 2 q.b`` come from matrix products (``torch.addmm``) over blocks of at
    most ``block_elements`` query x bank entries; ``||q||^2`` is added to the ``k`` kept.

    * ``search="dense"`` scores every query against every bank row and keeps a running
      top-``k`` per query (``topk`` over blocks of up to 16384 bank rows). Equal scores are
      ordered as ``torch.topk`` happens to return them.
    * ``search="pruned"`` (default) returns the same neighbours with less work. The bank is
      sorted by norm and the queries are processed in chunks of similar norm: a first product
      against the 1024 bank rows nearest in norm gives every query an upper bound ``r`` on
      its ``k``-th distance, and by the triangle inequality ``| ||q|| - ||b|| | <= ||q - b||``
      only bank rows with ``||b||`` within ``r`` of ``||q||`` can be among its ``k``
      nearest. The second product covers that contiguous norm range (for chunks of queries
      grouped by the width of their range) and keeps the rows scoring at most the bound; the
      ``k`` best of them are the ``k`` nearest of the whole bank. The bounds include the
      rounding error of the scores, so nothing is missed; any query left with fewer than
      ``k`` candidates (not expected) is searched densely. Equal scores are ordered by bank
      index (the lowest first), so the result does not depend on the other queries. Below
      :data:`PRUNED_MIN_QUERIES` queries (small images: a 32 px image has about 64) the
      pruned search's bookkeeping costs more than it saves (measured: 0.48 s against 0.10 s
      for one digits image on a 100,000-patch bank), so the dense search runs instead.

    In float32 on the CPU both give bit-identical scores for the same (query, bank row) pair
    (checked by the tests: the product kernel does not depend on the block's position, and
    the augmented product of the pruned search rounds like ``addmm``), so they return the
    same neighbours and distances except for the order of exactly equal scores; elsewhere
    (float64, other kernels) the scores may differ in the last bit.

    Args:
        queries: ``(Q, D)``.
        bank: ``(P, D)``, same dtype and device.
        k: neighbours per query (reduced to ``P`` if larger).
        block_elements: memory bound of one score block (entries).
        search: ``"pruned"`` or ``"dense"``.

    Returns:
        ``(dist2, index)``, each ``(Q, min(k, P))``, nearest first.

    Raises:
        InputError: bad ``k``, ``block_elements`` or ``search``.

    Shape:
        ``(Q, D), (P, D)`` -> ``(Q, k), (Q, k)``.

    Example:
        >>> q = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> b = torch.tensor([[1.0, 0.9], [0.1, 0.0], [5.0, 5.0]])
        >>> nearest_patches(q, b, 1)[1].flatten().tolist()
        [1, 0]
    """
    check_int_range(k, "quilting k", 1, MAX_K)
    _check_block(block_elements)
    _check_search(search)
    if search == "dense" or queries.shape[0] < PRUNED_MIN_QUERIES:
        return _nearest_dense(queries, bank, k, block_elements=block_elements)
    return _nearest_pruned(queries, bank, k, block_elements=block_elements)


def _chunk_reduce(values: torch.Tensor, size: int, fill: float, op: str) -> list[float]:
    """Min (``op="min"``) or max of consecutive chunks of ``size`` values, as a list."""
    pad = -values.numel() % size
    v = torch.cat([values, values.new_full((pad,), fill)]).view(-1, size)
    return (v.amin(1) if op == "min" else v.amax(1)).tolist()


def _float_order(v: torch.Tensor) -> torch.Tensor:
    """Non-negative int64 keys in ``[0, 2^32)`` ordered like the float32 values ``v``
    (``-0.0`` and ``0.0`` share a key)."""
    bits = (v + 0.0).view(torch.int32).long()
    return torch.where(bits < 0, -bits - 1, bits + (1 << 31)) & 0xFFFFFFFF


def _augmented_bank(sorted_bank: torch.Tensor) -> torch.Tensor:
    """The bank rows (sorted by norm) as ``[-2 b, ||b||^2]``, padded with rows scoring +inf.

    Scores come from one product of augmented rows: ``[q, 1] . [-2 b, ||b||^2] =
    ||b||^2 - 2 q.b``, bit-identical to ``addmm(||b||^2, q, b^T, alpha=-2)`` (the norm enters
    the sum last); the padding makes the row count a multiple of ``_GROUP``.

    Shape:
        ``(P, D)`` -> ``(ceil(P / _GROUP) * _GROUP, D + 1)``.
    """
    n_b, dim = sorted_bank.shape
    n_pad = -(-n_b // _GROUP) * _GROUP
    sbank = sorted_bank.new_zeros(n_pad, dim + 1)
    sbank[:n_b, :dim] = sorted_bank
    sbank[:n_b, dim] = sbank[:n_b, :dim].pow(2).sum(1)
    sbank[:n_b, :dim] *= -2.0
    sbank[n_b:, dim] = math.inf
    return sbank


def _pruned_bound(
    q_aug: torch.Tensor,
    sbank_t: torch.Tensor,
    q_norm: torch.Tensor,
    by_norm: torch.Tensor,
    b_norm: torch.Tensor,
    k: int,
    block_elements: int,
) -> torch.Tensor:
    """Stage 1 of the pruned search: an upper bound on every query's ``k``-th score, from a
    window of the bank rows closest in norm to its chunk's median norm.

    Shape:
        ``(Q, D + 1)`` augmented queries -> ``(Q,)``.
    """
    n_q, n_b = q_aug.shape[0], b_norm.shape[0]
    dev = q_aug.device
    width = max(k, min(n_b, _WINDOW))
    c1 = max(1, min(_CHUNK_BOUND, block_elements // width))
    grouped = width % _GROUP == 0 and width // _GROUP >= k
    sorted_norm = q_norm[by_norm]
    medians = sorted_norm[torch.arange(0, n_q, c1, device=dev).add_(c1 // 2).clamp_(max=n_q - 1)]
    starts = (torch.searchsorted(b_norm, medians) - width // 2).clamp_(0, n_b - width).tolist()
    bound = torch.empty(n_q, dtype=q_aug.dtype, device=dev)
    for c, start in zip(range(0, n_q, c1), starts, strict=True):
        ids = by_norm[c : c + c1]
        score = torch.mm(q_aug[ids], sbank_t[:, start : start + width])
        if grouped:  # k-th smallest of interleaved group minima: >= the k-th smallest score
            score = score.view(len(ids), _GROUP, -1).amin(1)
        bound[ids] = score.topk(k, dim=1, largest=False, sorted=False).values.amax(1)
    return bound


def _pruned_candidates(
    q_aug: torch.Tensor,
    sbank_t: torch.Tensor,
    threshold: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    by_norm: torch.Tensor,
    n_b: int,
    block_elements: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 2 of the pruned search: score every query against the sorted bank rows
    ``lo .. hi`` of its norm range, keeping the groups of ``_GROUP`` columns whose minimum is
    within its ``threshold``.

    Returns:
        ``(query, scores, sorted-bank column)`` of the kept groups, ``(G,)``,
        ``(G, _GROUP)`` and ``(G, _GROUP)``.
    """
    n_q, n_pad = q_aug.shape[0], sbank_t.shape[1]
    dev = q_aug.device
    # chunks of queries with similar range widths, then similar norms
    rank = torch.empty_like(lo)
    rank[(hi - lo).argsort(stable=True)] = torch.arange(n_q, device=dev)
    bucket = rank * _BUCKETS // n_q
    order = by_norm[bucket[by_norm].argsort(stable=True)]
    c2 = max(1, min(_CHUNK_PRUNED, block_elements // _GROUP))
    col_step = max(_GROUP, min(_COLS_PRUNED, block_elements // c2) // _GROUP * _GROUP)
    chunk_lo = _chunk_reduce(lo[order], c2, n_b, "min")
    chunk_hi = _chunk_reduce(hi[order], c2, 0, "max")
    spread = torch.arange(_GROUP, device=dev)
    found_q, found_v, found_c = [], [], []
    for c, lo_c, hi_c in zip(range(0, n_q, c2), chunk_lo, chunk_hi, strict=True):
        ids = order[c : c + c2]
        q, thr = q_aug[ids], threshold[ids, None]
        a0 = int(lo_c) // _GROUP * _GROUP  # aligned, never tiny, column blocks
        a1 = min(n_pad, -(-int(hi_c) // _GROUP) * _GROUP)
        for a in range(a0, a1, col_step):
            b1 = min(a + col_step, a1)
            # group j of the block: columns a + j + i * stride, i < _GROUP; one whose minimum
            # is over the threshold is ruled out (few pass; their members are kept)
            stride = (b1 - a) // _GROUP
            score = torch.mm(q, sbank_t[:, a:b1]).view(len(ids), _GROUP, stride)
            row, grp = (score.amin(1) <= thr).nonzero(as_tuple=True)
            found_q.append(ids[row])
            found_v.append(score[row, :, grp])  # (hits, _GROUP)
            found_c.append((grp + a)[:, None] + spread * stride)
    return torch.cat(found_q), torch.cat(found_v), torch.cat(found_c)


def _first_k(
    qid: torch.Tensor, val: torch.Tensor, bid: torch.Tensor, n_q: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best candidates of every query, ordered by (score, bank index).

    Args:
        qid: query of each candidate.
        val: its score.
        bid: its bank index.
        n_q: number of queries.
        k: candidates kept per query.

    Returns:
        ``(scores, indices, count)``: ``(n_q, k)`` each (zeros where a query has fewer
        candidates) and the candidates each query had ``(n_q,)``.
    """
    dev = val.device
    # order by (query, score, bank index) and keep the first k of every query: sort by bank
    # index, then stably by one int64 key (query, order-preserving integer of the score)
    p = bid.argsort()
    qid, val, bid = qid[p], val[p], bid[p]
    if val.dtype == torch.float32:
        p = (qid << 32 | _float_order(val)).argsort(stable=True)
    else:
        p = val.argsort(stable=True)
        p = p[qid[p].argsort(stable=True)]
    qid, val, bid = qid[p], val[p], bid[p]
    count = torch.bincount(qid, minlength=n_q)
    first = torch.cumsum(count, 0) - count
    pos = torch.arange(qid.numel(), device=dev) - first[qid]
    keep = pos < k
    out_v = torch.zeros(n_q, k, dtype=val.dtype, device=dev)
    out_i = torch.zeros(n_q, k, dtype=torch.long, device=dev)
    out_v[qid[keep], pos[keep]] = val[keep]
    out_i[qid[keep], pos[keep]] = bid[keep]
    return out_v, out_i, count


def _nearest_pruned(
    queries: torch.Tensor, bank: torch.Tensor, k: int, *, block_elements: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Norm-pruned exact search (see :func:`nearest_patches`)."""
    n_q, n_b = queries.shape[0], bank.shape[0]
    k = min(k, n_b)
    dev, dim = queries.device, queries.shape[1]
    if n_q == 0:
        empty = torch.empty(0, k, device=dev)
        return empty.to(queries.dtype), empty.long()
    q_sq = queries.pow(2).sum(1)
    b_norm, b_order = bank.double().pow(2).sum(1).sqrt().sort(stable=True)
    q_norm = queries.double().pow(2).sum(1).sqrt()
    sbank_t = _augmented_bank(bank[b_order].to(queries.dtype)).T
    q_aug = torch.cat([queries, queries.new_ones(n_q, 1)], 1)
    # |computed - exact score| <= slack (a bound on the rounding of bsq - 2 q.b)
    eps = torch.finfo(queries.dtype).eps
    slack = (dim + 2) * eps * (q_norm + float(b_norm[-1])).pow(2)
    by_norm = q_norm.argsort(stable=True)
    bound = _pruned_bound(q_aug, sbank_t, q_norm, by_norm, b_norm, k, block_elements)
    # stage 2: every bank row whose norm is within the bound's radius of the query's
    threshold = bound + slack.to(bound.dtype)
    radius = (bound.double() + q_sq.double() + 2 * slack).clamp_(min=0.0).sqrt_()
    radius = radius * (1 + 1e-9) + 1e-9  # float64 rounding of the radius itself
    lo = torch.searchsorted(b_norm, q_norm - radius)
    hi = torch.searchsorted(b_norm, q_norm + radius, right=True)
    qid, val, col = _pruned_candidates(
        q_aug, sbank_t, threshold, lo, hi, by_norm, n_b, block_elements
    )
    hit, i = (val <= threshold[qid, None]).nonzero(as_tuple=True)
    out_v, out_i, count = _first_k(qid[hit], val[hit, i], b_order[col[hit, i]], n_q, k)
    dist2 = (out_v + q_sq[:, None]).clamp_min(0.0)
    short = (count < k).nonzero().flatten()
    if short.numel():  # a rounding surprise: search those queries densely
        dist2[short], out_i[short] = _nearest_dense(
            queries[short], bank, k, block_elements=block_elements
        )
    return dist2, out_i


def _nearest_dense(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    *,
    block_elements: int = 1 << 24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense search (every query against every bank row); see :func:`nearest_patches`."""
    n_q, n_b = queries.shape[0], bank.shape[0]
    k = min(k, n_b)
    bank_sq = bank.pow(2).sum(1)
    b_chunk = min(n_b, _BANK_CHUNK, math.isqrt(block_elements))
    q_chunk = max(1, block_elements // b_chunk)
    out_v, out_i = [], []
    for q0 in range(0, n_q, q_chunk):
        q = queries[q0 : q0 + q_chunk]
        best_v: torch.Tensor | None = None
        best_i: torch.Tensor | None = None
        for b0 in range(0, n_b, b_chunk):
            # ||b||^2 - 2 q.b: the ranking key (||q||^2 is constant per query)
            score = torch.addmm(bank_sq[b0 : b0 + b_chunk], q, bank[b0 : b0 + b_chunk].T, alpha=-2)
            if k == 1:
                v, i = score.min(dim=1, keepdim=True)
            else:
                v, i = score.topk(min(k, score.shape[1]), dim=1, largest=False, sorted=False)
            i = i + b0
            if best_v is None or best_i is None:
                best_v, best_i = v, i
            else:
                v, i = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                best_v, sel = v.topk(k, dim=1, largest=False, sorted=False)
                best_i = i.gather(1, sel)
        assert best_v is not None and best_i is not None
        best_v, order = best_v.sort(dim=1, stable=True)
        out_v.append(best_v + q.pow(2).sum(1, keepdim=True))
        out_i.append(best_i.gather(1, order))
    return torch.cat(out_v).clamp_min(0.0), torch.cat(out_i)


def min_error_boundary_cut(cost: torch.Tensor) -> torch.Tensor:
    """Cheapest top-to-bottom 8-connected path through cost maps (Efros & Freeman 2001).

    ``E[r, c] = cost[r, c] + min(E[r-1, c-1], E[r-1, c], E[r-1, c+1])``; the path ends at
    the cheapest column of the last row (lowest on ties) and is traced back choosing, among
    the admissible predecessors, the cheapest (ties: straight on, then left, then right).
    ``inf`` entries are never chosen unless a whole row is ``inf``.

    Args:
        cost: a batch of ``R x C`` cost maps (an overlap, rows along the seam).

    Returns:
        the path's column in every row (int64).

    Shape:
        ``(B, R, C)`` -> ``(B, R)``.

    Example:
        >>> c = torch.tensor([[[5.0, 0.0, 5.0], [0.0, 5.0, 5.0], [5.0, 0.0, 5.0]]])
        >>> min_error_boundary_cut(c).tolist()
        [[1, 0, 1]]
    """
    b, r, _ = cost.shape
    inf = cost.new_full((b, 1), math.inf)
    acc = [cost[:, 0]]
    for row in range(1, r):
        prev = acc[-1]
        side = torch.minimum(torch.cat([inf, prev[:, :-1]], 1), torch.cat([prev[:, 1:], inf], 1))
        acc.append(cost[:, row] + torch.minimum(prev, side))
    step = torch.tensor([0, -1, 1], device=cost.device)
    col = acc[-1].argmin(dim=1)
    seam = [col]
    for row in range(r - 2, -1, -1):
        padded = torch.cat([inf, acc[row], inf], 1)  # column c sits at c + 1
        cand = padded.gather(1, col[:, None] + 1 + step[None, :])  # straight, left, right
        col = col + step[cand.argmin(dim=1)]
        seam.append(col)
    return torch.stack(seam[::-1], dim=1)


def _left_keep_mask(chosen: torch.Tensor, pos: list[int]) -> torch.Tensor:
    """Where each patch keeps its own pixels against its neighbour along dim 2 (on the left).

    ``chosen`` is ``(N, A, B, C, s, s)`` with neighbours along dim ``2`` overlapping in the
    last dim; ``pos`` are their start positions. Returns a ``(N, A, B, s, s)`` bool mask,
    all True for the first patch of each row, True right of (and on) the boundary cut in the
    overlap otherwise.
    """
    n, a, nb, _, s, _ = chosen.shape
    mask = torch.ones(n, a, nb, s, s, dtype=torch.bool, device=chosen.device)
    if nb < 2:
        return mask
    dev = chosen.device
    widths = torch.tensor([max(0, pos[j - 1] + s - pos[j]) for j in range(1, nb)], device=dev)
    wmax = int(widths.max())
    if wmax == 0:
        return mask
    cols = torch.arange(wmax, device=dev)
    valid = cols[None, :] < widths[:, None]  # (B-1, wmax)
    old_cols = (s - widths[:, None] + cols[None, :]).clamp_max(s - 1)  # column in left patch
    index = old_cols[None, None, :, None, None, :].expand(n, a, nb - 1, chosen.shape[3], s, wmax)
    old = chosen[:, :, :-1].gather(-1, index)
    new = chosen[:, :, 1:, ..., :wmax]
    cost = (old - new).pow(2).sum(3)  # (N, A, B-1, s, wmax)
    cost = cost.masked_fill(~valid[:, None, :], math.inf)
    seam = min_error_boundary_cut(cost.reshape(-1, s, wmax)).view(n, a, nb - 1, s, 1)
    mask[:, :, 1:, :, :wmax] = (cols >= seam) | ~valid[:, None, :]
    return mask


def _composite(
    chosen: torch.Tensor,
    keep: torch.Tensor | None,
    ys: list[int],
    xs: list[int],
    hw: tuple[int, int],
) -> torch.Tensor:
    """Raster-order compositing: each pixel takes the last patch (raster order) that keeps it.

    Shape:
        ``(N, ny, nx, C, s, s)``, ``(N, ny, nx, s, s)`` -> ``(N, C, H, W)``.
    """
    n, ny, nx, c, s, _ = chosen.shape
    h, w = hw
    dev = chosen.device
    d = torch.arange(s, device=dev)
    ys_t, xs_t = torch.tensor(ys, device=dev), torch.tensor(xs, device=dev)
    rows = (ys_t[:, None] + d)[:, None, :, None]  # (ny, 1, s, 1)
    cols = (xs_t[:, None] + d)[None, :, None, :]  # (1, nx, 1, s)
    pix = (rows * w + cols).reshape(-1)  # canvas index of every (patch, dy, dx)
    raster = torch.arange(ny * nx, device=dev).view(ny, nx, 1, 1).expand(ny, nx, s, s)
    key = raster.reshape(1, -1).expand(n, -1)
    if keep is not None:
        key = torch.where(keep.reshape(n, -1), key, -1)
    winner = torch.full((n, h * w), -1, dtype=torch.long, device=dev)
    winner.scatter_reduce_(1, pix.expand(n, -1), key, reduce="amax")
    py = torch.arange(h, device=dev).repeat_interleave(w)
    px = torch.arange(w, device=dev).repeat(h)
    dy = py - ys_t[winner // nx]
    dx = px - xs_t[winner % nx]
    local = (winner * s + dy) * s + dx  # index into (ny*nx, s, s)
    flat = chosen.permute(0, 1, 2, 4, 5, 3).reshape(n, ny * nx * s * s, c)
    out = flat.gather(1, local[..., None].expand(n, h * w, c))
    return out.permute(0, 2, 1).reshape(n, c, h, w)


# --- quilting --------------------------------------------------------------------------------


def quilt(
    x: torch.Tensor,
    bank: PatchBank | torch.Tensor,
    *,
    patch_size: int = 5,
    overlap: int | None = None,
    k: int = 10,
    stitch: StitchMode = "min-cut",
    generator: torch.Generator | None = None,
    block_elements: int = 1 << 24,
    search: SearchMode = "pruned",
) -> torch.Tensor:
    """Rebuild images from bank patches (image quilting, Guo et al. 2018).

    Args:
        x: images in ``[0, 1]``.
        bank: a :class:`PatchBank` or its ``(P, 3*s*s)`` tensor (moved to ``x``'s device and
            dtype).
        patch_size: ``s >= 2``.
        overlap: pixels shared by neighbouring patches, ``0 <= overlap < s``; ``None`` means
            ``s // 2`` (2 for ``s = 5``, the reference setting).
        k: choose uniformly among this many nearest bank patches (``1``: deterministic).
        stitch: ``"min-cut"`` (Efros & Freeman boundary cut) or ``"overwrite"`` (later patch
            wins, what the reference graph cut amounts to); see the module docstring.
        generator: CPU generator for the random choice among the ``k`` neighbours.
        block_elements: memory bound of the nearest-neighbour distance blocks.
        search: ``"pruned"`` or ``"dense"`` exact nearest-neighbour search (same neighbours,
            see :func:`nearest_patches`; ``"dense"`` is the slower original).

    Returns:
        the quilted images, made of bank pixels only.

    Raises:
        ShapeError: bad ``x`` or images smaller than the patch.
        InputError: bad settings, empty bank or a bank of another patch size.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.rand(1, 3, 11, 9)
        >>> bank = PatchBank.from_images(x, patch_size=5)
        >>> torch.equal(quilt(x, bank, k=1), x)  # every patch finds itself
        True
    """
    check_image(x, "x")
    o = _check_settings(patch_size, overlap, k, stitch)
    _check_search(search)
    b = _bank_tensor(bank, patch_size).to(device=x.device, dtype=x.dtype)
    s = patch_size
    n, c, h, w = x.shape
    ys, xs = patch_grid(h, s, s - o), patch_grid(w, s, s - o)
    ny, nx = len(ys), len(xs)
    with torch.no_grad():
        queries = extract_patches(x.detach(), ys, xs, s).reshape(n * ny * nx, c * s * s)
        _, idx = nearest_patches(queries, b, k, block_elements=block_elements, search=search)
        if idx.shape[1] > 1:
            pick = torch.randint(idx.shape[1], (idx.shape[0], 1), generator=generator)
            idx = idx.gather(1, pick.to(idx.device))
        chosen = b[idx[:, 0]].view(n, ny, nx, c, s, s)
        keep = None
        if stitch == "min-cut":
            keep = _left_keep_mask(chosen, xs)
            top = _left_keep_mask(chosen.permute(0, 2, 1, 3, 5, 4), ys)  # rows as columns
            keep &= top.permute(0, 2, 1, 4, 3)
        return _composite(chosen, keep, ys, xs, (h, w)).clamp(0.0, 1.0)


class Quilting(Defense):
    """Image quilting defense holding a patch bank and its settings.

    Args:
        bank: the clean-patch bank (kept as a non-persistent buffer, so ``.to(device)``
            moves it; save it with :meth:`PatchBank.save`).
        patch_size: must equal the bank's patch size.
        overlap: see :func:`quilt` (``None``: ``patch_size // 2``).
        k: neighbours to choose from (``1`` makes the defense deterministic).
        stitch: ``"min-cut"`` or ``"overwrite"``.
        block_elements: memory bound of the nearest-neighbour distance blocks.
        search: ``"pruned"`` (default) or ``"dense"`` exact search (see :func:`quilt`).

    Raises:
        InputError: ``patch_size < 2``, ``k < 1``, ``overlap`` not in ``[0, patch_size)``,
            unknown ``stitch`` or ``search``, empty bank or a bank of another patch size.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> bank = PatchBank.from_images(torch.rand(4, 3, 16, 16), stride=2)
        >>> d = Quilting(bank, k=5)
        >>> g = torch.Generator().manual_seed(0)
        >>> d(torch.rand(2, 3, 13, 10), generator=g).shape
        torch.Size([2, 3, 13, 10])
    """

    differentiable: ClassVar[bool] = False
    stochastic: ClassVar[bool] = True
    patches: torch.Tensor

    def __init__(
        self,
        bank: PatchBank,
        *,
        patch_size: int = 5,
        overlap: int | None = None,
        k: int = 10,
        stitch: StitchMode = "min-cut",
        block_elements: int = 1 << 24,
        search: SearchMode = "pruned",
    ) -> None:
        super().__init__()
        self.overlap = _check_settings(patch_size, overlap, k, stitch)
        _check_search(search)
        self.search: SearchMode = search
        if not isinstance(bank, PatchBank):
            raise InputError(f"bank must be a PatchBank, got {type(bank).__name__}")
        _bank_tensor(bank, patch_size)
        self.patch_size = patch_size
        self.k = k
        self.stitch: StitchMode = stitch
        self.block_elements = _check_block(block_elements)
        self.register_buffer("patches", bank.patches, persistent=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: object) -> Quilting:
        """A defense around a bank saved by :meth:`PatchBank.save` (patch size from the file)."""
        bank = PatchBank.load(path)
        kwargs.setdefault("patch_size", bank.patch_size)
        return cls(bank, **kwargs)  # type: ignore[arg-type]

    @property
    def bank(self) -> PatchBank:
        """The patch bank (on the module's device)."""
        return PatchBank(self.patches, self.patch_size)

    def extra_repr(self) -> str:
        return (
            f"bank={self.patches.shape[0]}, patch_size={self.patch_size}, "
            f"overlap={self.overlap}, k={self.k}, stitch={self.stitch!r}"
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Quilt ``x`` from the bank (see :func:`quilt`)."""
        return quilt(
            x,
            self.patches,
            patch_size=self.patch_size,
            overlap=self.overlap,
            k=self.k,
            stitch=self.stitch,
            generator=generator,
            block_elements=self.block_elements,
            search=self.search,
        )


# --- registration ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _bank_from_data(
    data: str,
    images: int,
    skip: int,
    pattern: str | None,
    patch_size: int,
    max_patches: int | None,
    seed: int,
    size: int | None = None,
) -> PatchBank:
    """A patch bank cut from ``images`` clean images of a dataset after the first ``skip``
    (``samples``: the 8 embedded photographs), cached for the last few settings."""
    from advsr.data.labelled import open_labelled

    if data == "samples":  # the 8 embedded photographs: natural images, no labels needed
        from advsr.data.imagenet import resize_center_crop
        from advsr.data.samples import sample_paths
        from advsr.io import read_image

        photos = [read_image(p) for p in sample_paths().values()]
        side = size or min(min(im.shape[-2:]) for im in photos)
        x = torch.cat([resize_center_crop(im, side) for im in photos])[skip : skip + images]
    else:
        ds = open_labelled(data, limit=skip + images, pattern=pattern, size=size)
        x = ds.x[skip : skip + images]
    if x.shape[0] == 0:
        raise InputError(f"no images left in {data} after skipping {skip} for the patch bank")
    g = torch.Generator().manual_seed(seed)
    return PatchBank.from_images(x, patch_size, max_patches=max_patches, generator=g)


class BankSettings(DefenseSettings):
    """Where a quilting defense's patch bank comes from: a file, or clean images of a
    dataset the evaluation does not use."""

    bank: Annotated[str | None, FILE] = None
    """A patch bank saved by PatchBank.save (safetensors)."""
    bank_data: Annotated[str | None, DATA] = None
    """Or a dataset to cut the bank from: a labelled folder, digits-train, or samples."""
    bank_images: StrictInt = Field(1000, ge=1, le=1_000_000)
    """Images of bank_data used."""
    bank_skip: StrictInt = Field(0, ge=0, le=10_000_000)
    """Images of bank_data skipped first."""
    bank_pattern: str | None = None
    """File-name pattern of the bank_data images."""
    max_patches: Annotated[StrictInt, Field(ge=1, le=MAX_BANK_PATCHES)] | None = 100_000
    """Patches drawn into the bank (none: every patch of the images)."""


class QuiltingSettings(BankSettings):
    """Settings of ``quilting``."""

    patch_size: StrictInt = Field(5, ge=2, le=MAX_PATCH_SIZE)
    """Patch side."""
    overlap: Annotated[StrictInt, Field(ge=0)] | None = None
    """Pixels shared by neighbouring patches (none: patch_size // 2)."""
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    """Nearest bank patches a patch is drawn among."""
    stitch: StitchMode = "min-cut"
    """min-cut (Efros & Freeman) or overwrite (what the reference graph cut amounts to)."""
    seed: StrictInt = 0
    """Seed of the patches drawn into a bank from bank_data."""
    bank_size: StrictInt | None = None
    """Side the bank_data images are resized to (none: their own size)."""


def build_quilting(s: QuiltingSettings) -> Quilting:
    """Quilting from the settings' patch bank.

    Raises:
        InputError: neither or both of ``bank`` and ``bank_data``.
    """
    if (s.bank is None) == (s.bank_data is None):
        raise InputError(
            "quilting needs a patch bank: bank=FILE (safetensors) or bank_data=DATASET "
            "(a labelled folder or samples, with bank_images, bank_skip, bank_pattern, "
            "bank_size: clean images the evaluation does not use)"
        )
    if s.bank is not None:
        pb = PatchBank.load(s.bank)
    else:
        assert s.bank_data is not None
        pb = _bank_from_data(
            s.bank_data,
            s.bank_images,
            s.bank_skip,
            s.bank_pattern,
            s.patch_size,
            s.max_patches,
            s.seed,
            s.bank_size,
        )
    return Quilting(pb, patch_size=s.patch_size, overlap=s.overlap, k=s.k, stitch=s.stitch)


class QuiltingTVMSettings(BankSettings):
    """Settings of ``quilting-tvm``: quilting (its other settings at their defaults), then
    TVM (likewise)."""

    k: StrictInt = Field(10, ge=1, le=MAX_K)
    """Nearest bank patches a patch is drawn among."""
    p: float = Field(0.5, gt=0.0, le=1.0)
    """TVM keep probability of a pixel."""
    lam: float = Field(0.03, ge=0.0)
    """TVM weight of the TV term."""
    bank_size: StrictInt | None = None
    """Side the bank_data images are resized to (none: their own size)."""


def build_quilting_tvm(s: QuiltingTVMSettings) -> Chain:
    """Quilting, then TVM."""
    quilting = build_quilting(QuiltingSettings(**s.model_dump(exclude={"p", "lam"})))
    return Chain(quilting, build_tvm(TVMSettings(p=s.p, lam=s.lam)))


register_defense(
    "quilting",
    settings=QuiltingSettings,
    build=build_quilting,
    description="image quilting from a clean patch bank (Guo et al.)",
    classes=(Quilting,),
)
register_defense(
    "quilting-tvm",
    settings=QuiltingTVMSettings,
    build=build_quilting_tvm,
    description="quilting then TVM (Guo et al., as compared by Mustafa)",
    classes=(Quilting, TVMDefense),
)
