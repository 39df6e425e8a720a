"""Image-folder SR datasets: HR-only (LR made on the fly) and paired LR/HR layouts.

Supported layouts (told apart by :func:`advsr.data.layouts.detect_layout`):

* **HR folder** – any folder of images (or one image file), or a folder whose ``HR/``
  (``GTmod12/``, ``DIV2K_valid_HR/``) has no LR folder beside it. HR is mod-cropped to the
  scale, LR is made with MATLAB-compatible bicubic (:func:`advsr.imaging.imresize`) and, by
  default, rounded to 8 bits as a MATLAB-made LR file would be.
* **SelfExSR** – ``<stem>_HR.png`` / ``<stem>_LR.png`` side by side
  (e.g. ``Set5/image_SRF_4/img_001_SRF_4_HR.png``); a root holding ``image_SRF_<s>/``
  folders is resolved to the folder of the requested scale.
* **BasicSR** – ``GTmod12/<name>.png`` and ``LRbicx<s>/<name>.png`` (the benchmark sets of
  XPixelGroup/BasicSR).
* **DIV2K** – ``DIV2K_valid_HR/<name>.png`` and ``DIV2K_valid_LR_bicubic/X<s>/<name>x<s>.png``,
  or ``HR/`` and ``LR_bicubic/X<s>/`` (``<name>.png`` or ``<name>x<s>.png``).

LR files are read as they are: one whose size does not fit its HR at the scale is refused
with one line naming it.

Entries of an image folder that are neither files nor folders are never skipped silently
(:func:`check_folder_entries`): a broken symbolic link, a FIFO, a socket or a device whose
name looks like an image (``x.png``) is refused, any other one (or a hidden one) is named
in a warning. Nothing is opened to find out (a FIFO would block).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from advsr.checks import check_scale
from advsr.data.base import SRDataset, SRPair, pair_size, unique_names
from advsr.data.conversions import Conversion
from advsr.data.layouts import Layout, detect_layout
from advsr.errors import DatasetError, ImageReadError, warn
from advsr.imaging.quantize import quantize
from advsr.imaging.resize import imresize, modcrop
from advsr.io import IMAGE_EXTENSIONS, ImageInfo, image_info, list_images, read_image

__all__ = [
    "HRFolderDataset",
    "PairedFolderDataset",
    "check_folder_entries",
    "make_hr_pair",
    "open_folder",
]


def _odd_kind(entry: Path) -> str | None:
    """What ``entry`` is when it is neither a file nor a folder (None when it is one);
    ``stat`` only, nothing is opened."""
    try:
        mode = entry.stat().st_mode  # follows a link
    except OSError as exc:
        if entry.is_symlink():
            try:
                return f"a broken symbolic link (to {os.readlink(entry)!r})"
            except OSError:
                return "a broken symbolic link"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "not a regular file"


def check_folder_entries(folder: str | Path) -> None:
    """Refuse or report the entries of an image folder that are neither files nor folders.

    A broken symbolic link, FIFO, socket or device named like an image (``x.png``; hidden
    names aside) would be an image missing from the dataset: it is refused. Other such
    entries are named in one :class:`~advsr.errors.AdvsrWarning` (they are skipped).

    Raises:
        DatasetError: one line naming the first image-like entry (and how many more).
    """
    d = Path(folder)
    try:
        entries = sorted(d.iterdir())
    except OSError:
        return  # a missing folder is reported by whoever lists it
    odd = [(e, kind) for e in entries if (kind := _odd_kind(e)) is not None]
    if not odd:
        return
    images = [
        (e, k)
        for e, k in odd
        if e.suffix.lower() in IMAGE_EXTENSIONS and not e.name.startswith(".")
    ]
    if images:
        (entry, kind), extra = images[0], len(images) - 1
        also = f" (and {extra} more such entr{'y' if extra == 1 else 'ies'})" if extra else ""
        raise DatasetError(f"{entry} is {kind}, not an image file{also}: fix or remove it")
    names = ", ".join(f"{e.name} ({k})" for e, k in odd[:5])
    more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    what = "an entry" if len(odd) == 1 else f"{len(odd)} entries"
    verb = "is" if len(odd) == 1 else "are"
    warn(f"skipped {what} of {d} that {verb} neither a file nor a folder: {names}{more}")


def _images_in(folder: Path) -> list[Path]:
    """:func:`advsr.io.list_images` after :func:`check_folder_entries`."""
    check_folder_entries(folder)
    return list_images(folder)


def _center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def make_hr_pair(
    name: str, hr: torch.Tensor, scale: int, *, hr_crop: int | None = None, lr_bits: int | None = 8
) -> SRPair:
    """Build an (LR, HR) pair from one HR image: centre crop, mod-crop, bicubic downscale.

    Args:
        name: the image's name.
        hr: the HR image ``(1, 3, H, W)``.
        scale: SR factor.
        hr_crop: optional centre crop of the HR image to at most ``hr_crop`` pixels a side.
        lr_bits: round the LR to this bit depth (8 reproduces MATLAB-made LR files);
            ``None`` keeps it in float.

    Shape:
        ``(1, 3, H, W)`` -> pair of ``(1, 3, H', W')`` and ``(1, 3, H'/s, W'/s)``.
    """
    hr = modcrop(_center_crop(hr, hr_crop), scale)
    lr = imresize(hr, 1.0 / scale)
    lr = quantize(lr, lr_bits) if lr_bits is not None else lr.clamp(0.0, 1.0)
    return SRPair(name=name, lr=lr, hr=hr)


def _check_hr_info(path: Path, scale: int, hr_crop: int | None) -> ImageInfo:
    """The image's header; refused when smaller than the scale (after the crop)."""
    info = image_info(path)
    h0, w0 = info.height, info.width
    h, w = (min(h0, hr_crop), min(w0, hr_crop)) if hr_crop is not None else (h0, w0)
    if h < scale or w < scale:
        raise DatasetError(f"image {path.name} ({h}x{w}) is smaller than the scale factor {scale}")
    return info


def warn_if_crop_has_no_effect(sizes: list[tuple[int, int]], hr_crop: int | None) -> None:
    """A warning when ``hr_crop`` is not smaller than any image side (it then does nothing)."""
    if hr_crop is not None and sizes and all(max(s) <= hr_crop for s in sizes):
        largest = max(max(s) for s in sizes)
        warn(f"hr_crop {hr_crop} is not smaller than any image (the largest side is {largest})"
             ": it has no effect")  # fmt: skip


class HRFolderDataset(SRDataset):
    """HR images from a folder (or a single file); LR generated by MATLAB bicubic.

    Args:
        path: a folder of images or one image file.
        scale: SR factor.
        hr_crop: optional centre crop (pixels a side) applied to every HR image.
        lr_bits: bit depth the LR is rounded to (``None`` for float LR).

    Example:
        >>> ds = HRFolderDataset("path/to/DIV2K_valid_HR", scale=4)  # doctest: +SKIP
        >>> pair = ds[0]; pair.lr.shape, pair.hr.shape  # doctest: +SKIP
    """

    kind = "hr-folder"

    def __init__(
        self,
        path: str | Path,
        scale: int,
        *,
        hr_crop: int | None = None,
        lr_bits: int | None = 8,
        name: str | None = None,
    ) -> None:
        p = Path(path)
        super().__init__(name or str(p), check_scale(scale))
        self.hr_crop = hr_crop
        self.lr_bits = lr_bits
        if p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DatasetError(f"not an image file (png/jpg/bmp/tif): {p}")
            self._paths = [p]
            self._keys = [p.name]
        else:
            self._paths = _images_in(p)
            if not self._paths:
                raise DatasetError(f"no images (png/jpg/bmp/tif) in folder {p}")
            self._keys = [f.relative_to(p).as_posix() for f in self._paths]
        infos = [_check_hr_info(f, scale, hr_crop) for f in self._paths]
        warn_if_crop_has_no_effect([(i.height, i.width) for i in infos], hr_crop)
        self._hr_sizes = [pair_size(i.height, i.width, scale, hr_crop) for i in infos]
        self._conversions = [Conversion.of(i) for i in infos]
        self._names = unique_names(self._keys, [f.stem for f in self._paths])

    def _load(self, index: int) -> SRPair:
        hr = read_image(self._paths[index])
        return make_hr_pair(
            self._names[index], hr, self.scale, hr_crop=self.hr_crop, lr_bits=self.lr_bits
        )

    def _fingerprint_parts(self) -> list[object]:
        files = [[f.name, f.stat().st_size] for f in self._paths]
        return [files, self.hr_crop, self.lr_bits]


class PairedFolderDataset(SRDataset):
    """Paired LR/HR files (SelfExSR or BasicSR layout); sizes checked against the scale.

    The HR may exceed ``scale * LR`` by less than ``scale`` pixels (it is then mod-cropped);
    any other size relation raises :class:`DatasetError` naming the scale the files fit.

    Args:
        pairs: ``(name, lr_path, hr_path)`` triples.
        scale: SR factor.
        kind: layout name, for the store.
        name: how the dataset is called.
        hr_crop: centre-crop each pair to an HR side of at most this many pixels (the LR to
            ``hr_crop // scale``, the HR to the same region), for quick runs.
    """

    def __init__(
        self,
        pairs: list[tuple[str, Path, Path]],
        scale: int,
        *,
        kind: str,
        name: str,
        hr_crop: int | None = None,
    ) -> None:
        super().__init__(name, check_scale(scale))
        self.kind = kind
        self.lr_files = True
        self.hr_crop = hr_crop
        if not pairs:
            raise DatasetError(f"no LR/HR pairs found in {name}")
        self._pairs = pairs
        sizes = []
        for _, lr_p, hr_p in pairs:
            lr_info, hr_info = image_info(lr_p), image_info(hr_p)
            lh, lw = lr_info.height, lr_info.width
            hh, hw = hr_info.height, hr_info.width
            sizes.append((hh, hw))
            self._conversions.append(Conversion.of(lr_info, hr_info))
            if not (0 <= hh - lh * scale < scale and 0 <= hw - lw * scale < scale):
                fits = hh // lh if lh and hh // lh == hw // max(lw, 1) else None
                hint = f" (the files fit scale {fits})" if fits else ""
                raise DatasetError(
                    f"scale {scale} does not match {lr_p}: LR {lh}x{lw}, HR {hh}x{hw}"
                    f" ({hr_p.name}){hint}"
                )
        warn_if_crop_has_no_effect(sizes, hr_crop)
        self._hr_sizes = [pair_size(h, w, scale, hr_crop) for h, w in sizes]
        root = Path(name)
        self._keys = [
            hr.relative_to(root).as_posix() if hr.is_relative_to(root) else hr.name
            for _, _, hr in pairs
        ]
        self._names = unique_names(self._keys, [p[0] for p in pairs])

    def _load(self, index: int) -> SRPair:
        _, lr_p, hr_p = self._pairs[index]
        stem = self._names[index]
        lr = read_image(lr_p)
        hr = read_image(hr_p)
        lh, lw = lr.shape[-2:]
        s = self.scale
        hr = hr[..., : lh * s, : lw * s]
        if hr.shape[-2:] != (lh * s, lw * s):
            raise DatasetError(f"{stem}: decoded HR size does not match its header")
        if self.hr_crop is not None:  # the same centre region of both, LR-aligned
            c = max(1, self.hr_crop // s)
            ch, cw = min(lh, c), min(lw, c)
            top, left = (lh - ch) // 2, (lw - cw) // 2
            lr = lr[..., top : top + ch, left : left + cw]
            hr = hr[..., top * s : (top + ch) * s, left * s : (left + cw) * s]
        return SRPair(name=stem, lr=lr, hr=hr)

    def _fingerprint_parts(self) -> list[object]:
        sizes = [[n, lr.stat().st_size, hr.stat().st_size] for n, lr, hr in self._pairs]
        return [sizes, self.hr_crop]


def _selfexsr_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    pairs = []
    for hr in list_images(folder):  # the caller checks the folder's entries
        if not hr.stem.endswith("_HR"):
            continue
        stem = hr.stem[: -len("_HR")]
        lr = hr.with_name(f"{stem}_LR{hr.suffix}")
        if not lr.is_file():
            kind = _odd_kind(lr) if lr.is_symlink() or lr.exists() else None
            if kind is not None:
                raise DatasetError(f"{lr} is {kind}, not an image file: fix or remove it")
            raise DatasetError(f"{hr.name} has no LR partner {lr.name} in {folder}")
        pairs.append((stem, lr, hr))
    return pairs


def _lr_pairs(layout: Layout, scale: int) -> list[tuple[str, Path, Path]]:
    """The (stem, LR, HR) triples of a ``basicsr`` or ``div2k`` layout at ``scale``: each
    HR file's partner in the scale's LR folder is named like it or ``<stem>x<s>``."""
    if scale not in layout.lr:
        have = ", ".join(p.name for _, p in sorted(layout.lr.items()))
        raise DatasetError(
            f"no LR folder for scale {scale}: {layout.lr_folder(scale)} is missing"
            + (f" (found {have})" if have else "")
            + f"; the HR folder {layout.hr} alone makes LR by MATLAB bicubic"
        )
    lr_dir = layout.lr[scale]
    lr_by_stem = {p.stem: p for p in _images_in(lr_dir)}
    pairs = []
    for hr in _images_in(layout.hr):
        lr = lr_by_stem.get(hr.stem) or lr_by_stem.get(f"{hr.stem}x{scale}")
        if lr is None:
            raise DatasetError(f"{hr.name} has no LR partner in {lr_dir}")
        pairs.append((hr.stem, lr, hr))
    return pairs


def open_folder(
    path: str | Path, scale: int, *, hr_crop: int | None = None, lr_bits: int | None = 8
) -> SRDataset:
    """Open a folder or image file, detecting its layout (see the module docstring and
    :mod:`advsr.data.layouts`).

    Raises:
        DatasetError: missing path, no images, missing partners, sizes that do not fit.
    """
    p = Path(path)
    check_scale(scale)
    if not p.exists():
        raise DatasetError(f"no such dataset path: {p}")
    if p.is_file():
        return HRFolderDataset(p, scale, hr_crop=hr_crop, lr_bits=lr_bits)
    if not p.is_dir():
        raise DatasetError(f"{p} is neither a folder nor an image file (a pipe or a device?)")
    layout = detect_layout(p)
    if layout is not None and layout.name == "selfexsr" and layout.lr:
        if scale not in layout.lr:
            have = ", ".join(str(s) for s in sorted(layout.lr))
            raise DatasetError(f"{p} has no image_SRF_{scale} folder (scales: {have})")
        p = layout.lr[scale]
        layout = detect_layout(p)
    if layout is None:
        return HRFolderDataset(p, scale, hr_crop=hr_crop, lr_bits=lr_bits)  # no images: says so
    if layout.name in ("basicsr", "div2k"):
        pairs = _lr_pairs(layout, scale)
        return PairedFolderDataset(
            pairs, scale, kind="paired-basicsr", name=str(p), hr_crop=hr_crop
        )
    if layout.name == "selfexsr":
        try:
            pairs = _selfexsr_pairs(p)
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from None
        check_folder_entries(p)
        return PairedFolderDataset(
            pairs, scale, kind="paired-selfexsr", name=str(p), hr_crop=hr_crop
        )
    return HRFolderDataset(layout.hr, scale, hr_crop=hr_crop, lr_bits=lr_bits)
