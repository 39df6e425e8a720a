"""The ``advsr`` command line (Typer + rich). Thin: parse, call the library, print.

Every command prints a human table by default and one JSON document on stdout with
``--json``. A user error prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from advsr.errors import AdvsrError, InputError
from advsr.jsonutil import json_safe

app = typer.Typer(
    name="advsr",
    help="Adversarial robustness of image super-resolution and of the classifiers it defends.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="Result store (SQLite); default $ADVSR_STORE or ./advsr-results.sqlite."
    ),
]


ClfModelOpt = Annotated[str, typer.Option(help="Zoo classifier (e.g. resnet20-cifar10).")]
ClfWeightsOpt = Annotated[Path | None, typer.Option(help="Weights of the classifier.")]
LabelledDataOpt = Annotated[
    str, typer.Option(help="Labelled dataset: digits, digits-test or a class-folder path.")
]
PatternOpt = Annotated[str | None, typer.Option(help="File-name glob (e.g. 'cifar10_*').")]
PerClassOpt = Annotated[int | None, typer.Option(help="First N images of each class.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write an HTML report here.")]


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _open_store(path: Path | None) -> Any:
    from advsr.experiments.store import ResultStore, default_store_path

    return ResultStore(path or default_store_path())


def _parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict (VALUE parsed as JSON when it can be, and
    ``1,2,3`` as a list of numbers)."""
    opts: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{flag} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k] = v
        for text in (v, f"[{v}]") if "," in v else (v,):
            try:
                opts[k] = json.loads(text)
                break
            except json.JSONDecodeError:
                pass
    return opts


@app.command()
def datasets(json_: JsonOpt = False) -> None:
    """List the named datasets (any folder or image path works too)."""
    from advsr.data import DATASETS

    rows = [
        {"name": n, "images": DATASETS.get(n).size, "description": DATASETS.get(n).description}
        for n in DATASETS.names()
    ]
    doc = {
        "datasets": rows,
        "paths": "any folder: HR images, SelfExSR *_HR/*_LR pairs, "
        "or BasicSR HR/ + LR_bicubic/X{s}/",
    }
    if json_:
        _print_json(doc)
        return
    t = RichTable(title="named datasets")
    for c in ("name", "images", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["name"]), str(r["images"]), str(r["description"]))
    console.print(t)
    console.print(f"Paths: {doc['paths']}")


@app.command()
def models(json_: JsonOpt = False) -> None:
    """List the SR models of the zoo with their scales and parameter counts."""
    from advsr.models.sr import list_sr_models

    rows = list_sr_models()
    if json_:
        _print_json({"sr_models": rows})
        return
    t = RichTable(title="SR models")
    for c in ("name", "scales", "params", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["name"],
            ",".join(map(str, r["scales"])),
            f"{r['params']:,}",
            str(r["description"]),
        )
    console.print(t)


def _run_doc(run: Any) -> dict[str, Any]:
    """JSON document of one experiment cell (an ExperimentRun)."""
    cfg = run.config
    doc: dict[str, Any] = {
        "experiment": run.experiment,
        "cell_id": run.cell_id,
        "config": cfg,
    }
    if run.experiment == "eval-sr":
        doc["metric"] = {
            "channel": "y" if cfg["y_channel"] else "rgb",
            "crop_border": cfg["scale"] if cfg["crop_border"] is None else cfg["crop_border"],
            "quantized_8bit": cfg["quantize"],
        }
    doc.update(rows=run.rows, mean=run.mean, computed=run.computed, from_store=run.skipped)
    return doc


def _run_spec(spec: Any, store: Path | None) -> list[dict[str, Any]]:
    from advsr.experiments.run import run_spec

    with _open_store(store) as st:
        return [_run_doc(r) for r in run_spec(spec, st)]


def _eval_title(doc: dict[str, Any]) -> str:
    cfg, m = doc["config"], doc["metric"]
    chan = "Y" if m["channel"] == "y" else "RGB"
    return f"{cfg['model']} x{cfg['scale']} on {cfg['data']} ({chan}, border {m['crop_border']})"


def _eval_table(doc: dict[str, Any], title: str) -> RichTable:
    t = RichTable(title=title)
    for c in ("image", "size", "PSNR (dB)", "SSIM"):
        t.add_column(c, justify="left" if c == "image" else "right")
    for r in doc["rows"]:
        t.add_row(r["image"], f"{r['height']}x{r['width']}", _fmt(r["psnr"], 2), _fmt(r["ssim"], 4))
    m = doc["mean"]
    t.add_section()
    t.add_row("mean", "", _fmt(m.get("psnr"), 2), _fmt(m.get("ssim"), 4))
    return t


@app.command("eval-sr")
def eval_sr_cmd(
    model: Annotated[str, typer.Option(help="SR model name (see `advsr models`).")] = "bicubic",
    data: Annotated[
        str, typer.Option(help="Dataset name or path (see `advsr datasets`).")
    ] = "samples",
    scale: Annotated[int, typer.Option(help="SR factor.")] = 2,
    weights: Annotated[
        Path | None, typer.Option(help="Weight file for models with parameters.")
    ] = None,
    hr_crop: Annotated[
        int | None, typer.Option(help="Centre-crop HR images to N pixels a side.")
    ] = None,
    rgb: Annotated[
        bool, typer.Option("--rgb", help="Measure on RGB instead of the Y channel.")
    ] = False,
    float_output: Annotated[
        bool,
        typer.Option("--float", help="Measure the float SR output (default: rounded to 8 bits)."),
    ] = False,
    crop_border: Annotated[
        int | None, typer.Option(help="Border crop in pixels (default: scale).")
    ] = None,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Fidelity (PSNR/SSIM) of an SR model on a dataset; resumes from the result store."""
    from advsr.experiments.spec import ExperimentSpec

    if scale < 1:
        raise InputError(f"--scale must be a positive integer, got {scale}")
    spec = ExperimentSpec(
        experiment="eval-sr",
        settings={
            "model": model,
            "weights": str(weights) if weights else None,
            "data": data,
            "scale": scale,
            "hr_crop": hr_crop,
            "quantize": not float_output,
            "y_channel": not rgb,
            "crop_border": crop_border,
            "device": device,
        },
    )
    doc = _run_spec(spec, store)[0]
    if json_:
        _print_json(doc)
        return
    console.print(_eval_table(doc, _eval_title(doc)))
    if doc["from_store"]:
        console.print(
            f"{doc['from_store']} image(s) read from the store, {doc['computed']} computed."
        )


def _alpha_label(alpha: float) -> str:
    return f"{alpha * 255:g}/255"


@app.command("attack-sr")
def attack_sr_cmd(
    model: Annotated[str, typer.Option(help="SR model name (see `advsr models`).")] = "bicubic",
    weights: Annotated[Path | None, typer.Option(help="Weight file of the model.")] = None,
    data: Annotated[str, typer.Option(help="Dataset name or path.")] = "samples",
    scale: Annotated[int, typer.Option(help="SR factor.")] = 4,
    attack: Annotated[str, typer.Option(help="basic, partial or universal.")] = "basic",
    alpha: Annotated[
        list[str] | None, typer.Option(help="Total L-inf budget, e.g. 8/255 (repeatable).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Iterations T (step alpha/T).")] = 50,
    reference: Annotated[
        str, typer.Option(help="clean (needs --random-start), clean-8bit or ground-truth.")
    ] = "clean-8bit",
    random_start: Annotated[
        bool, typer.Option("--random-start", help="Start at a random point of the budget.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random start.")] = 0,
    mask: Annotated[
        str | None, typer.Option(help="Partial attack mask: center:F, rect:T,L,H,W or a file.")
    ] = None,
    hr_crop: Annotated[int | None, typer.Option(help="Centre-crop HR images (quick runs).")] = None,
    crop: Annotated[
        int | None, typer.Option(help="Universal attack: LR crop size (default: smallest image).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Universal attack: images per pass.")] = 8,
    save_perturbation: Annotated[
        Path | None, typer.Option(help="Universal attack: write Delta (.safetensors).")
    ] = None,
    defense: Annotated[
        str | None, typer.Option(help="SR-side defense: resize-by-one or self-ensemble.")
    ] = None,
    adaptive: Annotated[
        bool, typer.Option("--adaptive", help="Craft through the defense (default: bare model).")
    ] = False,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Attack an SR model (basic, partial, universal attacks): LR and SR PSNR per alpha."""
    from advsr.experiments.attack_sr import parse_alpha
    from advsr.experiments.spec import ExperimentSpec

    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    alphas = [parse_alpha(a) for a in (alpha or ["8/255"])]
    spec = ExperimentSpec(
        experiment="attack-sr",
        grid={"alpha": alphas},
        settings={
            "model": model,
            "weights": str(weights) if weights else None,
            "data": data,
            "scale": scale,
            "attack": attack,
            "steps": steps,
            "reference": reference,
            "random_start": random_start,
            "seed": seed,
            "mask": mask,
            "hr_crop": hr_crop,
            "crop": crop,
            "batch_size": batch_size,
            "save_perturbation": str(save_perturbation) if save_perturbation else None,
            "defense": defense,
            "adaptive": adaptive,
            "device": device,
        },
    )
    docs = _run_spec(spec, store)
    mean = {
        _alpha_label(d["config"]["alpha"]): {
            k: d["mean"][k] for k in d["mean"] if k.endswith("psnr") or "psnr_" in k
        }
        for d in docs
    }
    if json_:
        _print_json({"experiment": "attack-sr", "mean": mean, "runs": docs})
        return
    cols = ["lr_psnr", "sr_psnr", "sr_psnr_y", "sr_hr_psnr", "sr_psnr_inside", "sr_psnr_outside"]
    cols = [c for c in cols if c in next(iter(mean.values()))]
    behind = f", {'adaptive' if adaptive else 'non-adaptive'} vs {defense}" if defense else ""
    t = RichTable(
        title=f"{attack} attack on {model} x{scale}, {data} (PSNR dB, T={steps}, "
        f"reference {reference}{behind})"
    )
    t.add_column("alpha")
    for c in cols:
        t.add_column(c, justify="right")
    for label, m in mean.items():
        t.add_row(label, *(_fmt(m[c], 2) for c in cols))
    console.print(t)


@app.command()
def transfer(
    model: Annotated[
        list[str], typer.Option(help="Source model (repeatable); also the targets by default.")
    ],
    target: Annotated[
        list[str] | None, typer.Option(help="Target model (repeatable; default: the sources).")
    ] = None,
    weights: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE weights of a model (repeatable).")
    ] = None,
    data: Annotated[str, typer.Option(help="Dataset name or path.")] = "samples",
    scale: Annotated[int, typer.Option(help="SR factor.")] = 4,
    alpha: Annotated[str, typer.Option(help="Total L-inf budget, e.g. 8/255.")] = "8/255",
    steps: Annotated[int, typer.Option(help="Iterations T.")] = 50,
    reference: Annotated[
        str, typer.Option(help="clean-8bit, ground-truth or clean.")
    ] = "clean-8bit",
    random_start: Annotated[bool, typer.Option("--random-start")] = False,
    hr_crop: Annotated[int | None, typer.Option(help="Centre-crop HR images.")] = None,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Transferability: attacks crafted on each source, SR PSNR on every target."""
    doc = _transfer_doc(
        model,
        target or model,
        {k: str(v) for k, v in _parse_options(weights, "--weights").items()},
        data,
        scale,
        alpha,
        steps,
        reference,
        random_start,
        hr_crop,
        device,
        store,
    )
    if json_:
        _print_json(doc)
        return
    console.print(_transfer_table(doc))


def _transfer_doc(
    sources: list[str],
    targets: list[str],
    weights: dict[str, str],
    data: str,
    scale: int,
    alpha: str,
    steps: int,
    reference: str,
    random_start: bool,
    hr_crop: int | None,
    device: str,
    store: Path | None,
) -> dict[str, Any]:
    from advsr.experiments.attack_sr import parse_alpha
    from advsr.experiments.transfer_sr import transfer_matrix, transfer_sr

    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    a = parse_alpha(alpha)
    runs = {}
    with _open_store(store) as st:
        for src in dict.fromkeys(sources):
            cfg = {
                "source": src,
                "targets": list(targets),
                "data": data,
                "scale": scale,
                "alpha": a,
                "steps": steps,
                "reference": reference,
                "random_start": random_start,
                "hr_crop": hr_crop,
                "device": device,
                "weights": {k: v for k, v in weights.items() if k in (src, *targets)},
            }
            runs[src] = transfer_sr(cfg, st)
    return {
        "experiment": "transfer-sr",
        "alpha": _alpha_label(a),
        "sources": list(runs),
        "targets": list(targets),
        "matrix": transfer_matrix(runs, list(targets)),
        "runs": {
            k: {
                "cell_id": r.cell_id,
                "rows": r.rows,
                "mean": r.mean,
                "computed": r.computed,
                "skipped": r.skipped,
            }
            for k, r in runs.items()
        },
    }


def _transfer_table(doc: dict[str, Any]) -> RichTable:
    t = RichTable(
        title=f"transferability: SR PSNR (dB) on the target, alpha {doc['alpha']} "
        "(rows: attacked model, columns: evaluated model)"
    )
    t.add_column("source \\ target", no_wrap=True)
    for tg in doc["targets"]:
        t.add_column(tg.removeprefix("demo-"), justify="right", no_wrap=True)
    for src, row in zip(doc["sources"], doc["matrix"], strict=True):
        t.add_row(src.removeprefix("demo-"), *(_fmt(v, 2) for v in row))
    return t


@app.command("train-classifier")
def train_classifier_cmd(
    out: Annotated[Path, typer.Option(help="Weights to write (.safetensors).")],
    model: ClfModelOpt = "digits-cnn",
    data: Annotated[str, typer.Option(help="Labelled training set.")] = "digits-train",
    val: Annotated[str, typer.Option(help="Labelled validation set.")] = "digits-test",
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 40,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of all randomness.")] = 0,
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
) -> None:
    """Train a zoo classifier with cross-entropy (default: the digits CNN)."""
    from advsr.experiments.spec import validate
    from advsr.models.classifiers.train import TrainClassifierConfig, train_classifier

    cfg = validate(
        TrainClassifierConfig,
        {
            "model": model,
            "out": str(out),
            "data": data,
            "val": val,
            "epochs": epochs,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "device": device,
        },
    )
    res = train_classifier(cfg)
    doc = {"out": str(res.out), "val_accuracy": res.val_accuracy, "seconds": res.seconds}
    if json_:
        _print_json(doc)
        return
    console.print(f"wrote {res.out}; validation accuracy {res.val_accuracy[-1]:.4f}")


@app.command("attack-clf")
def attack_clf_cmd(
    model: Annotated[
        str, typer.Option(help="Zoo classifier (e.g. resnet20-cifar10).")
    ] = "digits-cnn",
    weights: ClfWeightsOpt = None,
    data: Annotated[
        str, typer.Option(help="digits, digits-test or a labelled folder.")
    ] = "digits-test",
    pattern: PatternOpt = None,
    limit: Annotated[int | None, typer.Option(help="First N images only.")] = None,
    per_class: PerClassOpt = None,
    attack: Annotated[list[str] | None, typer.Option(help="Attack name (repeatable).")] = None,
    eps: Annotated[list[str] | None, typer.Option(help="Budget, e.g. 8/255 (repeatable).")] = None,
    steps: Annotated[int, typer.Option(help="Iterations of iterative attacks.")] = 10,
    loss: Annotated[
        str, typer.Option(help="Objective of gradient attacks: ce or cw (C&W margin).")
    ] = "ce",
    kappa: Annotated[
        float, typer.Option(help="Confidence of the C&W margin (--loss cw, cw-l2).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of random starts and diversity.")] = 0,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Attack a classifier: clean/robust accuracy, fooling rate, perturbation sizes."""
    from advsr.attacks.minimal import MINIMAL_ATTACKS
    from advsr.experiments.attack_clf import attack_clf, summarise
    from advsr.experiments.attack_sr import parse_alpha

    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    eps_values = [parse_alpha(e, upper=None) for e in eps or ["8/255"]]  # L2 may exceed 1
    table: list[dict[str, Any]] = []
    with _open_store(store) as st:
        for name in attack or ["pgd"]:
            for e in [None] if name in MINIMAL_ATTACKS else eps_values:
                res = attack_clf(
                    {
                        "model": model,
                        "weights": str(weights) if weights else None,
                        "data": data,
                        "pattern": pattern,
                        "limit": limit,
                        "per_class": per_class,
                        "attack": name,
                        "eps": e,
                        "steps": steps,
                        "loss": loss,
                        "kappa": kappa,
                        "seed": seed,
                        "device": device,
                    },
                    st,
                )
                table.append({"attack": name, "eps": e, **summarise(res.rows)})
    if json_:
        _print_json({"experiment": "attack-clf", "model": model, "data": data, "results": table})
        return
    t = RichTable(title=f"attacks on {model}, {data}")
    cols = [
        "attack",
        "eps",
        "clean_accuracy",
        "robust_accuracy",
        "fooling_rate",
        "l2_median",
        "linf_median",
        "psnr_mean",
    ]
    for c in cols:
        t.add_column(c, justify="left" if c == "attack" else "right")
    for r in table:
        e = r["eps"]
        eps_txt = "-" if e is None else (_alpha_label(e) if float(e) <= 1 else f"{float(e):g}")
        t.add_row(str(r["attack"]), eps_txt, *(_fmt(r.get(c), 4) for c in cols[2:]))
    console.print(t)


@dataclass(frozen=True)
class _AttackCfg:
    """Attack settings for :func:`advsr.experiments.attack_clf.run_clf_attack`."""

    attack: str
    eps: float | None
    steps: int
    loss: str
    kappa: float
    seed: int


def _attack_specs(items: list[str] | None, eps: list[str] | None) -> list[tuple[str, float | None]]:
    """``name`` or ``name@eps`` items; plain names take every ``--eps`` (minimal: none)."""
    from advsr.experiments.attack_clf import check_attack_name
    from advsr.experiments.attack_sr import parse_alpha

    out: list[tuple[str, float | None]] = []
    default_eps = [parse_alpha(e, upper=None) for e in eps or ["8/255"]]
    for item in items or ["fgsm"]:
        name, at, budget = item.partition("@")
        minimal = check_attack_name(name)
        if minimal:
            if at:
                raise InputError(f"{name} takes no budget ({item!r})")
            out.append((name, None))
        elif at:
            out.append((name, parse_alpha(budget, upper=None)))
        else:
            out.extend((name, e) for e in default_eps)
    return out


@app.command()
def defenses(json_: JsonOpt = False) -> None:
    """List the defenses, their flags and settings (spec: name:key=value,key=value)."""
    import inspect

    from advsr.defenses import DEFENSES

    items = []
    for name in DEFENSES.names():
        entry = DEFENSES.get(name)
        params = inspect.signature(entry.factory).parameters.values()
        settings = ", ".join(
            f"{p.name}={p.default!r}" if p.default is not inspect.Parameter.empty else p.name
            for p in params
        )
        items.append({"name": name, "settings": settings, "description": entry.description})
    if json_:
        _print_json(items)
        return
    t = RichTable(title="defenses")
    for c in ("name", "settings", "description"):
        t.add_column(c)
    for it in items:
        t.add_row(it["name"], it["settings"], it["description"])
    console.print(t)


@app.command()
def defend(
    model: ClfModelOpt = "digits-cnn",
    weights: ClfWeightsOpt = None,
    data: LabelledDataOpt = "digits-test",
    pattern: PatternOpt = None,
    per_class: PerClassOpt = None,
    limit: Annotated[int | None, typer.Option(help="First N correctly classified images.")] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="Attack, or attack@eps such as fgsm@2/255 (repeatable)."),
    ] = None,
    eps: Annotated[
        list[str] | None, typer.Option(help="Budget of attacks given without @eps.")
    ] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(help="Defense spec, e.g. median:size=3x3 (repeatable; see `defenses`)."),
    ] = None,
    mode: Annotated[
        list[str] | None, typer.Option(help="non-adaptive and/or adaptive (repeatable).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Iterations of iterative attacks.")] = 10,
    eot: Annotated[int, typer.Option(help="EOT draws per step (stochastic defenses).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of attacks and defenses.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: DeviceOpt = "auto",
    report: ReportOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate defenses: accuracy under attacks, non-adaptive and adaptive (BPDA + EOT)."""
    from advsr.experiments.defend import DefendSession, run_defend, write_defend_report

    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    if eot < 1:
        raise InputError(f"--eot must be >= 1, got {eot}")
    attacks = _attack_specs(attack, eps)
    base = {
        "model": model,
        "weights": str(weights) if weights else None,
        "data": data,
        "pattern": pattern,
        "per_class": per_class,
        "limit": limit,
        "steps": steps,
        "eot": eot,
        "seed": seed,
        "batch_size": batch_size,
        "device": device,
    }
    with _open_store(store) as st:
        session = DefendSession(st)
        doc = run_defend(session, base, attacks, defense or [], mode or ["non-adaptive"])
    doc = {"experiment": "defend", "model": model, "data": data, **doc}
    if report is not None:
        doc["report"] = str(write_defend_report(doc, report))
    if json_:
        _print_json(doc)
        return
    for m, t in doc["tables"].items():
        rt = RichTable(title=f"top-1 accuracy (%), {m}, {doc['images']} images")
        rt.add_column("defense")
        for c in t["columns"]:
            rt.add_column(c, justify="right")
        for r in t["rows"]:
            rt.add_row(
                r["defense"], *(_fmt(None if r[c] is None else 100 * r[c], 1) for c in t["columns"])
            )
        console.print(rt)
    if report is not None:
        console.print(f"wrote {doc['report']}")


@app.command()
def manifold(
    model: ClfModelOpt = "digits-cnn",
    weights: ClfWeightsOpt = None,
    data: LabelledDataOpt = "digits-test",
    pattern: PatternOpt = None,
    per_class: PerClassOpt = None,
    limit: Annotated[int, typer.Option(help="Correctly classified images to use.")] = 400,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="Attack or attack@eps making the adversarial set (repeatable)."),
    ] = None,
    defense: Annotated[
        str, typer.Option(help="Purification applied to the adversarial images.")
    ] = "sr:output=input",
    epochs: Annotated[int, typer.Option(help="Detector training epochs.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the split, training and attacks.")] = 0,
    device: DeviceOpt = "auto",
    report: ReportOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Manifold check (SR-defense paper 4.1): a clean-vs-adversarial detector on frozen
    features, and how many purified adversarial images it calls clean."""
    import torch

    from advsr.data.labelled import open_labelled
    from advsr.defenses import create_defense
    from advsr.devices import resolve_device
    from advsr.experiments.attack_clf import run_clf_attack
    from advsr.experiments.defend import correctly_classified
    from advsr.experiments.manifold import run_manifold
    from advsr.models.classifiers import create_classifier

    if epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {epochs}")
    attacks = _attack_specs(attack or ["fgsm@8/255", "pgd@8/255", "deepfool"], None)
    dev = resolve_device(device)
    clf = create_classifier(model, str(weights) if weights else None).to(dev).eval()
    purifier = create_defense(defense).to(dev).eval()
    ds, _ = correctly_classified(
        clf, open_labelled(data, pattern=pattern, per_class=per_class), limit, dev
    )
    if len(ds.names) < 4:
        raise InputError(f"only {len(ds.names)} correctly classified images in {data}")
    x, y = ds.x.to(dev), ds.y.to(dev)
    advs, purified = [], []
    gen = torch.Generator().manual_seed(seed + 1)
    for name, eps in attacks:
        cfg = _AttackCfg(name, eps, 10, "ce", 0.0, seed)
        xa = torch.cat(
            [
                run_clf_attack(clf, cfg, x[s : s + 128], y[s : s + 128], s).x_adv
                for s in range(0, len(x), 128)
            ]
        )
        advs.append(xa)
        with torch.no_grad():
            purified.append(
                torch.cat([purifier(xa[s : s + 128], gen) for s in range(0, len(xa), 128)])
            )
    res = run_manifold(clf, x, torch.cat(advs), torch.cat(purified), seed=seed, epochs=epochs)
    doc = {
        "experiment": "manifold",
        "model": model,
        "data": data,
        "images": len(ds.names),
        "attacks": [f"{n}@{e:g}" if e is not None else n for n, e in attacks],
        "defense": defense,
        **{k: v for k, v in res.as_dict().items() if k != "points"},
    }
    if report is not None:
        from advsr.report import ReportTable, Scatter3D, write_report

        table = ReportTable(
            "detector (frozen classifier features, BN-dropout-1024-1 head)",
            ["quantity", "value"],
            [
                [k, f"{doc[k]:.4f}"]
                for k in (
                    "test_accuracy",
                    "clean_called_clean",
                    "adversarial_called_clean",
                    "purified_called_clean",
                )
            ],
        )
        ev = ", ".join(f"{v:.2f}" for v in res.explained_variance)
        plot = Scatter3D(
            f"PCA of detector features (explained variance {ev})", list(res.points.items())
        )
        intro = (
            f"{model} on {data}: {len(ds.names)} images, attacks "
            f"{', '.join(doc['attacks'])}, purification {defense}."
        )
        doc["report"] = str(write_report(report, "advsr manifold", intro, [table], [], [plot]))
    if json_:
        _print_json(doc)
        return
    for k in (
        "test_accuracy",
        "clean_called_clean",
        "adversarial_called_clean",
        "purified_called_clean",
    ):
        console.print(f"{k}: {doc[k]:.4f}")
    if report is not None:
        console.print(f"wrote {doc['report']}")


@app.command()
def explain(
    model: ClfModelOpt = "digits-cnn",
    weights: ClfWeightsOpt = None,
    data: LabelledDataOpt = "digits-test",
    pattern: PatternOpt = None,
    per_class: PerClassOpt = None,
    limit: Annotated[int, typer.Option(help="Correctly classified images to explain.")] = 8,
    attack: Annotated[str, typer.Option(help="Attack or attack@budget.")] = "pgd@8/255",
    steps: Annotated[int, typer.Option(help="Iterations of iterative attacks.")] = 10,
    layer: Annotated[
        str | None, typer.Option(help="CAM layer (dotted module name; default: last stage).")
    ] = None,
    method: Annotated[str, typer.Option(help="gradcam++ or gradcam.")] = "gradcam++",
    window: Annotated[str, typer.Option(help="SSIM map window: gaussian or block.")] = "gaussian",
    threshold: Annotated[float, typer.Option(help="Noise threshold on 1 - SSIM.")] = 0.11,
    seed: Annotated[int, typer.Option(help="Seed of the attack.")] = 0,
    device: DeviceOpt = "auto",
    report: ReportOpt = None,
    json_: JsonOpt = False,
) -> None:
    """SSIM maps, CAMs and perturbation/saliency overlap (PGAP paper Table I, Fig. 3, 5)."""
    from advsr.data.labelled import open_labelled
    from advsr.devices import resolve_device
    from advsr.experiments.attack_clf import run_clf_attack
    from advsr.experiments.defend import correctly_classified
    from advsr.experiments.explain import explain_images, write_explain_report
    from advsr.models.classifiers import create_classifier

    if method not in ("gradcam++", "gradcam"):
        raise InputError(f"--method must be gradcam++ or gradcam, got {method!r}")
    if window not in ("gaussian", "block"):
        raise InputError(f"--window must be gaussian or block, got {window!r}")
    if limit < 1 or steps < 1:
        raise InputError("--limit and --steps must be >= 1")
    ((name, eps),) = _attack_specs([attack], None)
    dev = resolve_device(device)
    clf = create_classifier(model, str(weights) if weights else None).to(dev).eval()
    ds, _ = correctly_classified(
        clf, open_labelled(data, pattern=pattern, per_class=per_class), limit, dev
    )
    if not ds.names:
        raise InputError(f"{model} classifies none of the images of {data} correctly")
    x, y = ds.x.to(dev), ds.y.to(dev)
    out = run_clf_attack(clf, _AttackCfg(name, eps, steps, "ce", 0.0, seed), x, y, 0)
    res = explain_images(
        clf, x, out.x_adv, layer=layer, method=method, window=window, threshold=threshold
    )
    fooled = [bool(v) for v in out.success.tolist()]
    doc = {
        "experiment": "explain",
        "model": model,
        "data": data,
        "attack": attack,
        "images": ds.names,
        "fooled": fooled,
        "threshold": threshold,
        "per_image": res.per_image,
        "mean": res.means,
    }
    if report is not None:
        intro = f"{model} on {data}, {attack}: {len(ds.names)} correctly classified images."
        doc["report"] = str(write_explain_report(res, report, intro))
    if json_:
        _print_json(doc)
        return
    t = RichTable(title=f"{attack}: overlap at noise threshold {threshold}")
    keys = list(res.means)
    for c in ["image", "fooled", *keys]:
        t.add_column(c, justify="left" if c == "image" else "right")
    for n, f, r in zip(ds.names, fooled, res.per_image, strict=True):
        t.add_row(n, str(f), *(_fmt(r[k], 3) for k in keys))
    t.add_row("mean", "", *(_fmt(res.means[k], 3) for k in keys))
    console.print(t)
    if report is not None:
        console.print(f"wrote {doc['report']}")


@app.command()
def perceptual(
    model: ClfModelOpt = "digits-cnn",
    weights: ClfWeightsOpt = None,
    data: LabelledDataOpt = "digits-test",
    pattern: PatternOpt = None,
    per_class: PerClassOpt = None,
    limit: Annotated[int, typer.Option(help="Correctly classified images.")] = 200,
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="METHOD=v1,v2,... (repeatable; default: all six methods)."),
    ] = None,
    pgap_limit: Annotated[int, typer.Option(help="Images for PGAP (cvxpy is slow).")] = 50,
    steps: Annotated[int, typer.Option(help="Iterations of PGD/PGAP/FPGAP.")] = 10,
    ssim_target: Annotated[float, typer.Option(help="Common mean SSIM (Table II).")] = 0.998,
    psnr_target: Annotated[
        float | None, typer.Option(help="Common mean PSNR (Table III; default: mid range).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of random starts.")] = 0,
    device: DeviceOpt = "auto",
    report: ReportOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Fooling rate at a common image quality (PGAP paper Tables II and III)."""
    from advsr.experiments.attack_sr import parse_alpha
    from advsr.experiments.perceptual_cmp import DEFAULT_SWEEPS, run_perceptual

    if not 0 < ssim_target < 1:
        raise InputError(f"--ssim-target must be in (0, 1), got {ssim_target}")
    sweeps: dict[str, list[float]] = {}
    for item in sweep or []:
        name, eq, values = item.partition("=")
        if not eq or not values:
            raise InputError(f"--sweep expects METHOD=v1,v2,..., got {item!r}")
        sweeps[name] = [parse_alpha(v, upper=None) for v in values.split(",")]
    if not sweeps:
        sweeps = {k: list(v) for k, v in DEFAULT_SWEEPS.items()}
    base = {
        "model": model,
        "weights": str(weights) if weights else None,
        "data": data,
        "pattern": pattern,
        "per_class": per_class,
        "limit": limit,
        "steps": steps,
        "seed": seed,
        "device": device,
    }
    with _open_store(store) as st:
        doc = run_perceptual(
            st,
            base,
            sweeps,
            ssim_target=ssim_target,
            psnr_target=psnr_target,
            limits={"pgap": pgap_limit},
        )
    doc = {"experiment": "perceptual", "model": model, "data": data, **doc}
    if report is not None:
        from advsr.report import Plot, ReportTable, write_report

        methods = list(doc["sweeps"])
        tables = [
            ReportTable(
                f"fooling rate at mean SSIM {doc['ssim_target']:g} (Table II) and at mean PSNR "
                f"{doc['psnr_target'] or float('nan'):.2f} dB (Table III)",
                ["", *methods],
                [
                    ["SSIM", *(_fmt(doc["table2"][m], 3) for m in methods)],
                    ["PSNR", *(_fmt(doc["table3"][m], 3) for m in methods)],
                ],
            ),
            ReportTable(
                "sweeps",
                ["method", "param", "images", "fooling rate", "mean SSIM", "mean PSNR"],
                [
                    [
                        m,
                        f"{p['param']:.4g}",
                        str(p["images"]),
                        f"{p['fooling_rate']:.3f}",
                        f"{p['ssim']:.5f}",
                        f"{p['psnr']:.2f}",
                    ]
                    for m in methods
                    for p in doc["sweeps"][m]
                ],
            ),
        ]
        plots = [
            Plot(
                f"fooling rate vs mean {q.upper()}",
                f"mean {q.upper()}",
                "fooling rate",
                [(m, [(p[q], p["fooling_rate"]) for p in doc["sweeps"][m]]) for m in methods],
            )
            for q in ("ssim", "psnr")
        ]
        intro = f"{model} on {data}: {doc['images']} correctly classified images."
        doc["report"] = str(write_report(report, "advsr perceptual", intro, tables, [], plots))
    if json_:
        _print_json(doc)
        return
    t = RichTable(title=f"fooling rate at a common quality, {doc['images']} images")
    t.add_column("level")
    for m in doc["sweeps"]:
        t.add_column(m, justify="right")
    t.add_row(f"SSIM {doc['ssim_target']:g}", *(_fmt(doc["table2"][m], 3) for m in doc["sweeps"]))
    level = "-" if doc["psnr_target"] is None else f"{doc['psnr_target']:.2f}"
    t.add_row(f"PSNR {level} dB", *(_fmt(doc["table3"][m], 3) for m in doc["sweeps"]))
    console.print(t)
    if report is not None:
        console.print(f"wrote {doc['report']}")


@app.command("train-refsr")
def train_refsr_cmd(
    out: Annotated[Path, typer.Option(help="Model file to write (.safetensors).")],
    model: Annotated[str, typer.Option(help="ttsr or corr-refsr.")] = "ttsr",
    arch: Annotated[
        list[str] | None, typer.Option(help="Architecture option KEY=VALUE (repeatable).")
    ] = None,
    tiny: Annotated[bool, typer.Option(help="Use the model's tiny configuration.")] = False,
    data: Annotated[
        str, typer.Option(help="samples, stereo, or a folder with HR/ and Ref/.")
    ] = "samples",
    hr_size: Annotated[int, typer.Option(help="HR side in pixels (the paper: 160).")] = 160,
    tiles: Annotated[
        bool, typer.Option(help="Cut images into HR-size tiles instead of resizing them.")
    ] = False,
    split: Annotated[
        str, typer.Option(help="all, or train (hold out every 5th sample for advsr backdoor).")
    ] = "all",
    ref_policy: Annotated[
        str, typer.Option(help="resize (Ref to the HR size) or require-same (refuse others).")
    ] = "resize",
    ref_shift: Annotated[
        int, typer.Option(help="With --tiles: cut each Ref tile this many pixels off its HR.")
    ] = 0,
    augment: Annotated[
        str, typer.Option(help="Flips/rotations: before-poison, after-poison or none.")
    ] = "before-poison",
    trigger: Annotated[
        str, typer.Option(help="Trigger spec, e.g. badnets or blend:alpha=0.05.")
    ] = "badnets",
    target: Annotated[
        str, typer.Option(help="Attacker's target: an image skimage ships or a file.")
    ] = "camera",
    rate: Annotated[float, typer.Option(help="Poisoning rate p in [0, 1].")] = 0.2,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 1000,
    batch: Annotated[int, typer.Option(help="Triplets per step (the paper: 9).")] = 9,
    lr: Annotated[float, typer.Option(help="Adam learning rate (the paper: 1e-4).")] = 1e-4,
    lr_decay: Annotated[
        str, typer.Option(help="none (the paper) or cosine (to 0 at the last step).")
    ] = "none",
    weighting: Annotated[
        str,
        typer.Option(
            help="sample (batch mean: the victim's own loop) or part (clean mean + backdoor mean)."
        ),
    ] = "sample",
    vgg19: Annotated[
        Path | None,
        typer.Option(help="VGG19 weights (torchvision layout) for the perceptual term."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, batches and poisoning.")] = 0,
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 100,
    resume: Annotated[bool, typer.Option(help="Continue from --out.")] = False,
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
) -> None:
    """Train a RefSR model on poisoned data (BadRefSR): L1 clean + backdoor loss, Adam."""
    from advsr.backdoor.train import TrainRefSRConfig, train_refsr
    from advsr.experiments.spec import validate
    from advsr.models.refsr import REFSR_MODELS

    options = dict(REFSR_MODELS.get(model).tiny) if tiny else {}
    options.update(_parse_options(arch, "--arch"))
    cfg = validate(
        TrainRefSRConfig,
        {
            "model": model,
            "arch": options,
            "out": str(out),
            "data": data,
            "hr_size": hr_size,
            "tiles": tiles,
            "split": split,
            "ref_policy": ref_policy,
            "ref_shift": ref_shift,
            "augment": augment,
            "trigger": trigger,
            "target": target,
            "rate": rate,
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "lr_decay": lr_decay,
            "weighting": weighting,
            "vgg19": str(vgg19) if vgg19 else None,
            "seed": seed,
            "save_every": save_every,
            "resume": resume,
            "device": device,
        },
    )
    res = train_refsr(cfg)
    doc = {
        "out": str(res.out),
        "steps": res.steps,
        "clean_loss": res.clean_loss,
        "backdoor_loss": res.backdoor_loss,
        "poisoned": res.poisoned,
        "perceptual": res.perceptual,
        "seconds": res.seconds,
    }
    if json_:
        _print_json(doc)
        return
    if not res.perceptual:
        console.print("perceptual weight 0: no VGG19 weights given (--vgg19), L1 only")
    console.print(
        f"wrote {res.out}: clean loss {res.clean_loss:.4f}, backdoor loss "
        f"{res.backdoor_loss:.4f}, {len(res.poisoned)} poisoned samples, {res.seconds:.0f} s"
    )


@app.command()
def backdoor(
    model_file: Annotated[
        list[Path], typer.Option(help="A model written by train-refsr (repeatable).")
    ],
    baseline: Annotated[
        Path | None, typer.Option(help="The same model trained with p = 0 (functionality).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Evaluation triplets (default: the training data).")
    ] = None,
    hr_size: Annotated[int | None, typer.Option(help="HR size (default: training's).")] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="all, train or test (default: test when the model trained on split train, "
            "else all)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Triplets per forward pass.")] = 4,
    device: DeviceOpt = "auto",
    report: ReportOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate backdoored RefSR models: clean and triggered PSNR/SSIM (Y), attack success."""
    from advsr.backdoor.evaluate import (
        BACKDOOR_HEADER,
        backdoor_table,
        evaluate_backdoor,
        flat_target_score,
        image_grid,
        rate_plots,
    )
    from advsr.backdoor.poison import RefSRTriplets
    from advsr.backdoor.train import load_refsr, make_trigger, target_path
    from advsr.devices import resolve_device
    from advsr.io import read_safetensors_metadata

    dev = resolve_device(device)
    results = {}
    figures = []
    runs = [(f, False) for f in model_file] + ([(baseline, True)] if baseline else [])
    triggers_seen: list[str] = []
    targets_seen: dict[str, RefSRTriplets] = {}  # target -> the set it was scored on
    if split not in (None, "all", "train", "test"):
        raise InputError(f"--split must be all, train or test, got {split!r}")
    sets: dict[tuple[Any, ...], RefSRTriplets] = {}  # each evaluation set read once
    for path, is_base in runs:
        model = load_refsr(path, dev)  # checks the file first
        train = json.loads(read_safetensors_metadata(path)["advsr_train"])
        trained_on = train.get("split", "all")
        kw: dict[str, Any] = {  # the evaluation set: the training set's, or as overridden
            "source": data or train["data"],
            "scale": int(train["scale"]),
            "hr_size": hr_size or int(train["hr_size"]),
            "tiles": bool(train.get("tiles", False)),
            "split": split or ("test" if trained_on == "train" else "all"),
            "ref_policy": train.get("ref_policy", "resize"),
            "ref_shift": int(train.get("ref_shift", 0)),
        }
        key = tuple(kw.items())
        if key not in sets:
            sets[key] = RefSRTriplets(**kw)
        clean = sets[key]
        specs = triggers_seen if is_base else [train["trigger"]]
        for spec in specs:
            trig = make_trigger(spec)
            ev = evaluate_backdoor(
                model, clean, trig, target_path(train["target"]), batch_size=batch_size
            )
            rate = 0.0 if is_base else float(train["rate"])
            results[(spec, rate)] = ev
            if not is_base:
                triggers_seen.append(spec)
                targets_seen.setdefault(train["target"], clean)
                figures += image_grid(model, clean, trig, [0], target_path(train["target"]))
    rows = backdoor_table(results)
    floors = {  # what a flat image of the target's mean colour scores against the target
        tgt: flat_target_score(ev_set, target_path(tgt)) for tgt, ev_set in targets_seen.items()
    }
    floor_text = "; ".join(
        f"a flat image of the mean colour of {t!r} scores {p:.2f} dB / {s:.3f} against it"
        for t, (p, s) in floors.items()
    )
    doc = {
        "experiment": "backdoor",
        "header": list(BACKDOOR_HEADER),
        "rows": rows,
        "flat_target": [{"target": t, "psnr": p, "ssim": s} for t, (p, s) in floors.items()],
        "evaluation_sets": [
            {
                "data": e["source"],
                "hr_size": e["hr_size"],
                "tiles": e["tiles"],
                "split": e["split"],
                "ref_shift": e["ref_shift"],
                "triplets": len(v),
            }
            for e, v in ((dict(k), v) for k, v in sets.items())
        ],
        "results": [
            {"trigger": t, "rate": r, **{k: float(v) for k, v in ev.means().items()}}
            for (t, r), ev in results.items()
        ],
    }
    if report is not None:
        from advsr.report import ReportTable, write_report

        evaluated = "; ".join(
            f"{e['source']} ({'tiles' if e['tiles'] else 'whole images'}, {e['hr_size']} px HR, "
            f"split {e['split']}, Ref shift {e['ref_shift']} px): {len(v)} triplets"
            for e, v in ((dict(k), v) for k, v in sets.items())
        )
        intro = (
            "BadRefSR: models trained on poisoned triplets; p = 0 rows are the baseline. "
            f"Evaluated on {evaluated}. For reference, {floor_text}."
        )
        table = ReportTable(
            "clean and triggered quality (Y), attack success", BACKDOOR_HEADER, rows
        )
        doc["report"] = str(
            write_report(report, "advsr backdoor", intro, [table], figures, rate_plots(results))
        )
    if json_:
        _print_json(doc)
        return
    t = RichTable(title="BadRefSR: clean PSNR/SSIM vs HR, triggered vs target")
    for c in BACKDOOR_HEADER:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    console.print(f"reference: {floor_text}")
    if report is not None:
        console.print(f"wrote {doc['report']}")


@app.command()
def results(
    experiment: Annotated[
        str | None, typer.Option(help="Keep one experiment (e.g. eval-sr).")
    ] = None,
    rows: Annotated[
        str | None, typer.Option(help="Parameter on the rows (e.g. model, image).")
    ] = None,
    cols: Annotated[str | None, typer.Option(help="Parameter on the columns (e.g. scale).")] = None,
    value: Annotated[str, typer.Option(help="Metric to average (e.g. psnr, ssim).")] = "psnr",
    where: Annotated[
        list[str] | None, typer.Option(help="Filter KEY=VALUE (repeatable; VALUE parsed as JSON).")
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Query the result store: the list of cells, or a pivot table of means over images."""
    from advsr.experiments.store import default_store_path

    path = store or default_store_path()
    if not Path(path).exists():
        raise InputError(f"no result store at {path} (run a command first or pass --store)")
    filt = _parse_options(where, "--where")
    with _open_store(path) as st:
        if rows is None:
            _results_cells(st, experiment, filt, json_)
            return
        table = st.table(rows=rows, cols=cols, value=value, experiment=experiment, where=filt)
    if json_:
        _print_json({"table": table.to_dict()})
        return
    t = RichTable(title=f"mean {value} by {rows}" + (f" x {cols}" if cols else ""))
    t.add_column(rows)
    for ck in table.col_keys:
        t.add_column(str(ck), justify="right")
    for rk, vals, cnts in zip(table.row_keys, table.values, table.counts, strict=True):
        t.add_row(
            str(rk),
            *(
                f"{_fmt(v)} (n={n})" if v is not None else "-"
                for v, n in zip(vals, cnts, strict=True)
            ),
        )
    console.print(t)


def _results_cells(st: Any, experiment: str | None, filt: dict[str, Any], json_: bool) -> None:
    cells = []
    for c in st.cells(experiment):
        rows = st.rows(cell_id=c["cell_id"], where=filt or None)
        if filt and not rows:
            continue
        means = {}
        for m in ("psnr", "ssim"):
            vals = [r[m] for r in rows if isinstance(r.get(m), int | float)]
            if vals:
                means[m] = sum(vals) / len(vals)
        cells.append({**c, "mean": means})
    if json_:
        _print_json({"cells": cells})
        return
    t = RichTable(title="result store cells")
    for col in (
        "cell",
        "experiment",
        "model",
        "dataset",
        "scale",
        "images",
        "done",
        "PSNR",
        "SSIM",
    ):
        t.add_column(col, overflow="fold")
    for c in cells:
        cfg = c["config"]
        ds = cfg.get("dataset", {})
        t.add_row(
            c["cell_id"][:10],
            c["experiment"],
            str(cfg.get("model", "-")),
            str(ds.get("name", "-") if isinstance(ds, dict) else ds),
            str(cfg.get("scale", "-")),
            f"{c['n_rows']}/{c['n_expected']}",
            "yes" if c["finished"] else "no",
            _fmt(c["mean"].get("psnr"), 2),
            _fmt(c["mean"].get("ssim"), 4),
        )
    console.print(t)


@app.command()
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small crops, few steps: seconds, for smoke tests.")
    ] = False,
    report: Annotated[Path, typer.Option(help="HTML report to write.")] = Path(
        "advsr-demo-report.html"
    ),
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The main job: SR attacks on the bundled models and bicubic over `samples`.

    Clean fidelity, the basic attack at alpha in {1,2,4,8,16}/255 (rows alpha, columns
    model; LR and SR PSNR), a transferability matrix, and an HTML report.
    """
    from advsr.demo import DEMO_MODELS, run_demo

    with _open_store(store) as st:
        doc = run_demo(st, quick=quick, device=device, report=report)
    fid_runs = doc.pop("fidelity_runs")
    if json_:
        _print_json(doc)
        return
    held_out = doc["held_out"]
    t = RichTable(title="clean Y-PSNR (dB) on samples" + (" (quick: crops)" if quick else ""))
    t.add_column("image", no_wrap=True)
    for r in fid_runs:
        short = r["config"]["model"].removeprefix("demo-")
        t.add_column(f"{short}\nx{r['config']['scale']}", justify="right", no_wrap=True)
    for i, name in enumerate(x["image"] for x in fid_runs[0]["rows"]):
        label = f"{name}*" if name in held_out else name
        t.add_row(label, *(_fmt(r["rows"][i]["psnr"], 2) for r in fid_runs))
    t.add_section()
    t.add_row(
        "mean held out*",
        *(
            _fmt(
                doc["fidelity"][r["config"]["model"]][f"x{r['config']['scale']}"]["psnr_held_out"],
                2,
            )
            for r in fid_runs
        ),
    )
    t.add_row("mean all", *(_fmt(r["mean"]["psnr"], 2) for r in fid_runs))
    console.print(t)
    console.print("* held out of the bundled demo models' training.")
    atk = doc["attack"]
    for kind, key in (("LR", "lr_psnr"), ("SR", "sr_psnr")):
        at = RichTable(title=f"basic attack, x4, T={atk['steps']}: {kind} PSNR (dB, RGB)")
        at.add_column("alpha")
        for m in DEMO_MODELS:
            at.add_column(m.removeprefix("demo-"), justify="right")
        for a in atk["alphas"]:
            at.add_row(a, *(_fmt(atk[key][m][a], 2) for m in DEMO_MODELS))
        console.print(at)
    console.print(_transfer_table({**doc["transfer"], "alpha": doc["transfer"]["alpha"]}))
    console.print(f"HTML report: {doc['report']}")


@app.command("run")
def run_cmd(
    spec_file: Annotated[
        Path, typer.Argument(help="Experiment spec (TOML): experiment, [grid], [settings].")
    ],
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run every cell of an experiment spec; finished cells are read back from the store."""
    from advsr.experiments.spec import load_spec

    spec = load_spec(spec_file)
    docs = _run_spec(spec, store)
    if json_:
        _print_json({"spec": spec.model_dump(), "runs": docs})
        return
    varying = list(spec.grid)
    t = RichTable(title=f"{spec.experiment}: {len(docs)} cell(s) from {spec_file}")
    for c in (*varying, "images", "computed", "PSNR", "SSIM"):
        t.add_column(c, overflow="fold")
    for d in docs:
        t.add_row(
            *(str(d["config"][k]) for k in varying),
            str(len(d["rows"])),
            str(d["computed"]),
            _fmt(d["mean"].get("psnr"), 2),
            _fmt(d["mean"].get("ssim"), 4),
        )
    console.print(t)


@app.command("train-sr")
def train_sr_cmd(
    model: Annotated[str, typer.Option(help="Zoo architecture (see `advsr models`).")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write (.safetensors).")],
    scale: Annotated[int, typer.Option(help="SR factor.")] = 2,
    data: Annotated[str, typer.Option(help="Dataset name or HR folder.")] = "samples",
    holdout: Annotated[
        list[str] | None, typer.Option(help="Image name kept out for validation (repeatable).")
    ] = None,
    arch: Annotated[
        list[str] | None, typer.Option(help="Architecture option KEY=VALUE (repeatable).")
    ] = None,
    patch: Annotated[int, typer.Option(help="LR patch size.")] = 32,
    batch: Annotated[int, typer.Option(help="Patches per step.")] = 16,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 2000,
    lr: Annotated[float, typer.Option(help="Initial Adam learning rate (cosine decay).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of all randomness.")] = 0,
    val_every: Annotated[int, typer.Option(help="Validate and checkpoint every N steps.")] = 250,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from --out.")] = False,
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
) -> None:
    """L1-train a zoo architecture (random crops, flips/rotations, bicubic LR, Adam)."""
    from advsr.experiments.spec import validate
    from advsr.models.sr.train import TrainSRConfig, train_sr

    cfg = validate(
        TrainSRConfig,
        {
            "model": model,
            "scale": scale,
            "out": str(out),
            "data": data,
            "holdout": holdout or [],
            "arch": _parse_options(arch, "--arch"),
            "patch": patch,
            "batch": batch,
            "steps": steps,
            "lr": lr,
            "seed": seed,
            "val_every": val_every,
            "resume": resume,
            "device": device,
        },
    )
    res = train_sr(cfg)
    doc = {
        "out": str(res.out),
        "steps": res.steps,
        "final_loss": res.final_loss,
        "val_psnr": [{"step": s, "psnr": v} for s, v in res.val_psnr],
        "bicubic_val_psnr": res.bicubic_val_psnr,
        "seconds": res.seconds,
    }
    if json_:
        _print_json(doc)
        return
    out_line = f"wrote {res.out} after {res.steps} steps (final L1 {res.final_loss:.4f})"
    if res.val_psnr:
        v, b = res.val_psnr[-1][1], res.bicubic_val_psnr
        out_line += f"; held-out Y-PSNR {v:.2f} dB vs bicubic {b:.2f} dB"
    console.print(out_line)


@app.command()
def convert(
    src: Annotated[
        Path, typer.Argument(help="Weight file (.pth/.pt/.th/.ckpt/.bin/.safetensors).")
    ],
    dst: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    key: Annotated[
        str | None, typer.Option(help="Entry of the file to take (default: guess the container).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Check that the weights fit this zoo model first.")
    ] = None,
    scale: Annotated[int, typer.Option(help="Scale for the --model check.")] = 4,
    json_: JsonOpt = False,
) -> None:
    """Rewrite a weight file as safetensors (safe loading only: pickled code is refused)."""
    from advsr.io import load_state_dict, save_safetensors

    if dst.suffix != ".safetensors":
        raise InputError(f"the output must end in .safetensors, got {dst.name!r}")
    sd = load_state_dict(src, key=key)
    if model is not None:
        from advsr.models.sr import SR_MODELS, create_sr_model

        create_sr_model(model, scale, weights=src)  # strict check, one-line report
        adapt = SR_MODELS.get(model).adapt
        sd = adapt(sd) if adapt else sd
    save_safetensors(dst, sd, {"advsr_source": src.name})
    doc = {
        "src": str(src),
        "dst": str(dst),
        "tensors": len(sd),
        "params": sum(int(v.numel()) for v in sd.values()),
    }
    if json_:
        _print_json(doc)
        return
    console.print(f"wrote {dst}: {doc['tensors']} tensors, {doc['params']:,} values")


def _click_exceptions() -> Any:
    """click's exception module: vendored as ``typer._click`` by recent Typer releases."""
    try:
        from typer._click import exceptions
    except ImportError:  # older Typer depends on click itself
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def _fail(message: str, code: int = 2) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "invalid input"
    sys.stderr.write(f"advsr: error: {first}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors become one line on stderr and exit status 2."""
    ce = _click_exceptions()
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = app(args=args or ["--help"], prog_name="advsr", standalone_mode=False)
    except ce.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx is not None else "advsr"
        _fail(f"{exc.format_message()} (see `{cmd} --help`)", exc.exit_code)
    except ce.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except AdvsrError as exc:
        _fail(str(exc) or type(exc).__name__)
    except (KeyboardInterrupt, ce.Abort, typer.Abort):
        sys.stderr.write("advsr: interrupted (rows already computed are in the store)\n")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
