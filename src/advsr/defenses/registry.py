"""The defense registry and defense specs (``name`` or ``name:key=value,key=value``).

Every defense registers itself in its own module, beside its class, with
:func:`register_defense`: a pydantic settings model (a :class:`~advsr.settings.Settings`,
the one place its settings, bounds and defaults are declared), a ``build(settings)`` that
constructs it, and the domains it serves - ``classifier`` (an input transformation in front
of a classifier, built by :func:`create_defense`) and/or ``sr`` (a wrapper around an SR
model, applied by :func:`apply_sr_defense`).

A spec names a registered defense and its settings, e.g. ``median:size=3x3``,
``bit-depth:bits=4``, ``tvm:p=0.1``, ``sr:model=edsr,scale=2,denoise=wavelet``. Values are
parsed as ``AxB`` (a pair of ints), ints, floats (``2/255`` allowed), ``true``/``false``,
``none``, else strings; unknown names and keys get one-line errors with suggestions, and
values are validated by the settings model (bounds, choices) and the defense's constructor.

Example:
    >>> d = create_defense("median:size=1x3")
    >>> type(d).__name__, d.differentiable, d.stochastic
    ('MedianSmoothing', True, False)
    >>> canonical_spec("median:size=1x3")
    'median:size=1x3'
    >>> defense_names("sr")
    ['resize-by-one', 'self-ensemble']
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from torch import nn

from advsr.defenses.base import Defense
from advsr.errors import InputError, UnknownNameError
from advsr.registry import Registry
from advsr.settings import Settings, validate
from advsr.spec_grammar import canonical_spec, format_value, parse_spec

__all__ = [
    "DEFENSES",
    "DefenseEntry",
    "DefenseSettings",
    "Domain",
    "NoSettings",
    "apply_sr_defense",
    "canonical_spec",
    "create_defense",
    "defense_files",
    "defense_identity",
    "defense_label",
    "defense_names",
    "format_value",
    "get_defense",
    "parse_spec",
    "register_defense",
]

Domain = Literal["classifier", "sr"]
"""What a defense stands in front of: a classifier (an input transformation) or an SR model
(a wrapper around it)."""
_KIND: dict[str, str] = {"classifier": "defense", "sr": "SR defense"}


class DefenseSettings(Settings):
    """Base of every defense's settings (frozen, unknown settings refused, ``true``/``false``
    refused for numbers); a field's docstring is its description."""


class NoSettings(DefenseSettings):
    """The settings of a defense that has none."""


S = TypeVar("S", bound=DefenseSettings)


def _flag(cls: type[Defense], name: str) -> bool:
    """A class-level flag; one that depends on the settings (a property) is judged at the
    defaults, which keep it differentiable and deterministic."""
    value = getattr(cls, name)
    return name == "differentiable" if isinstance(value, property) else bool(value)


@dataclass(frozen=True)
class DefenseEntry:
    """A registered defense.

    Attributes:
        name: registry name.
        settings: pydantic model of its settings (the defaults live there).
        build: ``build(settings, **context)`` -> the classifier-side :class:`Defense`
            (``context``: keyword arguments it declares, e.g. ``device``).
        description: one line for listings.
        classes: the defense classes ``build`` makes (a chain: every stage), for its flags.
        domains: ``classifier`` and/or ``sr``.
        build_sr: ``build_sr(settings, model)`` -> the SR model behind the defense (entries
            of the ``sr`` domain).
    """

    name: str
    settings: type[DefenseSettings]
    build: Callable[..., Defense]
    description: str
    classes: tuple[type[Defense], ...] = ()
    domains: tuple[Domain, ...] = ("classifier",)
    build_sr: Callable[[Any, nn.Module], nn.Module] | None = None

    @property
    def roles(self) -> dict[str, str]:
        """Its settings declared as files or datasets (name -> role)."""
        from advsr.settings import file_roles

        return file_roles(self.settings)

    def defaults(self) -> dict[str, Any]:
        """Every setting with its default, in declaration order."""
        return {
            k: f.get_default(call_default_factory=True)
            for k, f in self.settings.model_fields.items()
        }

    @property
    def differentiable(self) -> bool:
        """Every stage is differentiable (else the adaptive attack needs BPDA)."""
        return all(_flag(c, "differentiable") for c in self.classes)

    @property
    def stochastic(self) -> bool:
        """Some stage draws random numbers (the adaptive attack needs EOT)."""
        return any(_flag(c, "stochastic") for c in self.classes)

    @property
    def adaptive(self) -> str:
        """What :func:`~advsr.defenses.adaptive.adaptive` does with it."""
        return {
            (True, False): "attack directly",
            (False, False): "BPDA",
            (True, True): "EOT",
            (False, True): "EOT of BPDA",
        }[(self.differentiable, self.stochastic)]


DEFENSES: Registry[DefenseEntry] = Registry("defense")


def register_defense(
    name: str,
    *,
    settings: type[S],
    build: Callable[..., Defense],
    description: str,
    classes: tuple[type[Defense], ...],
    domains: tuple[Domain, ...] = ("classifier",),
    build_sr: Callable[[S, nn.Module], nn.Module] | None = None,
) -> DefenseEntry:
    """Add a defense to :data:`DEFENSES` (one call per defense, in its module).

    Args:
        name: spec name (lower-case, unique).
        settings: its settings model.
        build: ``build(settings, **context)`` -> the :class:`Defense`.
        description: one line for listings.
        classes: the defense classes it builds (every stage of a chain), for its flags.
        domains: ``("classifier",)``, ``("sr",)`` or both.
        build_sr: for the ``sr`` domain, ``build_sr(settings, model)`` -> the defended SR
            model.

    Raises:
        InputError: a name already registered, or ``build_sr`` and ``domains`` disagree.
    """
    if ("sr" in domains) != (build_sr is not None):
        raise InputError(f"defense {name!r}: an entry of the sr domain needs build_sr (only it)")
    if not domains or any(d not in _KIND for d in domains):
        raise InputError(f"defense {name!r}: domains must be classifier and/or sr, got {domains}")
    entry = DefenseEntry(name, settings, build, description, classes, domains, build_sr)
    return DEFENSES.register(name, entry, description)


def defense_names(domain: Domain | None = None) -> list[str]:
    """The registered defenses (of one domain), sorted.

    Example:
        >>> "median" in defense_names("classifier"), "median" in defense_names("sr")
        (True, False)
    """
    return [n for n in DEFENSES.names() if domain is None or domain in DEFENSES.get(n).domains]


def get_defense(name: str, domain: Domain | None = None) -> DefenseEntry:
    """The entry called ``name`` (case-insensitive), of ``domain`` when given.

    Raises:
        UnknownNameError: no such defense (in that domain), with the closest name and the
            known ones (``unknown SR defense 'x' ...; known: resize-by-one, self-ensemble``).
    """
    if domain is None:
        return DEFENSES.get(name)
    if name in DEFENSES and domain in DEFENSES.get(name).domains:
        return DEFENSES.get(name)
    names = defense_names(domain)
    close = difflib.get_close_matches(name.lower(), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownNameError(
        f"unknown {_KIND[domain]} {name!r}{hint}; known: {', '.join(names) or 'none'}"
    )


def _roles(spec: str) -> dict[str, str]:
    return DEFENSES.get(parse_spec(spec)[0]).roles


def defense_identity(spec: str) -> str:
    """The spec as a cell's identity holds it: canonical, with every file or dataset it
    names replaced by its content hash (:func:`advsr.files.spec_identity`)."""
    from advsr.files import spec_identity

    return spec_identity(spec, _roles(spec))


def defense_label(spec: str) -> str:
    """The spec as tables show it: canonical, files by name and short hash, no paths.

    Example:
        >>> defense_label("median:size=3x3")
        'median:size=3x3'
    """
    from advsr.files import spec_label

    return spec_label(spec, _roles(spec))


def defense_files(spec: str) -> list[dict[str, Any]]:
    """The provenance entries (path, size, sha256) of the files and datasets a spec names."""
    from advsr.files import spec_files

    return spec_files(spec, _roles(spec), "defense.")


def create_defense(spec: str, **context: Any) -> Defense:
    """Build a registered (classifier-domain) defense from a spec.

    Args:
        spec: ``name`` or ``name:key=value,...``.
        context: extra keyword arguments passed to builds that declare them (e.g.
            ``device``); a spec may not set them.

    Raises:
        UnknownNameError: unknown defense (with suggestions).
        InputError: unknown setting (with the valid ones) or a value out of range.
    """
    name, values = parse_spec(spec)
    entry = get_defense(name, "classifier")
    fields = list(entry.settings.model_fields)
    for key in values:
        if key not in fields or key in context:
            valid = [p for p in fields if p not in context]
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(
                f"{name} has no setting {key!r}{hint}; settings: {', '.join(valid) or 'none'}"
            )
    settings = validate(entry.settings, values, f"{name} setting")
    params = inspect.signature(entry.build).parameters
    extra = {k: v for k, v in context.items() if k in params}
    return entry.build(settings, **extra)


def apply_sr_defense(name: str, model: nn.Module) -> nn.Module:
    """The SR model behind the SR-side defense ``name`` at its default settings (mode
    copied from ``model``).

    Raises:
        UnknownNameError: not a defense of the ``sr`` domain (the known ones listed).
    """
    entry = get_defense(name, "sr")
    assert entry.build_sr is not None  # register_defense requires it for the sr domain
    return entry.build_sr(entry.settings(), model).train(model.training)
