"""The leaderboard's fixed, versioned protocols and the data they run on.

A :class:`Protocol` names every setting that changes a leaderboard number: the attack
budgets, the iterations, the reference point, the scales, the crops. A published version
(``v1``) never changes; a different protocol gets a new version. Its ``quick`` variant runs
the same code on small crops with few steps (smoke runs and tests); its numbers are not
comparable with the full protocol's and every page says which variant it shows.

Example:
    >>> p = get_protocol("v1")
    >>> p.alphas, p.steps, p.reference, p.scales
    ((1, 2, 4, 8, 16), 50, 'clean-8bit', (2, 4))
    >>> q = p.quick_variant()
    >>> q.alphas, q.steps, q.hr_crop, q.label
    ((2, 8), 5, 48, 'v1 (quick)')
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from advsr.attacks.sr import DEFAULT_REFERENCE
from advsr.errors import InputError
from advsr.registry import Registry

__all__ = [
    "PROTOCOLS",
    "QUICK_IMAGES",
    "SET5",
    "Protocol",
    "default_data",
    "get_protocol",
    "quick_samples_dir",
]

SET5 = Path("..") / "shared" / "data" / "sr" / "Set5"
"""The default full-protocol dataset, relative to the working folder (when present)."""
QUICK_IMAGES = ("chelsea", "china")
"""The two ``samples`` images of the quick variant (held out of the demo models' training)."""


@dataclass(frozen=True)
class Protocol:
    """One leaderboard protocol (see the module docstring).

    Attributes:
        name: the version (``v1``).
        alphas: budgets of the basic attack (I-FGSM of Choi et al.), in 1/255 units; the
            headline score averages the SR PSNR over them.
        steps: iterations T of every attack (step alpha / T for the basic attack).
        reference: the reference point of the SR attacks (``clean-8bit``: the default).
        universal_alpha: budget of the universal attack (1/255 units).
        apgd_alpha: budget of APGD-SR (``basic@A/255:schedule=apgd``).
        transfer_alpha: budget of the transferability matrix; also the figures' budget.
        scales: the SR factors.
        hr_crop: centre crop of HR images (None: whole images).
        quick: the quick variant (small crops, few steps: not comparable with the full one).
        quick_alphas: the basic attack's budgets in the quick variant.
    """

    name: str
    alphas: tuple[int, ...]
    steps: int
    reference: str
    universal_alpha: int
    apgd_alpha: int
    transfer_alpha: int
    scales: tuple[int, ...]
    hr_crop: int | None = None
    quick: bool = False
    quick_alphas: tuple[int, ...] = (2, 8)

    def __post_init__(self) -> None:
        if self.transfer_alpha not in self.alphas or self.transfer_alpha not in self.quick_alphas:
            raise InputError(
                f"protocol {self.name}: the transfer budget {self.transfer_alpha}/255 must be "
                "one of the basic attack's (its diagonal is the white-box attack)"
            )

    @property
    def label(self) -> str:
        """``v1`` or ``v1 (quick)``: how pages name the protocol."""
        return f"{self.name} (quick)" if self.quick else self.name

    @property
    def apgd_attack(self) -> str:
        """APGD-SR as an attack spec: ``basic@8/255:schedule=apgd``."""
        return f"basic@{self.apgd_alpha}/255:schedule=apgd"

    def quick_variant(self) -> Protocol:
        """The quick variant: 48 px HR crops, T = 5, the budgets :attr:`quick_alphas`, the
        same scales and attacks."""
        return replace(self, alphas=self.quick_alphas, steps=5, hr_crop=48, quick=True)

    def with_scales(self, scales: list[int] | None) -> Protocol:
        """The protocol on other scales (``--scale``); None keeps the protocol's.

        Raises:
            InputError: a scale below 2, or one given twice.
        """
        if not scales:
            return self
        if len(set(scales)) != len(scales):
            raise InputError(f"--scale gives a scale twice: {scales}")
        bad = [s for s in scales if s < 2]
        if bad:
            raise InputError(f"a leaderboard scale must be >= 2, got {bad[0]}")
        return replace(self, scales=tuple(scales))

    def describe(self) -> dict[str, Any]:
        """The protocol as JSON data (what the config hash and the pages show)."""
        out = asdict(self)
        out["label"] = self.label
        out["alphas"] = [f"{a}/255" for a in self.alphas]
        out["universal"] = f"universal@{self.universal_alpha}/255"
        out["apgd"] = self.apgd_attack
        out["transfer"] = f"basic@{self.transfer_alpha}/255"
        for k in ("universal_alpha", "apgd_alpha", "transfer_alpha", "quick_alphas"):
            out.pop(k)
        out["scales"] = list(self.scales)
        return out


PROTOCOLS: Registry[Protocol] = Registry("leaderboard protocol")
PROTOCOLS.register(
    "v1",
    Protocol(
        name="v1",
        alphas=(1, 2, 4, 8, 16),
        steps=50,
        reference=DEFAULT_REFERENCE,
        universal_alpha=8,
        apgd_alpha=8,
        transfer_alpha=8,
        scales=(2, 4),
    ),
    "basic attack at 1, 2, 4, 8, 16/255 (T = 50), universal and APGD-SR at 8/255; x2, x4",
)


def get_protocol(name: str, *, quick: bool = False) -> Protocol:
    """The registered protocol ``name`` (its quick variant when ``quick``).

    Raises:
        UnknownNameError: no such protocol (with the closest name).
    """
    p = PROTOCOLS.get(name)
    return p.quick_variant() if quick else p


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advsr"


def _holds(folder: Path, wanted: dict[str, Path]) -> bool:
    """``folder`` holds exactly the files ``wanted`` (name -> source), byte for byte."""
    try:
        if not folder.is_dir() or sorted(p.name for p in folder.iterdir()) != sorted(wanted):
            return False
        return all((folder / n).read_bytes() == p.read_bytes() for n, p in wanted.items())
    except OSError:  # a link into a wheel that was reinstalled elsewhere
        return False


def quick_samples_dir(root: Path | None = None) -> Path:
    """A folder holding the two :data:`QUICK_IMAGES` of ``samples`` (links to the files in
    the installed wheels, copies where links are not possible): the quick variant's data.

    The folder's content never changes, so cells computed through it are found again (a
    dataset is identified by the names and bytes of its files, not by its path).

    Args:
        root: where to create it (default ``$XDG_CACHE_HOME/advsr`` or ``~/.cache/advsr``;
            a temporary folder when that cannot be written).
    """
    from advsr.data.samples import sample_paths

    sources = {n: p for n, p in sample_paths().items() if n in QUICK_IMAGES}
    wanted = {f"{n}{p.suffix}": p for n, p in sources.items()}
    try:
        base = root or _cache_root()
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        base = Path(tempfile.gettempdir()) / f"advsr-{os.getuid() if hasattr(os, 'getuid') else 0}"
        base.mkdir(parents=True, exist_ok=True)
    folder = base / "leaderboard-quick-samples"
    if _holds(folder, wanted):
        return folder
    work = Path(tempfile.mkdtemp(prefix=".quick-", dir=base))
    for name, src in wanted.items():
        try:
            (work / name).symlink_to(src)
        except OSError:
            shutil.copyfile(src, work / name)
    if folder.exists() and not _holds(folder, wanted):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        work.rename(folder)
    except OSError:  # another run made it first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    return folder


def default_data(protocol: Protocol) -> tuple[str, str]:
    """The dataset of a run without ``--data`` and how pages name it: Set5
    (``../shared/data/sr/Set5``) for the full protocol when it is there, else ``samples``;
    the quick variant's two images of ``samples`` (:func:`quick_samples_dir`)."""
    if protocol.quick:
        return str(quick_samples_dir()), f"samples ({', '.join(QUICK_IMAGES)})"
    if SET5.is_dir():
        return str(SET5), f"Set5 ({SET5.as_posix()})"
    return "samples", "samples"
