"""The SR model zoo: create any registered SR model by name and scale, with safe weights.

Every model maps ``(N, 3, h, w)`` RGB in ``[0, 1]`` to ``(N, 3, s*h, s*w)`` (clamped to
``[0, 1]`` in eval mode), works at any input size, and has the official release's
``state_dict`` keys, so official files load as they are (through :func:`advsr.io.
load_state_dict`: safetensors or ``torch.load(weights_only=True)``, never pickled code).

Example:
    >>> import torch
    >>> model = create_sr_model("bicubic", scale=4)
    >>> model(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 64, 64])
    >>> small = create_sr_model("edsr-baseline", 2, arch={"n_resblocks": 2, "n_feats": 8})
    >>> small(torch.rand(1, 3, 7, 5)).shape
    torch.Size([1, 3, 14, 10])
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

from advsr.checks import check_scale
from advsr.errors import InputError, ModelLoadError, warn
from advsr.io import read_safetensors_metadata
from advsr.models.loading import (
    build_arch,
    fits,
    is_torchscript,
    load_torchscript,
    load_weights,
)
from advsr.models.sr.zoo import SR_MODELS, SRModelEntry, register_sr_model
from advsr.registry import import_entries

__all__ = [
    "SR_MODELS",
    "SRModelEntry",
    "SRModelInfo",
    "bundled_training",
    "check_untrained",
    "create_sr_model",
    "default_weights",
    "list_sr_models",
    "load_sr_file",
    "load_weights",
    "no_weights_message",
    "register_sr_model",
    "seeded_init",
    "weights_dir",
]

ENTRY_MODULES = ("bicubic", "edsr", "rcan", "carn", "rrdb", "srresnet", "imdn", "vdsr")
"""The modules that register an SR model, each beside its architecture (one list)."""

import_entries(__name__, ENTRY_MODULES)


def weights_dir() -> Path:
    """Folder of the weights bundled with advsr (``advsr/models/weights``)."""
    return Path(__file__).resolve().parents[1] / "weights"


def bundled_training(name: str, scale: int) -> dict[str, Any]:
    """The training settings recorded in a bundled weight file (empty if it has none)."""
    entry = SR_MODELS.get(name)
    if scale not in entry.bundled:
        return {}
    meta = _file_metadata(weights_dir() / entry.bundled[scale])
    return dict(json.loads(meta["advsr_train"])) if "advsr_train" in meta else {}


def file_options(path: object, meta: Mapping[str, str]) -> dict[str, Any]:
    """The architecture options a weight file records (``advsr_arch``, a JSON object).

    Raises:
        ModelLoadError: the metadata is not a JSON object.
    """
    try:
        options = json.loads(meta["advsr_arch"])
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise ModelLoadError(f"{path}: its metadata advsr_arch is not a JSON object")
    return options


def file_scale(path: object, meta: Mapping[str, str]) -> int:
    """The SR factor a weight file records (``advsr_scale``).

    Raises:
        ModelLoadError: missing or not an integer in 1..16.
    """
    text = meta.get("advsr_scale")
    value = int(text) if text is not None and text.isdigit() else 0
    if not 1 <= value <= 16:
        raise ModelLoadError(f"{path}: its metadata advsr_scale {text!r} is not a scale 1..16")
    return value


def _file_metadata(path: Path) -> dict[str, str]:
    return read_safetensors_metadata(path)


def create_sr_model(
    name: str,
    scale: int,
    weights: str | Path | None = None,
    *,
    arch: Mapping[str, Any] | None = None,
    bundled: bool = True,
    init_seed: int | None = None,
    strict: bool = False,
) -> nn.Module:
    """Build a zoo model in eval mode, loading weights strictly when given.

    Args:
        name: registered name (see :func:`list_sr_models`).
        scale: SR factor; must be one the entry supports.
        weights: a weight file; ``None`` uses the bundled file of demo models. A safetensors
            file written by ``advsr train-sr`` carries its architecture options, which are used
            unless ``arch`` overrides them.
        arch: architecture options overriding the entry's (e.g. ``{"n_feats": 32}``).
        bundled: load the bundled weights of demo models when ``weights`` is None (False
            gives freshly initialised weights, for training).
        init_seed: run untrained on request: initialise the network from this seed
            (reproducible) instead of loading any weights, bundled ones included.
        strict: refuse a model that needs weights and has none (no file given, none
            bundled at this scale, no ``init_seed``) instead of warning; the command line
            always refuses.

    Raises:
        UnknownNameError: unknown model name.
        InputError: unsupported scale, unknown option, weights for a parameter-free model.
        ModelLoadError: unreadable, unsafe or mismatching weights.
    """
    if name not in SR_MODELS and Path(name).is_file():
        if weights is not None or arch:
            raise InputError(f"{name} is a model file: it takes no separate weights or options")
        return load_sr_file(name, scale)
    entry = SR_MODELS.get(name)
    check_scale(scale)
    if scale not in entry.scales:
        have = ", ".join(str(s) for s in entry.scales)
        raise InputError(f"{name} does not support scale {scale} (supported: {have})")
    if weights is not None and not entry.needs_weights:
        raise InputError(f"{name} has no parameters; it takes no weight file")
    check_untrained(name, entry.needs_weights, weights, init_seed)
    if weights is None and bundled and init_seed is None:
        weights = default_weights(name, scale)[0]
    options = dict(entry.options)
    meta = _file_metadata(Path(weights)) if weights is not None else {}
    if meta.get("advsr_model") == name and "advsr_arch" in meta:
        options.update(file_options(weights, meta))
    if "advsr_scale" in meta and file_scale(weights, meta) != scale:
        raise ModelLoadError(f"{weights} was trained for x{meta['advsr_scale']}, not x{scale}")
    options.update(arch or {})
    if weights is None and bundled and entry.needs_weights and init_seed is None:
        if strict:
            raise InputError(no_weights_message(name, scale))
        warn(f"{name} has no weights (pass --weights FILE): it runs with random weights")
    with seeded_init(init_seed):
        model = build_arch(name, entry.arch, scale, options)
    if weights is not None:
        load_weights(model, weights, adapt=entry.adapt, name=name)
    return model.eval()


def no_weights_message(name: str, scale: int | None = None) -> str:
    """The one line a zoo model without weights is refused with."""
    at = f" x{scale}" if scale is not None else ""
    return (
        f"{name}{at} has no weights: pass --weights FILE, or --random-weights to run it untrained"
    )


def default_weights(name: str, scale: int) -> tuple[Path | None, str]:
    """The weights a zoo SR model loads at ``scale`` when none are given, and where they
    come from: ``(file, "bundled with advsr")`` or ``(None, "no weights")``.

    Raises:
        UnknownNameError: unknown name.
    """
    bundled = SR_MODELS.get(name).bundled
    if scale in bundled:
        return weights_dir() / bundled[scale], "bundled with advsr"
    return None, "no weights"


def check_untrained(name: str, needs_weights: bool, weights: object, init_seed: int | None) -> None:
    """Refuse ``--random-weights`` (``init_seed``) for a model without parameters or
    together with a weight file.

    Raises:
        InputError: one line naming the conflict.
    """
    if init_seed is None:
        return
    if not needs_weights:
        raise InputError(f"{name} has no parameters: --random-weights does not apply to it")
    if weights is not None:
        raise InputError(
            f"--random-weights and --weights {weights} contradict each other: pass one"
        )


@contextlib.contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Within it, networks are initialised from ``seed`` (torch's global generator forked
    and restored, so nothing outside changes); None: unchanged."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class ScriptedSR(nn.Module):
    """A TorchScript SR model (``[0, 1]`` RGB in and out) checked for its scale."""

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_sr_file(path: str | Path, scale: int) -> nn.Module:
    """An SR model from a file alone: TorchScript, or a state_dict that fits a zoo
    architecture at ``scale`` (the first that fits, by the zoo's order; a file written by
    ``advsr train-sr`` names its own).

    Raises:
        ModelLoadError: unreadable, unsafe, or fitting no zoo architecture at this scale.
    """
    from advsr.io import load_state_dict

    p = Path(path)
    check_scale(scale)
    if is_torchscript(p):
        model = ScriptedSR(load_torchscript(p), scale).eval()
        try:
            with torch.no_grad():
                out = model(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or ["error"])[0][:120]
            raise ModelLoadError(f"{p} fails on a 1x3x8x8 input: {first}") from None
        if tuple(out.shape) != (1, 3, 8 * scale, 8 * scale):
            raise ModelLoadError(
                f"{p} maps 1x3x8x8 to {tuple(out.shape)}, not an x{scale} SR model"
            )
        return model
    meta = _file_metadata(p)
    if meta.get("advsr_model") in SR_MODELS:
        return create_sr_model(meta["advsr_model"], scale, p)
    sd = load_state_dict(p)
    for name in SR_MODELS.names():
        e = SR_MODELS.get(name)
        if not e.needs_weights or scale not in e.scales:
            continue
        with torch.device("meta"):
            shell = e.arch(scale, **e.options)
        if fits(shell, e.adapt(dict(sd)) if e.adapt else sd):
            return create_sr_model(name, scale, p)
    raise ModelLoadError(
        f"{p} fits no SR architecture of the zoo at x{scale} (see `advsr list models`); "
        "pass --model NAME --weights FILE, or a TorchScript file"
    )


class SRModelInfo(TypedDict):
    """One row of :func:`list_sr_models`."""

    name: str
    scales: list[int]
    params: int
    description: str


def list_sr_models() -> list[SRModelInfo]:
    """Name, scales, parameter count (at x4 where supported) and description of every model.

    Parameter counts include every tensor of the official file (e.g. all three upsamplers of
    the multi-scale CARN files, EDSR's frozen mean-shift convs).
    """
    rows: list[SRModelInfo] = []
    for name in SR_MODELS.names():
        e = SR_MODELS.get(name)
        with torch.device("meta"):
            m = e.arch(4 if 4 in e.scales else max(e.scales), **e.options)
        rows.append(
            {
                "name": name,
                "scales": list(e.scales),
                "params": sum(p.numel() for p in m.parameters()),
                "description": e.description,
            }
        )
    return rows
