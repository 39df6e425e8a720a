"""Exception hierarchy of advsr.

Every error a user can cause (a bad path, a corrupt image, an unknown name, a value out of
range) is an :class:`AdvsrError` subclass whose message is one self-contained line. The CLI
prints that line to stderr and exits with status 2; library users catch the class they need.
Programming errors inside advsr are not wrapped: they keep their traceback.
"""

from __future__ import annotations

import warnings

__all__ = [
    "AdvsrError",
    "AdvsrWarning",
    "DatasetError",
    "ImageReadError",
    "InputError",
    "ModelLoadError",
    "NotAStoreError",
    "PluginError",
    "ShapeError",
    "StoreDamagedError",
    "StoreError",
    "StoreReadOnlyError",
    "UnknownNameError",
    "brief",
    "warn",
]


class AdvsrError(Exception):
    """Base class of all user-facing advsr errors (one-line message, CLI exit status 2)."""


class InputError(AdvsrError, ValueError):
    """An argument has a wrong value (negative epsilon, scale 0, unknown option...)."""


class ShapeError(InputError):
    """A tensor does not follow the image contract (dtype, rank, channels, range, size)."""


class UnknownNameError(InputError, KeyError):
    """A name (model, dataset, attack, defense...) is not in its registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ImageReadError(InputError):
    """An image file is missing, not an image, truncated or in an unsupported mode."""


class DatasetError(InputError):
    """A dataset folder is missing, empty or inconsistent (e.g. LR/HR sizes vs scale)."""


class ModelLoadError(AdvsrError):
    """A weight file cannot be loaded safely or does not match the architecture."""


class PluginError(AdvsrError):
    """A plugin (a package in the ``advsr.plugins`` entry-point group) failed to load or to
    register; the message names the plugin and its distribution."""


class StoreError(AdvsrError):
    """The result store cannot be opened or holds inconsistent data."""


class NotAStoreError(StoreError):
    """The store path is not an advsr result store (a folder, a file that is not SQLite, a
    database of another program); advsr never writes to it."""


class StoreDamagedError(StoreError):
    """The result store is damaged (a malformed page, a stored value that does not parse, a
    table missing); advsr repairs nothing."""


class StoreReadOnlyError(StoreError):
    """The result store is read-only (file, folder or mount) and a command must write it."""


def brief(text: object, limit: int = 160) -> str:
    r"""The first line of a message, cut at a word boundary to at most ``limit`` characters
    (with ``...`` when cut), for one-line errors that quote another library.

    Example:
        >>> brief("first line of a long message\nsecond", limit=14)
        'first line...'
    """
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    if len(line) <= limit:
        return line
    cut = line[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "..."


class AdvsrWarning(UserWarning):
    """A run that is legal but almost certainly a mistake (random weights, an option with no
    effect, a model far from its data). The CLI prints it as one line on stderr."""


def warn(message: str) -> None:
    """Issue an :class:`AdvsrWarning` (one line)."""
    warnings.warn(AdvsrWarning(message), stacklevel=3)
