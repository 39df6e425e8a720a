"""The one attack contract: one registry, one call shape, one result type, one base.

Every attack - fixed-budget gradient attacks on classifiers, minimal-perturbation attacks,
SSIM-constrained perceptual attacks and SR attacks - is an :class:`AttackEntry` in
:data:`ATTACKS`. An entry declares its ``kind``, its ``domain`` (``classifier`` or ``sr``),
what its budget measures (``norm``: ``linf``, ``l2``, ``ssim`` or ``none``), the pydantic
model of the settings that change its result, and whether it is stochastic.

Budgets mean one thing everywhere: ``eps`` (the number after ``@``) is the **total** budget
(the L-inf or L2 radius, or ``eps2`` of ``S2 >= 1 - eps2^2`` for perceptual attacks);
``step_size`` is the size of one step. (The SR paper calls the total budget alpha.)

:func:`create_attack` builds a configured :class:`Attack` from a name or ``name@budget``;
calling it is the one call shape::

    attack = create_attack("pgd@8/255", steps=20)
    result = attack(model, x, y, generator=torch.Generator().manual_seed(0))

``y`` holds labels (or target labels when ``targeted``) for classifier attacks and HR images
for SR attacks (needed only by the ``ground-truth`` reference). The base
(:meth:`Attack.__call__`, the foolbox 3 idea) checks the inputs, runs the attack's core with
the model in eval mode (every submodule's mode is restored), then **enforces the budget and
the [0, 1] range** on what the core returned, exactly in the returned dtype (a float32
``x_adv`` satisfies ``|x_adv - x| <= eps`` when the difference is computed in float32), and
measures every image: success, L-inf and L2 sizes, solver failures and diagnostics.
A new attack is one file with a core function and one :func:`register_attack` line; the
contract tests (``tests/test_attack_contract.py``) cover it from the registry.

Example:
    >>> import torch
    >>> from advsr.models.classifiers import create_classifier
    >>> clf = create_classifier("digits-cnn")
    >>> x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> res = create_attack("ifgsm@8/255", steps=3)(clf, x, torch.tensor([0, 1, 2, 3]))
    >>> bool((res.linf <= 8 / 255).all()), res.success.shape, res.attack
    (True, torch.Size([4]), 'ifgsm@8/255')
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, final

import torch
from torch import nn

from advsr.attacks.budget import budget_upper, format_budget, parse_budget
from advsr.checks import check_image
from advsr.errors import InputError, ShapeError
from advsr.modes import eval_mode
from advsr.registry import Registry
from advsr.settings import NEUTRAL, Settings, field_role, validate

__all__ = [
    "ALIASES",
    "ATTACKS",
    "Attack",
    "AttackAlias",
    "AttackEntry",
    "AttackResult",
    "AttackSettings",
    "Core",
    "Raw",
    "aliases_of",
    "create_attack",
    "enforce_budget",
    "floor_eps",
    "format_budget",
    "list_attacks",
    "parse_attack",
    "parse_budget",
    "register_alias",
    "register_attack",
    "spec_options",
]

Kind = Literal["gradient", "minimal", "perceptual", "score", "ensemble", "sr"]
Domain = Literal["classifier", "sr"]
BudgetNorm = Literal["linf", "l2", "ssim", "none"]


class AttackSettings(Settings):
    """Base of every attack's settings (frozen, unknown settings refused).

    Subclasses list the settings that change the attack's result; a field annotated with
    :data:`advsr.settings.NEUTRAL` (e.g. a batch size used only for memory) is left out of
    the attack's identity.
    """

    identity_defaults: ClassVar[dict[str, Any]] = {}
    """Settings added after results were stored, with the value that reproduces the older
    behaviour: at that value they are left out of the identity, so stored cells still match."""

    def effective(self) -> dict[str, Any]:
        """The settings that can change the result (identity): neutral ones removed,
        ``kappa`` when the loss is cross-entropy (only the C&W margin uses it), and later
        settings at their old behaviour (:attr:`identity_defaults`)."""
        out = {
            k: v
            for k, v in self.model_dump().items()
            if field_role(type(self), k) != str(NEUTRAL)
            and not (k in self.identity_defaults and v == self.identity_defaults[k])
        }
        if out.get("loss") == "ce":
            out.pop("kappa", None)
        return out


@dataclass(frozen=True)
class Raw:
    """What an attack's core returns to the base.

    Attributes:
        x_adv: the adversarial inputs ``(N, C, H, W)`` before the base's enforcement.
        outputs: extra tensors (``mask_hr``, ``delta``, ``sr_clean`` ...).
        diagnostics: per-image diagnostics (``iterations`` ``(N,)``, ``status`` tuple,
            ``gap`` ``(N,)``) and traces (``losses`` ``(T, N)``).
        failed: ``(N,)`` bool, the core could not attack the image (e.g. a solver error).
        objective: SR attacks: the per-image objective maximised (success = it increased).
    """

    x_adv: torch.Tensor
    outputs: Mapping[str, torch.Tensor] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    failed: torch.Tensor | None = None
    objective: Callable[[torch.Tensor], torch.Tensor] | None = None


Core = Callable[
    [nn.Module, torch.Tensor, "torch.Tensor | None", "float | None", Any, "torch.Generator | None"],
    Raw,
]
"""``core(model, x, y, eps, settings, generator) -> Raw`` (model already in eval mode)."""

Measure = Callable[[torch.Tensor, torch.Tensor, "float | None", Any], dict[str, torch.Tensor]]
"""``measure(x, x_adv, eps, settings) -> outputs``: what the base measures on the returned
examples besides their sizes (e.g. the SSIM factors of perceptual attacks)."""


class AttackResult:
    """The result of every attack.

    Attributes:
        attack: the attack's label (``pgd@8/255``, ``deepfool``).
        x: the clean inputs ``(N, C, H, W)``.
        x_adv: the adversarial inputs, within the budget and ``[0, 1]``.
        linf: ``(N,)`` float64, ``max |x_adv - x|`` per image (difference in ``x``'s dtype).
        l2: ``(N,)`` float64, ``||x_adv - x||_2`` per image.
        failed: ``(N,)`` bool, images the attack could not process (solver errors): their
            ``x_adv`` is the last iterate, and they are never counted silently.
        outputs: SR attacks: ``sr_clean``, ``sr_adv`` (and ``mask_hr``, ``delta``);
            perceptual: ``s1``, ``s2``, ``ssim_global`` against ``x`` and ``within_budget``.
        diagnostics: ``iterations``, ``status``, ``gap``, ``losses`` where the attack has
            them.

    ``success`` (and ``predictions`` of classifier attacks) are measured on ``x_adv`` on first
    access (one forward pass in eval mode), so a caller that needs only the examples does not
    pay for that pass. Classifier success: prediction != label (== target when targeted).
    SR success: the attack's objective (the SR output's deviation from its reference) is
    larger at ``x_adv`` than at ``x``.

    Shape:
        ``x_adv`` ``(N, C, H, W)``; per-image tensors ``(N,)``.
    """

    def __init__(
        self,
        *,
        attack: str,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        judge: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        outputs: Mapping[str, torch.Tensor] | None = None,
        diagnostics: Mapping[str, Any] | None = None,
        failed: torch.Tensor | None = None,
    ) -> None:
        self.attack = attack
        self.x = x
        self.x_adv = x_adv
        self.outputs: dict[str, torch.Tensor] = dict(outputs or {})
        self.diagnostics: dict[str, Any] = dict(diagnostics or {})
        n = x.shape[0]
        self.failed = (
            torch.zeros(n, dtype=torch.bool) if failed is None else failed.detach().cpu().bool()
        )
        d = (x_adv - x).detach().flatten(1)
        self.linf = d.abs().amax(dim=1).double().cpu() if d.shape[1] else torch.zeros(n)
        self.l2 = d.double().norm(dim=1).cpu()
        self._judge = judge
        self._judged: dict[str, torch.Tensor] | None = None

    def _verdict(self) -> dict[str, torch.Tensor]:
        if self._judged is None:
            self._judged = self._judge(self.x_adv)
        return self._judged

    @property
    def success(self) -> torch.Tensor:
        """``(N,)`` bool, per-image success (see the class docstring)."""
        return self._verdict()["success"]

    @property
    def predictions(self) -> torch.Tensor:
        """Classifier attacks: the model's labels for ``x_adv`` ``(N,)``."""
        got = self._verdict().get("predictions")
        if got is None:
            raise InputError(f"{self.attack} is not a classifier attack: it has no predictions")
        return got

    def output(self, name: str) -> torch.Tensor:
        """One of :attr:`outputs` (SR outputs are measured on first access)."""
        if name in self.outputs:
            return self.outputs[name]
        got = self._verdict().get(name)
        if got is None:
            raise InputError(f"{self.attack} has no output {name!r}")
        return got

    @property
    def sr_clean(self) -> torch.Tensor:
        """SR attacks: ``f(x)``."""
        return self.output("sr_clean")

    @property
    def sr_adv(self) -> torch.Tensor:
        """SR attacks: ``f(x_adv)``."""
        return self.output("sr_adv")

    def per_image(self) -> list[dict[str, Any]]:
        """One dict per image: ``success``, ``linf``, ``l2``, ``failed`` and the per-image
        diagnostics and scalar outputs (plain Python values, ready for the result store)."""
        n = self.x.shape[0]
        rows: list[dict[str, Any]] = [
            {
                "success": float(bool(self.success[i])),
                "linf": float(self.linf[i]),
                "l2": float(self.l2[i]),
                "failed": float(bool(self.failed[i])),
            }
            for i in range(n)
        ]
        for key, value in self.diagnostics.items():
            if isinstance(value, tuple) and len(value) == n:
                for i in range(n):
                    if isinstance(value[i], str | int | float):
                        rows[i][key] = value[i]
            elif isinstance(value, torch.Tensor) and value.ndim == 1 and value.shape[0] == n:
                for i, v in enumerate(value.tolist()):
                    rows[i][key] = v
        for key, value in self.outputs.items():
            if value.ndim == 1 and value.shape[0] == n:
                for i, v in enumerate(value.tolist()):
                    rows[i][key] = v
        return rows


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack.

    Attributes:
        name: registry name.
        kind: ``gradient`` (fixed budget, on the step engine), ``minimal`` (smallest
            perturbation, no budget), ``perceptual`` (SSIM budget) or ``sr``.
        domain: ``classifier`` (labels) or ``sr`` (SR models).
        norm: what the budget measures: ``linf``, ``l2``, ``ssim`` (``eps2``) or ``none``.
        settings: pydantic model of its settings (defaults = the paper's).
        core: the attack itself (see :data:`Core`).
        description: one line for listings.
        stochastic: whether results depend on the generator (a bool, or a function of the
            settings, e.g. SR attacks with a random start).
        reference: the paper or code it follows.
        measure: extra per-image measurements of the returned examples (see :data:`Measure`).
    """

    name: str
    kind: Kind
    domain: Domain
    norm: BudgetNorm
    settings: type[AttackSettings]
    core: Core
    description: str
    stochastic: bool | Callable[[Any], bool] = False
    reference: str = ""
    measure: Measure | None = None

    def is_stochastic(self, settings: AttackSettings) -> bool:
        """Whether this configuration draws random numbers."""
        s = self.stochastic
        return bool(s(settings) if callable(s) else s)


ATTACKS: Registry[AttackEntry] = Registry("attack", package="advsr.attacks")


def register_attack(
    name: str,
    *,
    kind: Kind,
    domain: Domain,
    norm: BudgetNorm,
    settings: type[AttackSettings],
    core: Core,
    description: str,
    stochastic: bool | Callable[[Any], bool] = False,
    reference: str = "",
    measure: Measure | None = None,
) -> AttackEntry:
    """Add an attack to :data:`ATTACKS` (one line per attack in its module)."""
    entry = AttackEntry(
        name, kind, domain, norm, settings, core, description, stochastic, reference, measure
    )
    return ATTACKS.register(name, entry, description)


def _text(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


@dataclass(frozen=True)
class AttackAlias:
    """Another name of a registered attack, as another tool spells it (AutoAttack's
    ``apgd-ce``, torchattacks' ``MIFGSM``), with the settings that name implies."""

    name: str
    target: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


ALIASES: dict[str, AttackAlias] = {}
"""Alias (lower-case) -> :class:`AttackAlias`; names are case-insensitive everywhere."""


def register_alias(name: str, target: str, *, source: str = "", **settings: Any) -> AttackAlias:
    """Let ``name`` (any case) stand for ``target`` with ``settings`` (one line per alias,
    beside the attack). An alias names the same cell as the target written in full.

    Raises:
        InputError: the name is already an attack or an alias.
    """
    key = name.lower()
    if key in ALIASES or ATTACKS.registered(key):
        raise InputError(f"attack alias {name!r} is already a name")
    alias = AttackAlias(key, target.lower(), dict(settings), source)
    ALIASES[key] = alias
    return alias


def _head_name(spec: str) -> str:
    return spec.strip().partition(":")[0].partition("@")[0].strip().lower()


def aliases_of(name: str) -> list[str]:
    """The aliases of an attack, sorted (with their implied settings, ``apgd-dlr (loss=dlr)``)."""
    ATTACKS.names()  # every entry module (and its aliases) imported
    out = []
    for a in sorted(ALIASES.values(), key=lambda a: a.name):
        if a.target == name:
            implied = ",".join(f"{k}={_text(v)}" for k, v in a.settings.items())
            out.append(a.name + (f" ({implied})" if implied else ""))
    return out


def spec_options(spec: str) -> dict[str, Any]:
    """The settings written after ``:`` in ``name[@budget]:key=value,key=value`` (values read
    as JSON where they parse, else as text).

    Raises:
        InputError: an item without ``=``, or a key given twice.

    An alias's implied settings come first (``apgd-dlr`` is ``apgd`` with ``loss=dlr``);
    writing one of them again is refused.

    Example:
        >>> spec_options("pgd@8/255:steps=100,restarts=5,loss=cw")
        {'steps': 100, 'restarts': 5, 'loss': 'cw'}
        >>> spec_options("APGD-DLR@8/255")
        {'loss': 'dlr'}
    """
    _, colon, text = spec.strip().partition(":")
    alias = ALIASES.get(_head_name(spec))
    implied = dict(alias.settings) if alias is not None else {}
    out: dict[str, Any] = dict(implied)
    if not colon:
        return out
    for item in text.split(","):
        k, eq, v = (p.strip() for p in item.partition("="))
        if not eq or not k:
            raise InputError(f"attack settings are key=value items, got {item!r} in {spec!r}")
        if k in implied:
            raise InputError(
                f"{spec!r}: {alias.name if alias else ''} already means {k}={_text(implied[k])}"
                f"; write {alias.target if alias else ''}:{k}=... instead"
            )
        if k in out:
            raise InputError(f"{spec!r} gives {k!r} twice")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def parse_attack(spec: str) -> tuple[AttackEntry, float | None]:
    """``name``, ``name@budget`` or either with ``:key=value,...`` settings -> the entry and
    the budget (None when absent); :func:`spec_options` reads the settings.

    Raises:
        UnknownNameError: unknown attack (with the closest names).
        InputError: a budget on an attack that takes none, or an unparsable budget.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"an attack name is required, got {spec!r}")
    head, _, _ = spec.strip().partition(":")
    name, at, text = head.partition("@")
    key = name.strip().lower()
    known = key in ATTACKS  # imports the entry modules (and plugins): their aliases too
    alias = ALIASES.get(key)
    entry = ATTACKS.get(alias.target if alias is not None and not known else key)
    if not at:
        return entry, None
    if entry.norm == "none":
        raise InputError(f"{entry.name} takes no budget ({spec!r}): it finds the smallest one")
    what = f"budget {'eps2' if entry.norm == 'ssim' else 'eps'} of {entry.name}"
    return entry, parse_budget(text, budget_upper(entry.norm), what)


# ------------------------------------------------------------------------------ the base


def floor_eps(eps: float, dtype: torch.dtype) -> torch.Tensor:
    """The largest value of ``dtype`` that does not exceed ``eps``."""
    e = torch.tensor(eps, dtype=dtype)
    if float(e) > eps:
        e = torch.nextafter(e, torch.zeros((), dtype=dtype))
    return e


def enforce_budget(
    x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float | None
) -> torch.Tensor:
    """Project onto the budget ball around ``x`` and ``[0, 1]``, exactly in ``x``'s dtype.

    L-inf: ``|x_adv - x| <= eps`` holds for the difference computed in ``x``'s dtype (values
    that rounding puts one unit past the bound are moved one unit back towards ``x``). L2:
    the per-image norm (in float64 of that difference) is at most ``eps``. ``ssim`` and
    ``none`` budgets are not projections: only the range is enforced (the perceptual
    attacks' S2 is reported against ``x`` instead).

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C, H, W)``.
    """
    out = x_adv.detach().to(x.dtype).clamp(0.0, 1.0)
    if eps is None or norm not in ("linf", "l2"):
        return out
    x = x.detach()
    if norm == "linf":
        e = floor_eps(eps, x.dtype).to(x.device)
        out = torch.minimum(torch.maximum(out, x - e), x + e).clamp(0.0, 1.0)
        for _ in range(4):
            over = (out - x).abs() > e
            if not bool(over.any()):
                break
            out = torch.where(over, torch.nextafter(out, x), out)
        return out
    for _ in range(8):
        d = out - x
        n = d.double().flatten(1).norm(dim=1)
        over = n > eps
        if not bool(over.any()):
            break
        factor = torch.where(over, eps / n.clamp_min(1e-300) * (1 - 1e-6), torch.ones_like(n))
        out = (x + d * factor.to(d.dtype).view(-1, *([1] * (d.ndim - 1)))).clamp(0.0, 1.0)
    return out


def _check_labels(x: torch.Tensor, y: object) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ShapeError(f"labels must have shape ({x.shape[0]},), got {shape}")
    if y.dtype in (torch.bool,) or y.is_floating_point():
        raise ShapeError(f"labels must be integers, got dtype {y.dtype}")
    return y


def _classifier_judge(
    model: nn.Module, y: torch.Tensor, targeted: bool
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    def judge(x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), eval_mode(model):
            pred = model(x_adv).argmax(dim=1)
        yy = y.to(pred.device)
        return {"predictions": pred, "success": (pred == yy) if targeted else (pred != yy)}

    return judge


def _chunked(model: nn.Module, x: torch.Tensor, size: int = 8) -> torch.Tensor:
    return torch.cat([model(x[i : i + size]) for i in range(0, x.shape[0], size)])


def _sr_judge(
    model: nn.Module, x: torch.Tensor, raw: Raw
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    def judge(x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), eval_mode(model):
            clean = raw.outputs.get("sr_clean")
            out = {
                "sr_clean": _chunked(model, x) if clean is None else clean,
                "sr_adv": _chunked(model, x_adv),
            }
            if raw.objective is not None:
                out["success"] = (raw.objective(x_adv) > raw.objective(x)).cpu()
            else:
                out["success"] = (out["sr_adv"] != out["sr_clean"]).flatten(1).any(1).cpu()
        return out

    return judge


class Attack:
    """A configured attack: a registry entry, its budget and its validated settings.

    Build it with :func:`create_attack`; call it as ``attack(model, x, y, generator=g)``.

    Attributes:
        entry: the registry entry.
        eps: the total budget (None for minimal attacks).
        settings: the validated settings.
    """

    def __init__(self, entry: AttackEntry, eps: float | None, settings: AttackSettings) -> None:
        self.entry = entry
        self.eps = eps
        self.settings = settings
        self.written: dict[str, Any] = {}
        """Settings written in the spec after ``:`` (shown in the label)."""

    @property
    def name(self) -> str:
        """The registry name."""
        return self.entry.name

    @property
    def label(self) -> str:
        """``name@budget`` as people write it (``pgd@8/255``; ``deepfool``), with the settings
        written in the spec (``pgd@8/255:steps=100``)."""
        head = self.entry.name
        if self.eps is not None:
            head += f"@{format_budget(self.eps, self.entry.norm)}"
        if self.written:
            from advsr.files import value_label
            from advsr.settings import file_roles

            roles = file_roles(type(self.settings))
            head += ":" + ",".join(
                f"{k}={_text(value_label(roles.get(k), v))}" for k, v in self.written.items()
            )
        return head

    @property
    def stochastic(self) -> bool:
        """Whether the result depends on the generator."""
        return self.entry.is_stochastic(self.settings)

    def identity(self) -> dict[str, Any]:
        """What determines the result: name, budget, the effective settings (a setting
        declared as a file by the content hash of the file it names)."""
        from advsr.files import value_identity
        from advsr.settings import file_roles

        roles = file_roles(type(self.settings))
        effective = self.settings.effective()
        settings = {k: value_identity(roles.get(k), v) for k, v in effective.items()}
        return {"name": self.entry.name, "eps": self.eps, "settings": settings}

    def files(self) -> list[dict[str, Any]]:
        """The provenance entries (path, size, sha256) of the files its settings name."""
        from advsr.files import file_entry
        from advsr.settings import file_roles

        roles = file_roles(type(self.settings))
        values = self.settings.model_dump()
        entries = (file_entry(f"attack.{k}", r, values.get(k)) for k, r in roles.items())
        return [e for e in entries if e is not None]

    def __repr__(self) -> str:
        return f"Attack({self.label}, {self.settings.model_dump()})"

    @final
    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> AttackResult:
        """Run the attack (see the module docstring).

        Args:
            model: a classifier (logits) or an SR model, per the entry's domain.
            x: clean inputs in ``[0, 1]`` (not modified).
            y: labels / target labels (classifier attacks, required) or HR images (SR
                attacks, optional).
            generator: the only source of randomness (stochastic attacks).

        Raises:
            ShapeError: inputs or labels of the wrong shape or range.
            InputError: settings that do not fit these inputs.
        """
        check_image(x, "x", check_range=True)
        targeted = bool(getattr(self.settings, "targeted", False))
        if self.entry.domain == "classifier":
            y = _check_labels(x, y)
        elif y is not None and (not isinstance(y, torch.Tensor) or y.shape[0] != x.shape[0]):
            raise ShapeError("y of an SR attack must be HR images with one per input")
        x = x.detach()
        with eval_mode(model):
            raw = self.entry.core(model, x, y, self.eps, self.settings, generator)
            x_adv = enforce_budget(raw.x_adv, x, self.entry.norm, self.eps)
            outputs = dict(raw.outputs)
            if self.entry.measure is not None:
                outputs.update(self.entry.measure(x, x_adv, self.eps, self.settings))
            if self.entry.domain == "classifier":
                assert y is not None
                judge = _classifier_judge(model, y, targeted)
            else:
                judge = _sr_judge(model, x, raw)
            result = AttackResult(
                attack=self.label,
                x=x,
                x_adv=x_adv,
                judge=judge,
                outputs=outputs,
                diagnostics=raw.diagnostics,
                failed=raw.failed,
            )
            if self.entry.domain == "sr":
                result.success  # noqa: B018 - SR outputs are measured now, in eval mode
        return result


def create_attack(spec: str, *, eps: float | str | None = None, **settings: Any) -> Attack:
    """Build a configured attack from ``name`` or ``name@budget`` and its settings.

    Args:
        spec: registry name, optionally with ``@budget`` (``pgd@8/255``, ``fpgap@0.05``).
        eps: the budget, when not given after ``@`` (a number or ``"8/255"``).
        settings: the attack's settings (see ``advsr list attacks``); unknown ones are
            refused with the closest known name.

    Raises:
        UnknownNameError: unknown attack.
        InputError: a missing, extra or out-of-range budget; bad settings.

    Example:
        >>> create_attack("deepfool", overshoot=0.05).label
        'deepfool'
        >>> create_attack("pgd", eps="4/255").label
        'pgd@4/255'
    """
    entry, at_budget = parse_attack(spec)
    given = spec_options(spec)
    settings = {**settings, **given}  # the attack's own settings win over common ones
    what = f"budget {'eps2' if entry.norm == 'ssim' else 'eps'} of {entry.name}"
    if eps is not None and entry.norm == "none":
        raise InputError(f"{entry.name} takes no budget: it finds the smallest perturbation")
    budget = at_budget
    if eps is not None:
        value = parse_budget(eps, budget_upper(entry.norm), what)
        if at_budget is not None and not math.isclose(value, at_budget, rel_tol=1e-9):
            raise InputError(f"{spec!r} already gives a budget; do not also pass eps={eps!r}")
        budget = value
    if entry.norm != "none" and budget is None:
        raise InputError(f"{entry.name} needs a budget: write {entry.name}@EPS (e.g. 8/255)")
    if entry.norm == "ssim" and budget is not None and not 0.0 < budget < 1.0:
        raise InputError(f"the {what} must be in (0, 1), got {budget}")
    attack = Attack(entry, budget, validate(entry.settings, settings, f"{entry.name} setting"))
    alias = ALIASES.get(_head_name(spec))
    implied = alias.settings if alias is not None else {}
    fields = entry.settings.model_fields
    values = attack.settings.model_dump()
    attack.written = {  # an alias's setting at its default is no setting (apgd-ce is apgd)
        k: values[k]
        for k in given
        if not (k in implied and values[k] == fields[k].get_default(call_default_factory=True))
    }
    return attack


def list_attacks() -> list[dict[str, Any]]:
    """Every registered attack with its kind, domain, budget norm, settings and defaults."""
    rows = []
    for name in ATTACKS.names():
        e = ATTACKS.get(name)
        defaults = {
            k: f.get_default(call_default_factory=True) for k, f in e.settings.model_fields.items()
        }
        rows.append(
            {
                "name": name,
                "kind": e.kind,
                "domain": e.domain,
                "budget": e.norm,
                "stochastic": e.stochastic if isinstance(e.stochastic, bool) else "by settings",
                "settings": defaults,
                "description": e.description,
                "reference": e.reference,
                "aliases": aliases_of(name),
            }
        )
    return rows
