"""Griffe extension for the advsr API reference (``extensions:`` in mkdocs.yml).

advsr's docstrings are Google style with a few Sphinx habits. Rather than rewrite hundreds
of docstrings that other work is editing, this extension adapts their text for rendering
(the source is not touched):

* ``:class:`Name``` and the other Python roles become links to the object's entry in the
  reference where the name resolves, and inline code otherwise (``~`` shows the last
  component only, as Sphinx does). The links are *optional* autorefs: a name that has no
  entry on the site renders as plain code instead of failing the strict build.
* ``Example:`` (what the package writes) becomes ``Examples:``, the section title Griffe's
  Google parser knows, so that ``>>>`` lines render as code and not as Markdown quotes.
* A reST literal marker ``text::`` at the end of a line becomes ``text:``.
* A package's re-exports of its own public submodules' names (``advsr.attacks`` exports
  ``create_attack`` from ``advsr.attacks.base``) are documented once, where they are
  defined: the package page shows its submodules, so the re-export would repeat them.
  Names re-exported from private modules (``advsr.attacks._loop``) stay on the package.

``Shape:`` sections need nothing: Griffe renders an unknown section title as an
admonition of that kind, and ``docs/css/advsr.css`` styles ``shape`` admonitions.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|mod|func|data|meth|attr|exc|obj|const):`(~?)([^`<>]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)


def _module_of(obj: griffe.Object) -> griffe.Module:
    while not isinstance(obj, griffe.Module):
        assert obj.parent is not None
        obj = obj.parent
    return obj


def _target(obj: griffe.Object, name: str, loader: griffe.GriffeLoader) -> str | None:
    """The full path ``name`` refers to from ``obj``'s scope, or None."""
    if name.startswith("."):
        mod = _module_of(obj)
        base = mod if mod.is_package else mod.parent
        levels = len(name) - len(name.lstrip("."))
        for _ in range(levels - 1):
            base = base.parent if base is not None else None
        if base is None:
            return None
        path = f"{base.path}.{name.lstrip('.')}"
    elif name.split(".")[0] in loader.modules_collection.members:
        path = name
    else:
        first, _, rest = name.partition(".")
        try:
            path = obj.resolve(first)
        except griffe.NameResolutionError:
            try:
                path = _module_of(obj).resolve(first)
            except griffe.NameResolutionError:
                return None
        if rest:
            path = f"{path}.{rest}"
    try:
        found = loader.modules_collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    try:
        return str(found.final_target.path if found.is_alias else found.path)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _own_public_reexport(module: griffe.Module, member: griffe.Alias) -> bool:
    target = member.target_path
    if not target.startswith(module.path + "."):
        return False
    inner = target[len(module.path) + 1 :].split(".")[:-1]  # the submodules on the way
    return bool(inner) and not any(part.startswith("_") for part in inner)


def _objects(obj: griffe.Object):  # type: ignore[no-untyped-def]
    """``obj`` and every object defined in it (aliases are documented where they point)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _rewrite(obj: griffe.Object, loader: griffe.GriffeLoader) -> None:
    doc = obj.docstring
    if doc is None:
        return

    def link(m: re.Match[str]) -> str:
        tilde, name = m.group(1), m.group(2).strip()
        shown = name.lstrip(".").rsplit(".", 1)[-1] if tilde else name.lstrip(".")
        code = f"<code>{html.escape(shown)}</code>"
        path = _target(obj, name, loader)
        if path is None:
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    text = _ROLE.sub(link, doc.value)
    text = _EXAMPLE.sub(r"\1Examples:", text)
    doc.value = _LITERAL.sub(r"\1:", text)


class AdvsrDocstrings(griffe.Extension):
    """Rewrites each docstring's Sphinx roles, ``Example:`` titles and ``::`` markers, and
    documents each re-exported name once (once the whole package is loaded, so that every
    name resolves)."""

    def _package(self, pkg: griffe.Module, loader: griffe.GriffeLoader) -> None:
        for obj in _objects(pkg):
            _rewrite(obj, loader)  # idempotent: a second call finds nothing to change
            if isinstance(obj, griffe.Module):
                for member in obj.members.values():
                    if member.is_alias and _own_public_reexport(obj, member):
                        member.public = False

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self._package(pkg, loader)  # newer Griffe

    def on_package_loaded(
        self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any
    ) -> None:
        self._package(pkg, loader)  # older Griffe
