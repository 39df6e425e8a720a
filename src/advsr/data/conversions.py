"""The input policy: what reading a dataset's files changes, said once per dataset.

Every image is read into the image contract (``float32`` ``(N, 3, H, W)`` RGB in
``[0, 1]``, :func:`advsr.io.read_image`), which converts three kinds of file:

* **grayscale** (``L``, ``1``, 16-bit gray, gray + alpha): the one channel is copied to R, G
  and B. An attack then perturbs the three channels separately, so the adversarial image of
  a gray photo is in general a colour image (a model that treats the channels alike and
  independently, such as bicubic, keeps it gray without a random start). ``attack-sr --gray
  keep`` keeps it gray (see :mod:`advsr.experiments.attack_sr`).
* **alpha** (``RGBA``, ``LA``, a palette with transparency): the alpha channel is dropped,
  not composited onto a background: a transparent pixel keeps the colour stored under it.
* **16-bit** PNG and TIFF: read at full precision (value / 65535, ``float32``) and never
  rounded to 8 bits on reading. An LR image *made* from a 16-bit HR is rounded to 8 bits
  (``lr_bits``, as a MATLAB-made LR file would be); LR and HR *files* are used as read.
  PSNRs are computed on floats; ``eval-sr`` rounds the SR output to 8 bits before scoring
  it (unless ``--float``); figures are 8-bit PNGs.

:func:`conversion_notices` words these as one :class:`~advsr.errors.AdvsrWarning` line per
kind and dataset (``advsr: warning: 1 of 14 images in Set14 is grayscale (bridge): ...``),
naming the images concerned.

Example:
    >>> c = [Conversion(), Conversion(gray=True)]
    >>> conversion_notices("Set2", ["baby", "bridge"], c, use="eval-sr")
    ['1 of 2 images in Set2 is grayscale (bridge): copied to 3 channels (R = G = B)']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from advsr.io import ImageInfo

__all__ = ["Conversion", "GrayPolicy", "NoticeUse", "conversion_notices"]

GrayPolicy = Literal["rgb", "keep"]
"""How a grayscale image is attacked: ``rgb`` (three channels, each perturbed) or ``keep``
(one perturbation shared by R, G and B, so the adversarial image stays gray)."""

NoticeUse = Literal["attack", "attack-sr", "eval-sr", "classify"]
"""Who reads the dataset, for the consequences a notice states: ``attack`` (any SR
experiment without a gray policy), ``attack-sr`` (which has ``--gray``), ``eval-sr`` (no
attack) or ``classify`` (labelled sets)."""

_SHOWN = 5  # image names a notice lists


@dataclass(frozen=True)
class Conversion:
    """What reading one dataset item (its file, or its LR and HR files) converts.

    Attributes:
        gray: a file has one colour channel (copied to 3).
        alpha: a file has an alpha channel (dropped).
        bits16: a file has 16 bits per channel (read at that precision).
    """

    gray: bool = False
    alpha: bool = False
    bits16: bool = False

    @classmethod
    def of(cls, *infos: ImageInfo) -> Conversion:
        """The conversions of an item made of these files."""
        return cls(
            gray=any(i.gray for i in infos),
            alpha=any(i.alpha for i in infos),
            bits16=any(i.bits == 16 for i in infos),
        )


def _which(dataset: str, names: Sequence[str], picked: list[int], what: tuple[str, str]) -> str:
    """``1 of 14 images in Set14 is grayscale (bridge)``."""
    n = len(picked)
    shown = ", ".join(names[i] for i in picked[:_SHOWN])
    more = f" and {n - _SHOWN} more" if n > _SHOWN else ""
    noun = "image" if len(names) == 1 else "images"
    return f"{n} of {len(names)} {noun} in {dataset} {what[n != 1]} ({shown}{more})"


def _gray_effect(use: NoticeUse, gray: GrayPolicy) -> str:
    if use == "eval-sr":
        return "copied to 3 channels (R = G = B)"
    if use == "attack-sr" and gray == "keep":
        return (
            "copied to 3 channels and kept gray: --gray keep attacks it through its gray "
            "projection (one perturbation shared by R, G and B, which changes Y only)"
        )
    hint = " (--gray keep attacks the Y channel only)" if use == "attack-sr" else ""
    return (
        "copied to 3 channels; the attack perturbs each channel, so its adversarial image "
        f"need not stay gray{hint}"
    )


def _bits16_effect(use: NoticeUse, lr_bits: int | Literal["files"] | None) -> str:
    read = "read at 16 bits (value / 65535, float32, not rounded)"
    if use == "classify":
        return f"{read} and classified at that precision; figures are 8-bit PNGs"
    if lr_bits == "files":
        lr = "LR and HR files are used at that precision"
    elif lr_bits is None:
        lr = "the LR made from it stays float, the HR keeps 16-bit precision"
    else:
        lr = f"the LR made from it is rounded to {lr_bits} bits, the HR keeps 16-bit precision"
    if use == "eval-sr":
        return f"{read}; {lr}; the SR output is rounded to 8 bits before scoring (unless --float)"
    return f"{read}; {lr}; PSNRs are computed in float; figures are 8-bit PNGs"


def conversion_notices(
    dataset: str,
    names: Sequence[str],
    conversions: Sequence[Conversion],
    *,
    use: NoticeUse = "attack",
    gray: GrayPolicy = "rgb",
    lr_bits: int | Literal["files"] | None = 8,
) -> list[str]:
    """One line per kind of conversion the dataset's files need (none: empty).

    Args:
        dataset: how the dataset is called (its name or path).
        names: the items' names, in dataset order.
        conversions: each item's :class:`Conversion`, in the same order.
        use: who reads it (see :data:`NoticeUse`): what the notice says follows.
        gray: the gray policy in force (``attack-sr``).
        lr_bits: the bit depth LR images made from the HR are rounded to (``None``: float),
            or ``"files"`` where the LR images are files of their own.

    Returns:
        the notices, grayscale first, then alpha, then 16-bit.
    """
    out = []
    kinds = (
        ("gray", ("is grayscale", "are grayscale"), _gray_effect(use, gray)),
        (
            "alpha",
            ("has an alpha channel", "have an alpha channel"),
            "alpha dropped, not composited: transparent pixels keep their stored colour",
        ),
        ("bits16", ("is 16-bit", "are 16-bit"), _bits16_effect(use, lr_bits)),
    )
    for attr, what, effect in kinds:
        picked = [i for i, c in enumerate(conversions) if getattr(c, attr)]
        if picked:
            out.append(f"{_which(dataset, names, picked, what)}: {effect}")
    return out
