"""Labelled image datasets for classifiers: image folders and scikit-learn's digits.

Layouts of :func:`open_labelled`:

* a folder of class folders (``root/<class>/<image>``; classes in alphabetical order, as
  torchvision's ImageFolder and the CIFAR-10 JPEG copy use);
* a flat folder whose file names end in ``_<label>`` (``cifar10_00_3.png``: label 3, the
  foolbox sample layout);
* ImageNet: class folders named by wnid (``val/n01440764/...``, the torchvision layout) or a
  flat folder of files whose names start with the wnid (``n01440764_10026.JPEG``); the
  label is the wnid's index among the 1000 sorted wnids, whichever classes are present;
* the registered name ``digits``: scikit-learn's 8x8 handwritten digits (shipped in its
  wheel), bicubically upsampled to 32x32 and repeated to RGB; ``digits-train`` /
  ``digits-test`` are a fixed 80/20 split (seed 0).

Files are read into the image contract: a grayscale one is copied to 3 channels, an alpha
channel is dropped, 16 bits are kept; :func:`open_labelled` says so in one warning line per
kind (:mod:`advsr.data.conversions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from advsr.data.base import unique_names
from advsr.data.conversions import Conversion, conversion_notices
from advsr.data.folders import check_folder_entries
from advsr.data.imagenet import resize_center_crop, wnid_label
from advsr.errors import DatasetError, ShapeError, warn
from advsr.imaging.resize import imresize
from advsr.io import image_info, list_images, read_image, stack_images

__all__ = ["LabelledSet", "digits", "open_labelled"]

_SUFFIX = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class LabelledSet:
    """Images with integer labels, loaded into memory.

    Attributes:
        name: how the set is called.
        names: image names ``(N,)`` (stems; relative paths where stems collide).
        x: images ``(N, 3, H, W)`` in [0, 1].
        y: labels ``(N,)`` (int64).
        classes: class names in label order (may be empty when unknown).
        keys: each image's identity in the set (its path relative to the root), unique;
            empty means the names.
        notices: what reading the files converted (grayscale, alpha, 16-bit), one line per
            kind (:mod:`advsr.data.conversions`); a selection of the set has none.
    """

    name: str
    names: list[str]
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    keys: list[str] = field(default_factory=list)
    notices: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            object.__setattr__(self, "keys", list(self.names))

    def __len__(self) -> int:
        return len(self.names)

    def select(self, indices: list[int]) -> LabelledSet:
        """The images at ``indices``, in that order."""
        idx = torch.tensor(indices, dtype=torch.long)
        return LabelledSet(
            self.name,
            [self.names[i] for i in indices],
            self.x[idx],
            self.y[idx],
            self.classes,
            [self.keys[i] for i in indices],
        )

    def subset(self, limit: int | None) -> LabelledSet:
        """The first ``limit`` images (all when None)."""
        if limit is None:
            return self
        return self.select(list(range(min(limit, len(self)))))


def digits(split: str = "all", size: int = 32) -> LabelledSet:
    """scikit-learn's digits as 32x32 RGB images (MATLAB bicubic upsampling, clipped).

    Args:
        split: ``all``, ``train`` (80%) or ``test`` (20%), a fixed permutation (seed 0).
        size: output size.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = imresize(x, size=(size, size)).clamp(0.0, 1.0).repeat(1, 3, 1, 1)
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    idx = {"all": torch.arange(len(y)), "train": perm[:cut], "test": perm[cut:]}.get(split)
    if idx is None:
        raise DatasetError(f"unknown digits split {split!r}; use all, train or test")
    names = [f"digit_{int(i):04d}" for i in idx]
    return LabelledSet(
        f"digits-{split}" if split != "all" else "digits",
        names,
        x[idx],
        y[idx],
        [str(k) for k in range(10)],
    )


def _file_label(f: Path) -> int:
    """The label in a file name: a leading ImageNet wnid, else a ``_<label>`` suffix."""
    lab = wnid_label(f.name)
    if lab is not None:
        return lab
    m = _SUFFIX.search(f.stem)
    if m is None:
        raise DatasetError(
            f"{f.name}: no label; use class folders, names ending in _<label>, or names "
            "starting with an ImageNet wnid"
        )
    return int(m.group(1))


def _labelled_files(
    root: Path, pattern: str | None
) -> tuple[list[tuple[Path, int]], list[str], bool]:
    """The ``(file, label)`` pairs of a labelled folder (those matching ``pattern``), its
    class names, and whether it is a folder of class folders (the layouts of
    :func:`open_labelled`).

    Raises:
        DatasetError: a file of a flat folder without a label in its name; an entry named
            like an image that is not a file (:func:`check_folder_entries`).
    """
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    files: list[tuple[Path, int]] = []
    classes: list[str] = []
    wnids = bool(class_dirs) and all(wnid_label(d.name) is not None for d in class_dirs)
    if class_dirs:
        classes = [d.name for d in class_dirs]
        for label, d in enumerate(class_dirs):
            wnid = wnid_label(d.name)
            lab = wnid if wnids and wnid is not None else label
            check_folder_entries(d)
            files += [(f, lab) for f in list_images(d) if pattern is None or f.match(pattern)]
        if wnids:
            from advsr.data.imagenet import IMAGENET_WNIDS

            classes = list(IMAGENET_WNIDS)
    else:
        check_folder_entries(root)
        for f in list_images(root):
            if pattern is not None and not f.match(pattern):
                continue
            files.append((f, _file_label(f)))
    return files, classes, bool(class_dirs)


def _first_per_class(files: list[tuple[Path, int]], per_class: int) -> list[tuple[Path, int]]:
    """The first ``per_class`` files of each label, in the order of ``files``."""
    seen: dict[int, int] = {}
    kept = []
    for f, lab in files:
        seen[lab] = seen.get(lab, 0) + 1
        if seen[lab] <= per_class:
            kept.append((f, lab))
    return kept


def _stack_labelled(root: Path, images: list[torch.Tensor]) -> torch.Tensor:
    """The images of ``root`` as one batch.

    Shape:
        ``N x (1, 3, H, W)`` -> ``(N, 3, H, W)``.

    Raises:
        DatasetError: images of different sizes (what a load size would do about it), or any
            other failure to stack them.
    """
    try:
        return stack_images(images)
    except ShapeError:
        sizes = sorted({f"{im.shape[-2]}x{im.shape[-1]}" for im in images})
        raise DatasetError(
            f"the images of {root} have different sizes ({', '.join(sizes[:6])}"
            f"{', ...' if len(sizes) > 6 else ''}): a classifier with a load size (ImageNet "
            "models) resizes and centre-crops them; for this one, give images of one size"
        ) from None
    except Exception as exc:
        raise DatasetError(f"{root}: {exc}") from None


def open_labelled(
    spec: str | Path,
    *,
    limit: int | None = None,
    pattern: str | None = None,
    per_class: int | None = None,
    size: int | None = None,
    notify: bool = True,
) -> LabelledSet:
    """Open a labelled dataset by name (``digits``, ``digits-train``, ``digits-test``) or path.

    Args:
        spec: name or folder.
        limit: keep the first N images.
        pattern: glob on file names (e.g. ``cifar10_*`` in a flat folder of mixed content,
            ``09*.jpg`` in class folders).
        per_class: keep the first N images of each class (before ``limit``).
        size: ImageNet-style loading: every image resized (shorter side to ``size / 0.875``)
            and centre-cropped to ``size x size`` (:func:`resize_center_crop`); None keeps
            the files' sizes, which must then agree.
        notify: warn (one :class:`~advsr.errors.AdvsrWarning` line per kind) when files are
            grayscale (copied to 3 channels), have alpha (dropped) or 16 bits; the lines are
            kept in :attr:`LabelledSet.notices` either way.

    Raises:
        DatasetError: unknown name, missing folder, no images, unlabelled file names,
            images of different sizes.
    """
    key = str(spec)
    if key in ("digits", "digits-train", "digits-test"):
        return digits(key.split("-")[1] if "-" in key else "all").subset(limit)
    root = Path(key)
    if not root.exists():
        raise DatasetError(
            f"unknown labelled dataset {key!r}: not digits, digits-train, digits-test nor a path"
        )
    if not root.is_dir():
        raise DatasetError(f"a labelled dataset must be a folder, got a file: {root}")
    files, classes, nested = _labelled_files(root, pattern)
    if not files:
        which = f" matching {pattern!r}" if pattern is not None else ""
        raise DatasetError(f"no images{which} in {root}")
    if per_class is not None:
        files = _first_per_class(files, per_class)
    if limit is not None:
        files = files[:limit]
    if size is None:
        images = [read_image(f) for f, _ in files]
    else:  # one full-size decode at a time; the crop is copied out of the resized image
        images = [resize_center_crop(read_image(f), size).contiguous() for f, _ in files]
    conversions = [Conversion.of(image_info(f)) for f, _ in files]  # headers only
    x = _stack_labelled(root, images)
    keys = [f.relative_to(root).as_posix() for f, _ in files]
    stems = [f"{f.parent.name}/{f.stem}" if nested else f.stem for f, _ in files]
    names = unique_names(keys, stems)
    labels = torch.tensor([lab for _, lab in files])
    notices = tuple(conversion_notices(str(root), names, conversions, use="classify"))
    if notify:
        for line in notices:
            warn(line)
    return LabelledSet(str(root), names, x, labels, classes, keys, notices)
