"""A small typed registry: explicit registration, lookup with a "did you mean" hint."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from advsr.errors import InputError, UnknownNameError

T = TypeVar("T")

__all__ = ["Registry", "import_entries"]


class Registry(Generic[T]):
    """Maps names to objects (factories, dataset builders...) of one kind.

    Args:
        kind: what the entries are, used in error messages (``"dataset"``, ``"SR model"``).

    Example:
        >>> reg: Registry[int] = Registry("number")
        >>> reg.register("one", 1)
        1
        >>> reg.get("one")
        1
        >>> reg.get("oen")
        Traceback (most recent call last):
        ...
        advsr.errors.UnknownNameError: unknown number 'oen' (did you mean 'one'?); known: one
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, obj: T, help: str = "") -> T:
        """Add ``obj`` under ``name`` (lower-case, unique) and return it."""
        key = name.lower()
        if key in self._entries:
            raise InputError(f"{self.kind} {name!r} is already registered")
        self._entries[key] = obj
        self._help[key] = help
        return obj

    def decorator(self, name: str, help: str = "") -> Callable[[T], T]:
        """Decorator form of :meth:`register`."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, help)

        return wrap

    def get(self, name: str) -> T:
        """Return the entry called ``name`` (case-insensitive).

        Raises:
            UnknownNameError: with the closest known names.
        """
        key = name.lower()
        if key in self._entries:
            return self._entries[key]
        close = difflib.get_close_matches(key, list(self._entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}; known: {known}")

    def help(self, name: str) -> str:
        """One-line description given at registration."""
        self.get(name)
        return self._help[name.lower()]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def import_entries(package: str, modules: Sequence[str]) -> None:
    """Import a package's entry modules (each registers its own entries) from its one list.

    A package's ``__init__`` names the modules that register entries in a tuple
    ``ENTRY_MODULES`` and calls this; ``tests/test_structure.py`` fails when a module that
    registers an entry is missing from the list.

    Args:
        package: the package's dotted name (``__name__`` in its ``__init__``).
        modules: module names relative to the package (``"jpeg"``, ``"sr.edsr"``).
    """
    for name in modules:
        importlib.import_module(f"{package}.{name}")
