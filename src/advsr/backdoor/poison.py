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

from advsr.checks import check_scale
from advsr.data.samples import sample_paths
from advsr.errors import DatasetError, InputError
from advsr.imaging.quantize import quantize
from advsr.imaging.resize import imresize
from advsr.io import list_images, read_image

__all__ = ["PoisonedTriplets", "RefSRTriplets", "Triplet", "poison_indices"]

RefPolicy = Literal["resize", "require-same"]


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


class RefSRTriplets:
    """``(LR, Ref, HR)`` triplets (see the module docstring).

    Args:
        source: ``self``, ``stereo``, ``samples`` (the embedded images with themselves as
            Ref) or a folder with ``HR/`` and ``Ref/``.
        scale: SR factor (x4 by default).
        hr_size: HR side in pixels (multiple of ``scale``).
        ref_policy: ``resize`` (Ref brought to the HR size) or ``require-same``.
        images: for ``self``: HR images ``(N, 3, H, W)`` or paths; default the samples set.

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
    ) -> None:
        self.scale = check_scale(scale)
        if hr_size < scale or hr_size % scale:
            raise InputError(f"hr_size must be a multiple of the scale {scale}, got {hr_size}")
        if ref_policy not in ("resize", "require-same"):
            raise InputError(f"ref_policy must be resize or require-same, got {ref_policy!r}")
        self.hr_size, self.ref_policy = hr_size, ref_policy
        self.triplets: list[Triplet] = []
        pairs: list[tuple[str, Path, Path]] = []
        key = str(source)
        if key in ("self", "samples"):
            paths = [Path(p) for p in images] if images else list(sample_paths().values())
            pairs = [(p.stem, p, p) for p in paths]
        elif key == "stereo":
            sp = sample_paths()
            pairs = [("motorcycle", sp["motorcycle_left"], sp["motorcycle_right"])]
        else:
            root = Path(key)
            if not (root / "HR").is_dir() or not (root / "Ref").is_dir():
                raise DatasetError(
                    f"{root}: a RefSR folder needs HR/ and Ref/ sub-folders "
                    "(or use source self, stereo or samples)"
                )
            for hr_path in list_images(root / "HR"):
                refs = [p for p in list_images(root / "Ref") if p.stem == hr_path.stem]
                if not refs:
                    raise DatasetError(f"no Ref image for {hr_path.name} in {root / 'Ref'}")
                pairs.append((hr_path.stem, hr_path, refs[0]))
        if not pairs:
            raise DatasetError(f"no images in {source}")
        for name, hp, rp in pairs:
            hr_raw, ref_raw = read_image(hp), read_image(rp)
            if ref_policy == "require-same" and hr_raw.shape != ref_raw.shape:
                raise DatasetError(
                    f"{name}: Ref is {tuple(ref_raw.shape[-2:])}, HR {tuple(hr_raw.shape[-2:])};"
                    " ref_policy require-same needs equal sizes"
                )
            hr = quantize(_fit(hr_raw, hr_size, f"HR {hp.name}"))
            ref = quantize(_fit(ref_raw, hr_size, f"Ref {rp.name}"))
            lr = quantize(imresize(hr, 1 / scale).clamp(0.0, 1.0))
            self.triplets.append(Triplet(name, lr, ref, hr))

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

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lr, ref, hr)`` batches of the given samples.

        Shape:
            ``(B, 3, h, w)``, ``(B, 3, H, W)``, ``(B, 3, H, W)``.
        """
        items = [self[i] for i in indices]
        return (
            torch.cat([t.lr for t in items]),
            torch.cat([t.ref for t in items]),
            torch.cat([t.hr for t in items]),
        )
