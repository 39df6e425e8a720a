"""Classifier commands: ``attack-clf``, ``defend``, ``perceptual``, ``explain``, ``manifold``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advsr.cli.app import app
from advsr.cli.derive import OUTPUT, config_command, extra_option
from advsr.cli.output import default_note, run_and_show
from advsr.experiments.attack_clf import AttackClfConfig
from advsr.experiments.defend import DefendConfig
from advsr.experiments.explain import ExplainConfig
from advsr.experiments.manifold import ManifoldConfig
from advsr.experiments.perceptual_cmp import PerceptualConfig

ATTACKS = extra_option(
    "attack",
    list[str] | None,
    None,
    "--attack",
    help="Attack, or attack@budget such as fgsm@2/255 (repeatable; `advsr list attacks`).",
)
EPS = extra_option(
    "eps",
    list[str] | None,
    None,
    "--eps",
    help="Budget of attacks named without @, e.g. 8/255 (repeatable; default 8/255).",
)


@app.command("attack-clf")
@config_command(AttackClfConfig, skip=("attack", "eps"), extra=(ATTACKS, EPS, *OUTPUT))
def attack_clf_cmd(
    settings: dict[str, Any],
    *,
    attack: list[str] | None,
    eps: list[str] | None,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Attack a classifier: clean/robust accuracy, fooling rate, failures, perturbation sizes."""
    from advsr.engine.attack_cells import attack_grid, check_budgets_used

    said = (
        []
        if attack
        else [default_note("--attack", "pgd" if eps else "pgd@8/255", "attacking with")]
    )
    check_budgets_used(attack or ["pgd"], eps)
    grid = attack_grid(attack or ["pgd"], eps or ["8/255"])
    cells = [("attack-clf", {**settings, "attack": a, "eps": e}) for a, e in grid]
    run_and_show(
        "attack-clf", cells, store=store, json_=json_, report=report, defaults=said, backend=backend
    )


DEFENSES = extra_option(
    "defense",
    list[str] | None,
    None,
    "--defense",
    help="Defense spec, e.g. median:size=3x3 (repeatable; `advsr list defenses`).",
)
MODES = extra_option(
    "mode", list[str] | None, None, "--mode", help="non-adaptive and/or adaptive (repeatable)."
)


@app.command()
@config_command(
    DefendConfig,
    skip=("attack", "eps", "defense", "mode"),
    extra=(ATTACKS, EPS, DEFENSES, MODES, *OUTPUT),
)
def defend(
    settings: dict[str, Any],
    *,
    attack: list[str] | None,
    eps: list[str] | None,
    defense: list[str] | None,
    mode: list[str] | None,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Evaluate defenses: accuracy under attacks, non-adaptive and adaptive (BPDA + EOT)."""
    from advsr.engine.attack_cells import attack_grid, check_budgets_used
    from advsr.errors import InputError

    said = (
        []
        if attack
        else [default_note("--attack", "fgsm" if eps else "fgsm@8/255", "attacking with")]
    )
    if not defense:
        said.append(default_note("--defense", "the bare classifier", "measuring only"))
    named = [a for a in attack or [] if a.strip().lower() != "none"]  # none: the clean row
    if attack and not named:  # --attack none alone: clean accuracy only, as specs allow
        if eps:
            raise InputError(f"--eps {', '.join(eps)} applies to no attack: --attack is none")
        attacks: list[tuple[str, float | None]] = [("none", None)]
    else:
        check_budgets_used(named or ["fgsm"], eps)
        attacks = [("none", None), *attack_grid(named or ["fgsm"], eps or ["8/255"])]
    specs = ["none", *(d for d in defense or [] if d != "none")]
    cells = [
        ("defend", {**settings, "attack": a, "eps": e, "defense": d, "mode": m})
        for m in mode or ["non-adaptive"]
        for d in specs
        for a, e in attacks
    ]
    run_and_show(
        "defend", cells, store=store, json_=json_, report=report, defaults=said, backend=backend
    )


SWEEP = extra_option(
    "sweep",
    list[str] | None,
    None,
    "--sweep",
    help="METHOD=v1,v2,... (repeatable; default: FGSM, FGM-L2, PGD, PGD-L2, FPGAP, PGAP).",
)
PGAP_LIMIT = extra_option(
    "pgap_limit", int, 50, "--pgap-limit", help="Images for PGAP (cvxpy is slow)."
)


@app.command()
@config_command(PerceptualConfig, skip=("attack", "eps"), extra=(SWEEP, PGAP_LIMIT, *OUTPUT))
def perceptual(
    settings: dict[str, Any],
    *,
    sweep: list[str] | None,
    pgap_limit: int,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Fooling rate at a common image quality (PGAP paper Tables II and III)."""
    from advsr.errors import InputError
    from advsr.experiments.perceptual_cmp import DEFAULT_SWEEPS, sweep_cells

    sweeps: dict[str, Sequence[float | str]] = {}  # budget text: the config parses it
    for item in sweep or []:
        name, eq, values = item.partition("=")
        if not eq or not values:
            raise InputError(f"--sweep expects METHOD=v1,v2,..., got {item!r}")
        sweeps[name] = [v.strip() for v in values.split(",")]
    if not sweeps:
        sweeps = {k: list(v) for k, v in DEFAULT_SWEEPS.items()}
    cells = sweep_cells(settings, sweeps, {"pgap": pgap_limit})
    run_and_show("perceptual", cells, store=store, json_=json_, report=report, backend=backend)


@app.command()
@config_command(ExplainConfig, budgets=("eps",), extra=OUTPUT)
def explain(
    settings: dict[str, Any],
    *,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """SSIM maps, CAMs and perturbation/saliency overlap (PGAP paper Table I, Fig. 3, 5)."""
    run_and_show(
        "explain", [("explain", settings)], store=store, json_=json_, report=report,
        backend=backend,
        shape=lambda d: {"experiment": "explain", **d["cells"][0], "computed": d["computed"]},
    )  # fmt: skip


@app.command()
@config_command(ManifoldConfig, flags={"attacks": ("--attack",)}, extra=OUTPUT)
def manifold(
    settings: dict[str, Any],
    *,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Manifold check (SR-defense paper 4.1): a clean-vs-adversarial detector on frozen
    features, and how many purified adversarial images it calls clean."""
    run_and_show(
        "manifold", [("manifold", settings)], store=store, json_=json_, report=report,
        backend=backend,
        shape=lambda d: {"experiment": "manifold", **d["cells"][0], "computed": d["computed"]},
    )  # fmt: skip
