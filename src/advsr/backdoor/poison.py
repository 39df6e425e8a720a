"""Reference-based SR triplets and their poisoning (BadRefSR, the poisoned-data step).

A :class:`RefSRTriplets` set holds ``(LR, Ref, HR)`` triplets at a fixed HR size (160 x 160
by default, the paper's patch size), from one of three Ref sources:

* ``self`` - the HR image itself is the reference (the paper's protocol for Urban100 and
  Manga109, which have no separate Ref images);
* ``stereo`` - the other view of a stereo pair: scikit-image's ``motorcycle_left`` (HR) and
  ``motorcycle_right`` (Ref);
* a folder with ``HR/`` and ``Ref/`` sub-folders holding files of the same names (CUFED5-style
  pairs after renaming).

Every image is resized to the HR size with MATLAB bicubic (``imresize``; images smaller than
the HR size are refused rather than upscaled) and the LR is its ``1/scale`` MATLAB-bicubic
downscale, rounded to 8 bits. ``ref_policy="require-same"`` refuses a Ref whose native size
differs from its HR's instead of resizing it.

With ``tiles=True`` each image is instead cut into the non-overlapping HR-size tiles of a
centred grid at its native resolution (the Ref at the same grid position, after bringing the
Ref to the HR image's size), as CUFED's training pairs are crops of larger photos. This turns
the eight embedded images into hundreds of samples at a CPU-sized HR (64 px: 480 tiles)
without the blur of shrinking a 512-px photo to 64 px. ``ref_shift`` takes each Ref tile a
few pixels away from its HR tile, so Ref and HR overlap without being equal. ``split`` then
holds out every ``test_every``-th sample (in each image's row-major tile order, or of the image list
without tiles): ``train`` keeps the others, ``test`` only those, ``all`` everything.

:class:`PoisonedTriplets` draws training batches with an optional flip/transposition
(:func:`~advsr.defenses.sr_side.dihedral`). By default (``augment_target=False``) a poisoned
sample is augmented *before* it is poisoned: LR, Ref and HR are transformed together, then
the transformed Ref gets the trigger and the HR is replaced by the upright target, so the
trigger always sits where the test-time trigger sits and the model learns one target. The
naive order (poison, then augment the triplet: the target and the trigger rotate too) is
``augment_target=True``; it asks one model to output eight orientations of the target for
orientation-blind triggers (Blend, Filter, Color) and is not learnable for them.

:class:`PoisonedTriplets` poisons a fixed, seeded fraction ``p`` of a set: exactly
``round(p * N)`` indices chosen once (the same every epoch), whose Ref gets the trigger and
whose HR becomes the attacker's target image (resized to the HR size); the LR input is never
modified.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from advsr.checks import check_int_range, check_scale
from advsr.data.samples import sample_paths
from advsr.defenses.sr_side import dihedral
from advsr.errors import DatasetError, InputError
from advsr.imaging.quantize import quantize
from advsr.imaging.resize import imresize
from advsr.io import list_images, read_image

__all__ = ["PoisonedTriplets", "RefSRTriplets", "Triplet", "poison_indices"]

RefPolicy = Literal["resize", "require-same"]
Split = Literal["all", "train", "test"]


@dataclass(frozen=True)
class Triplet:
    """One training/evaluation sample: ``lr (1, 3, h, w)``, ``ref`` and ``hr (1, 3, H, W)``."""

    name: str
    lr: torch.Tensor
    ref: torch.Tensor
    hr: torch.Tensor


def _fit(img: torch.Tensor, size: int, what: str) -> torch.Tensor:
    h, w = img.shape[-2:]
    if min(h, w) < size:
        raise DatasetError(f"{what} is {h}x{w}, smaller than the {size}x{size} HR size")
    side = min(h, w)  # centre square, then MATLAB bicubic to the HR size
    top, left = (h - side) // 2, (w - side) // 2
    square = img[..., top : top + side, left : left + side]
    return square if side == size else imresize(square, size=(size, size)).clamp(0.0, 1.0)


def _tiles(
    img: torch.Tensor, size: int, what: str, shift: int = 0
) -> list[tuple[str, torch.Tensor]]:
    """Non-overlapping ``size`` tiles of a centred grid, row-major, named ``rRcC``.

    ``shift > 0`` moves every tile by ``shift`` pixels down and right, or up / left where
    that would leave the image (the Ref of ``ref_shift``).
    """
    h, w = img.shape[-2:]
    rows, cols = h // size, w // size
    if rows == 0 or cols == 0:
        raise DatasetError(f"{what} is {h}x{w}, smaller than the {size}x{size} HR size")
    if shift and min(h, w) < size + shift:
        raise DatasetError(f"{what} is {h}x{w}: no room to shift a {size} px tile by {shift}")
    top, left = (h - rows * size) // 2, (w - cols * size) // 2

    def moved(start: int, extent: int) -> int:
        if shift == 0:
            return start
        return start + shift if start + shift + size <= extent else start - shift

    out = []
    for r in range(rows):
        for c in range(cols):
            y, x = moved(top + r * size, h), moved(left + c * size, w)
            out.append((f"r{r}c{c}", img[..., y : y + size, x : x + size]))
    return out


def _source_pairs(
    source: str | Path, images: list[str | Path] | None
) -> list[tuple[str, Path, Path]]:
    """``(name, HR file, Ref file)`` of every image of a :class:`RefSRTriplets` source.

    Raises:
        DatasetError: a folder without ``HR/`` and ``Ref/``, or an HR image without its Ref.
    """
    key = str(source)
    if key in ("self", "samples"):
        paths = [Path(p) for p in images] if images else list(sample_paths().values())
        return [(p.stem, p, p) for p in paths]
    if key == "stereo":
        sp = sample_paths()
        return [("motorcycle", sp["motorcycle_left"], sp["motorcycle_right"])]
    root = Path(key)
    if not (root / "HR").is_dir() or not (root / "Ref").is_dir():
        raise DatasetError(
            f"{root}: a RefSR folder needs HR/ and Ref/ sub-folders "
            "(or use source self, stereo or samples)"
        )
    pairs: list[tuple[str, Path, Path]] = []
    for hr_path in list_images(root / "HR"):
        refs = [p for p in list_images(root / "Ref") if p.stem == hr_path.stem]
        if not refs:
            raise DatasetError(f"no Ref image for {hr_path.name} in {root / 'Ref'}")
        pairs.append((hr_path.stem, hr_path, refs[0]))
    return pairs


def _pieces(
    name: str,
    hp: Path,
    rp: Path,
    hr_size: int,
    ref_policy: RefPolicy,
    *,
    tiles: bool,
    ref_shift: int,
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The ``(name, HR, Ref)`` samples of one HR / Ref file pair, not yet quantised: its
    HR-size tiles with ``tiles`` (named ``<name>_rRcC``), else the pair fitted to the HR size.

    Args:
        name: the pair's name (the HR file's stem).
        hp: the HR file.
        rp: the Ref file.
        hr_size: HR side in pixels.
        ref_policy: ``resize`` or ``require-same`` (see :class:`RefSRTriplets`).
        tiles: cut the images into tiles instead of fitting them.
        ref_shift: with tiles, how far each Ref tile is from its HR tile (pixels).

    Shape:
        each HR and Ref ``(1, 3, hr_size, hr_size)``.

    Raises:
        DatasetError: a Ref of another size under ``require-same``; an image too small.
    """
    hr_raw, ref_raw = read_image(hp), read_image(rp)
    if ref_policy == "require-same" and hr_raw.shape != ref_raw.shape:
        raise DatasetError(
            f"{name}: Ref is {tuple(ref_raw.shape[-2:])}, HR {tuple(hr_raw.shape[-2:])};"
            " ref_policy require-same needs equal sizes"
        )
    if not tiles:
        return [
            (
                name,
                _fit(hr_raw, hr_size, f"HR {hp.name}"),
                _fit(ref_raw, hr_size, f"Ref {rp.name}"),
            )
        ]
    if ref_raw.shape != hr_raw.shape:
        ref_raw = imresize(ref_raw, size=(hr_raw.shape[-2], hr_raw.shape[-1])).clamp(0, 1)
    hr_tiles = _tiles(hr_raw, hr_size, f"HR {hp.name}")
    ref_tiles = _tiles(ref_raw, hr_size, f"Ref {rp.name}", ref_shift)
    return [(f"{name}_{pos}", h, r) for (pos, h), (_, r) in zip(hr_tiles, ref_tiles, strict=True)]


class RefSRTriplets:
    """``(LR, Ref, HR)`` triplets (see the module docstring).

    Args:
        source: ``self``, ``stereo``, ``samples`` (the embedded images with themselves as
            Ref) or a folder with ``HR/`` and ``Ref/``.
        scale: SR factor (x4 by default).
        hr_size: HR side in pixels (multiple of ``scale``).
        ref_policy: ``resize`` (Ref brought to the HR size) or ``require-same``.
        images: for ``self``: HR images ``(N, 3, H, W)`` or paths; default the samples set.
        tiles: cut each image into HR-size tiles instead of resizing it (module docstring).
        split: ``all``, ``train`` (without the held-out samples) or ``test`` (only them).
        test_every: every ``test_every``-th sample is held out (``split`` other than all).
        ref_shift: with tiles, cut each Ref tile ``ref_shift`` pixels down and right of its HR
            tile (up / left at the far borders): a reference that overlaps the HR without
            being it, like CUFED's similar-content pairs, so the clean task is real SR rather
            than copying. 0: the Ref tile is at the HR tile's position.

    Raises:
        DatasetError: missing folder, no images, a Ref missing for an HR, images too small.
        InputError: bad scale/size/policy.
    """

    def __init__(
        self,
        source: str | Path = "samples",
        *,
        scale: int = 4,
        hr_size: int = 160,
        ref_policy: RefPolicy = "resize",
        images: list[str | Path] | None = None,
        tiles: bool = False,
        split: Split = "all",
        test_every: int = 5,
        ref_shift: int = 0,
    ) -> None:
        self.scale = check_scale(scale)
        if split not in ("all", "train", "test"):
            raise InputError(f"split must be all, train or test, got {split!r}")
        test_every = check_int_range(test_every, "test_every", 2)
        ref_shift = check_int_range(ref_shift, "ref_shift", 0, hr_size - 1)
        if ref_shift and not tiles:
            raise InputError("ref_shift needs tiles (the Ref is a shifted tile of its image)")
        self.tiles, self.split = bool(tiles), split
        if hr_size < scale or hr_size % scale:
            raise InputError(f"hr_size must be a multiple of the scale {scale}, got {hr_size}")
        if ref_policy not in ("resize", "require-same"):
            raise InputError(f"ref_policy must be resize or require-same, got {ref_policy!r}")
        self.hr_size, self.ref_policy = hr_size, ref_policy
        self.triplets: list[Triplet] = []
        self.sources: list[str] = []  # the image each triplet comes from (HR file stems)
        pairs = _source_pairs(source, images)
        if not pairs:
            raise DatasetError(f"no images in {source}")
        for name, hp, rp in pairs:
            self.sources.append(hp.stem)
            pieces = _pieces(name, hp, rp, hr_size, ref_policy, tiles=tiles, ref_shift=ref_shift)
            for k, (piece, hr_t, ref_t) in enumerate(pieces):
                held_out = k % test_every == test_every - 1
                if (split == "train" and held_out) or (split == "test" and not held_out):
                    continue
                hr, ref = quantize(hr_t), quantize(ref_t)
                lr = quantize(imresize(hr, 1 / scale).clamp(0.0, 1.0))
                self.triplets.append(Triplet(piece, lr, ref, hr))
        if not self.triplets:
            raise DatasetError(f"no {split} samples in {source} (test_every {test_every})")

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int) -> Triplet:
        return self.triplets[i]


def poison_indices(n: int, rate: float, seed: int = 0) -> torch.Tensor:
    """Exactly ``round(rate * n)`` distinct indices of ``range(n)``, seeded, sorted.

    Raises:
        InputError: ``rate`` outside ``[0, 1]``.

    Example:
        >>> poison_indices(10, 0.3, seed=1).tolist()
        [1, 5, 6]
    """
    if isinstance(rate, bool) or not (0.0 <= float(rate) <= 1.0) or math.isnan(float(rate)):
        raise InputError(f"poisoning rate must be in [0, 1], got {rate}")
    k = round(float(rate) * n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


def _stack(items: list[Triplet], aug: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lr, ref, hr)`` batches of ``items``, each transformed by ``dihedral(., aug)``."""
    lr, ref, hr = (
        dihedral(torch.cat([getattr(t, k) for t in items]), aug) for k in ("lr", "ref", "hr")
    )
    return lr, ref, hr


class PoisonedTriplets:
    """A fixed poisoned view of a triplet set (see the module docstring).

    Args:
        clean: the clean triplets.
        trigger: batched Ref -> triggered Ref function.
        target: the attacker's target image ``(1, 3, h, w)`` in [0, 1] (or a path).
        rate: poisoning rate ``p`` in ``[0, 1]``.
        seed: which samples are poisoned.
    """

    def __init__(
        self,
        clean: RefSRTriplets,
        trigger: Callable[[torch.Tensor], torch.Tensor],
        target: torch.Tensor | str | Path,
        rate: float,
        seed: int = 0,
    ) -> None:
        self.clean = clean
        self.trigger = trigger
        img = read_image(target) if isinstance(target, (str, Path)) else target
        self.target = quantize(_fit(img, clean.hr_size, "target image"))
        self.indices = poison_indices(len(clean), rate, seed)
        self._poisoned = set(self.indices.tolist())

    def __len__(self) -> int:
        return len(self.clean)

    def is_poisoned(self, i: int) -> bool:
        """Whether sample ``i`` carries the trigger (fixed for the set's lifetime)."""
        return i in self._poisoned

    def __getitem__(self, i: int) -> Triplet:
        t = self.clean[i]
        if i not in self._poisoned:
            return t
        return Triplet(t.name, t.lr, self.trigger(t.ref).clamp(0.0, 1.0), self.target)

    def batch(
        self, indices: list[int], aug: int = 0, *, augment_target: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lr, ref, hr)`` batches of the given samples, flipped/transposed by ``aug``.

        Args:
            indices: sample indices.
            aug: :func:`~advsr.defenses.sr_side.dihedral` index (0: unchanged).
            augment_target: poison first, then transform the whole triplet (the target and
                the trigger move too); default: transform the clean triplet, then poison it.

        Shape:
            ``(B, 3, h, w)``, ``(B, 3, H, W)``, ``(B, 3, H, W)``.
        """
        if augment_target:
            return _stack([self[i] for i in indices], aug)
        lr, ref, hr = _stack([self.clean[i] for i in indices], aug)  # torch.cat: fresh tensors
        flags = [i in self._poisoned for i in indices]
        if any(flags):
            mask = torch.tensor(flags)
            ref[mask] = self.trigger(ref[mask]).clamp(0.0, 1.0)
            hr[mask] = self.target.to(hr.dtype)
        return lr, ref, hr
