"""Where an SR dataset folder keeps its HR and LR files: its layout, told from folder names.

Nothing is opened to tell (no image is decoded, no FIFO blocks): :func:`detect_layout`
looks at folder names and file extensions only. The layouts, in the order they are tried:

* ``selfexsr`` (jbhuang0604/SelfExSR) - ``image_SRF_<s>/<stem>_HR.png`` beside
  ``<stem>_LR.png``, one folder per scale (or such a folder itself);
* ``basicsr`` (XPixelGroup/BasicSR benchmark sets) - ``GTmod12/`` (HR, cut to a multiple
  of 12) and ``LRbicx<s>/`` (LR, the HR's file names, or ``<stem>x<s>``);
* ``div2k`` - ``DIV2K_valid_HR/`` and ``DIV2K_valid_LR_bicubic/X<s>/<stem>x<s>.png`` (the
  DIV2K release), or ``HR/`` and ``LR_bicubic/X<s>/`` (the EDSR benchmark folders);
* ``hr-folder`` - HR images only (the folder's own, or those of ``HR/``,
  ``GTmod12/`` or ``DIV2K_valid_HR/`` when no LR folder is beside it): LR made by MATLAB
  bicubic.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("GTmod12", "LRbicx2", "LRbicx4"):
    ...     (root / sub).mkdir()
    ...     _ = (root / sub / "baby.png").write_bytes(b"")
    >>> layout = detect_layout(root)
    >>> layout.name, sorted(layout.lr), layout.describe()
    ('basicsr', [2, 4], 'basicsr: GTmod12/ + LRbicx2/, LRbicx4/')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from advsr.io import list_images

__all__ = ["LAYOUTS", "Layout", "detect_layout"]

LAYOUTS = ("selfexsr", "basicsr", "div2k", "hr-folder")
"""The layouts :func:`detect_layout` tells apart."""

_SRF = re.compile(r"image_SRF_(\d+)$")
_BICX = re.compile(r"LRbicx(\d+)$")
_X = re.compile(r"X(\d+)$")
# (HR folder, LR folder holding X<s>/): DIV2K's own names, then the EDSR benchmark's
_DIV2K = (("DIV2K_valid_HR", "DIV2K_valid_LR_bicubic"), ("HR", "LR_bicubic"))


@dataclass(frozen=True)
class Layout:
    """A dataset folder's layout.

    Attributes:
        name: one of :data:`LAYOUTS`.
        root: the folder the layout was found in.
        hr: the HR folder (``selfexsr``: the root).
        lr: scale -> the folder of that scale's LR files (``selfexsr``: the
            ``image_SRF_<s>`` folder, holding both; empty for a single SelfExSR folder,
            whose files fit one scale, and for ``hr-folder``).
        lr_root: the folder that holds the scales' LR folders (None where there is none).
    """

    name: str
    root: Path
    hr: Path
    lr: dict[int, Path] = field(default_factory=dict)
    lr_root: Path | None = None

    def lr_folder(self, scale: int) -> Path | None:
        """The folder of the LR files at ``scale``, whether or not it exists (None where the
        layout has no LR folders)."""
        if scale in self.lr:
            return self.lr[scale]
        if self.lr_root is None:
            return None
        pattern = {"selfexsr": "image_SRF_{}", "basicsr": "LRbicx{}"}.get(self.name, "X{}")
        return self.lr_root / pattern.format(scale)

    def describe(self) -> str:
        """One line: the layout and its folders, relative to the root."""

        def rel(p: Path) -> str:
            return p.relative_to(self.root).as_posix() + "/" if p != self.root else "./"

        if self.name == "selfexsr":
            where = ", ".join(rel(p) for _, p in sorted(self.lr.items())) or "*_HR + *_LR pairs"
            return f"selfexsr: {where}"
        if self.name == "hr-folder":
            return f"hr-folder: {rel(self.hr)} (LR by MATLAB bicubic)"
        lr = ", ".join(rel(p) for _, p in sorted(self.lr.items()))
        return f"{self.name}: {rel(self.hr)} + {lr}"

    def files(self) -> list[tuple[str, Path]]:
        """The image files this layout reads at any scale, as ``(path relative to the
        root, path)`` pairs sorted by the relative path."""
        folders = list(self.lr.values()) if self.name == "selfexsr" and self.lr else [self.hr]
        if self.name in ("basicsr", "div2k"):
            folders += list(self.lr.values())
        files = {f.relative_to(self.root).as_posix(): f for d in folders for f in list_images(d)}
        return sorted(files.items())


def _scales(parent: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """Sub-folders of ``parent`` whose names match ``pattern`` (group 1: the scale)."""
    if not parent.is_dir():
        return {}
    return {
        int(m.group(1)): d
        for d in parent.iterdir()
        if d.is_dir() and (m := pattern.match(d.name)) and int(m.group(1)) > 0
    }


def _paired(root: Path) -> Layout | None:
    """The ``basicsr`` or ``div2k`` layout of ``root`` (an LR folder beside the HR one)."""
    gt = root / "GTmod12"
    if gt.is_dir():
        lr = _scales(root, _BICX)
        return Layout("basicsr", root, gt, lr, root) if lr else Layout("hr-folder", root, gt)
    for hr_name, lr_name in _DIV2K:
        hr, lr_root = root / hr_name, root / lr_name
        if hr.is_dir():
            if lr_root.is_dir():
                return Layout("div2k", root, hr, _scales(lr_root, _X), lr_root)
            return Layout("hr-folder", root, hr)
    return None


def detect_layout(folder: str | Path) -> Layout | None:
    """The layout of an SR dataset folder (see the module docstring), or None when it
    holds none: no known sub-folder and no image of its own.

    A ``div2k`` layout whose LR folder holds no ``X<s>`` folder is still ``div2k`` (with no
    scale), so that opening it says which LR folder is missing.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    srf = _scales(root, _SRF)
    if srf:
        return Layout("selfexsr", root, root, srf, root)
    paired = _paired(root)
    if paired is not None:
        return paired
    try:
        images = list_images(root)
    except OSError:
        return None
    if any(p.stem.endswith("_HR") for p in images):
        return Layout("selfexsr", root, root)
    return Layout("hr-folder", root, root) if images else None
