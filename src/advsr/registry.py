"""One small typed registry for every kind of entry, with plugins.

Every registry (attacks, defenses, SR models, classifiers, experiments, ...) is a
:class:`Registry`. Entries register in their own module, beside their code; a package names
the modules that register entries in one tuple ``ENTRY_MODULES`` and imports them with
:func:`import_entries`. A registry made with ``package=`` imports that package the first
time it is read, so a lookup never depends on who imported what before.

**Plugins**: a third-party distribution adds entries through the entry-point group
``advsr.plugins``; each entry point names a module (importing it registers its entries) or
a callable (called once, with no arguments). Plugins load lazily: the first time a lookup
misses, or a listing is asked for, every plugin of the group is loaded once per process.
An error while loading one is an :class:`~advsr.errors.PluginError` naming the plugin::

    # a plugin's pyproject.toml
    [project.entry-points."advsr.plugins"]
    my_defense = "my_package.advsr_plugin"
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from advsr.errors import AdvsrError, InputError, PluginError, UnknownNameError

T = TypeVar("T")

__all__ = ["PLUGIN_GROUP", "Registry", "import_entries", "load_plugins", "loaded_plugins"]

PLUGIN_GROUP = "advsr.plugins"
"""The entry-point group third-party packages register through."""

_PLUGINS: dict[str, str] | None = None  # name -> distribution, once loaded


def load_plugins() -> dict[str, str]:
    """Load every plugin of :data:`PLUGIN_GROUP` once per process.

    Returns:
        The plugins loaded: entry-point name -> distribution name.

    Raises:
        PluginError: a plugin failed to import or to register (its name and distribution
            in the message).
    """
    global _PLUGINS
    if _PLUGINS is not None:
        return _PLUGINS
    from importlib.metadata import entry_points

    _PLUGINS = {}
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        where = f"advsr plugin {ep.name!r} ({dist}, {ep.value})"
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except AdvsrError as e:
            raise PluginError(f"{where}: {e}") from e
        except Exception as e:  # a plugin's own bug: named, never a bare traceback
            raise PluginError(f"{where} failed to load: {type(e).__name__}: {e}") from e
        _PLUGINS[ep.name] = dist
    return _PLUGINS


def loaded_plugins() -> dict[str, str]:
    """The plugins loaded so far (name -> distribution), without loading any."""
    return dict(_PLUGINS or {})


class Registry(Generic[T]):
    """Maps names to objects (factories, dataset builders...) of one kind.

    Args:
        kind: what the entries are, used in error messages (``"dataset"``, ``"SR model"``).
        package: the package whose import registers the entries (imported the first time
            the registry is read); None when the registry's own module is that package's.

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

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def _load(self, plugins: bool) -> None:
        if self.package is not None:
            importlib.import_module(self.package)
        if plugins:
            load_plugins()

    def register(self, name: str, obj: T, help: str = "") -> T:
        """Add ``obj`` under ``name`` (lower-case, unique) and return it."""
        key = name.lower()
        if key in self._entries:
            raise InputError(f"{self.kind} {name!r} is already registered")
        self._entries[key] = obj
        self._help[key] = help
        return obj

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered now (nothing is imported or loaded to find it)."""
        return name.lower() in self._entries

    def decorator(self, name: str, help: str = "") -> Callable[[T], T]:
        """Decorator form of :meth:`register`."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, help)

        return wrap

    def _find(self, name: str) -> str | None:
        key = name.lower()
        for plugins in (False, True):
            if key in self._entries:
                return key
            self._load(plugins)
        return key if key in self._entries else None

    def get(self, name: str) -> T:
        """Return the entry called ``name`` (case-insensitive; plugins are loaded when the
        built-in entries do not have it).

        Raises:
            UnknownNameError: with the closest known names.
        """
        key = self._find(name)
        if key is not None:
            return self._entries[key]
        close = difflib.get_close_matches(name.lower(), list(self._entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}; known: {known}")

    def help(self, name: str) -> str:
        """One-line description given at registration."""
        self.get(name)
        return self._help[name.lower()]

    def names(self) -> list[str]:
        """Registered names (plugins' included), sorted."""
        self._load(True)
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


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
