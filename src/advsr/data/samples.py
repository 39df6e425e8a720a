"""The embedded ``samples`` set: natural RGB photographs shipped inside installed wheels.

Nothing is copied into this repository: the files are read from the installed
scikit-image (``skimage/data``) and scikit-learn (``sklearn/datasets/images``) packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from advsr.checks import check_scale
from advsr.data.base import SRDataset, SRPair, pair_size
from advsr.data.conversions import Conversion
from advsr.data.folders import _check_hr_info, make_hr_pair, warn_if_crop_has_no_effect
from advsr.errors import DatasetError
from advsr.io import read_image

__all__ = ["SAMPLE_FILES", "SamplesDataset", "sample_paths"]

# name -> (package, path inside the package)
SAMPLE_FILES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetError(f"the samples set needs the installed package {package!r}")
    return Path(spec.origin).parent


def sample_paths() -> dict[str, Path]:
    """Paths of the sample images inside the installed packages."""
    out = {}
    for name, (pkg, rel) in SAMPLE_FILES.items():
        p = _package_dir(pkg) / rel
        if not p.is_file():
            raise DatasetError(f"sample image {name!r} is missing from the installed {pkg}: {p}")
        out[name] = p
    return out


class SamplesDataset(SRDataset):
    """The 8 embedded natural images as an SR dataset (LR by MATLAB bicubic, 8-bit).

    Args:
        scale: SR factor.
        hr_crop: optional centre crop of each HR image (pixels a side), for quick runs.
        lr_bits: bit depth the LR is rounded to (``None`` keeps float).

    Example:
        >>> ds = SamplesDataset(scale=2, hr_crop=64)
        >>> len(ds), ds[0].name, tuple(ds[0].lr.shape)
        (8, 'astronaut', (1, 3, 32, 32))
    """

    kind = "samples"

    def __init__(self, scale: int, *, hr_crop: int | None = None, lr_bits: int | None = 8):
        super().__init__("samples", check_scale(scale))
        self.hr_crop = hr_crop
        self.lr_bits = lr_bits
        self._paths = sample_paths()
        infos = [_check_hr_info(p, scale, hr_crop) for p in self._paths.values()]
        warn_if_crop_has_no_effect([(i.height, i.width) for i in infos], hr_crop)
        self._hr_sizes = [pair_size(i.height, i.width, scale, hr_crop) for i in infos]
        self._conversions = [Conversion.of(i) for i in infos]
        self._names = list(self._paths)

    def _load(self, index: int) -> SRPair:
        name = self._names[index]
        hr = read_image(self._paths[name])
        return make_hr_pair(name, hr, self.scale, hr_crop=self.hr_crop, lr_bits=self.lr_bits)

    def _fingerprint_parts(self) -> list[object]:
        sizes = [[n, p.stat().st_size] for n, p in self._paths.items()]
        digest = hashlib.sha256(json.dumps(sizes).encode()).hexdigest()[:16]
        return [digest, self.hr_crop, self.lr_bits]
