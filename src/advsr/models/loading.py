"""Strict, safe loading of weight files into any advsr model."""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn

from advsr.errors import ModelLoadError, brief

__all__ = [
    "MAX_WIDTH",
    "StateDict",
    "build_arch",
    "check_arch",
    "check_values",
    "fits",
    "is_torchscript",
    "load_torchscript",
    "load_weights",
    "max_params",
]

StateDict = dict[str, torch.Tensor]


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def check_values(
    sd: Mapping[str, torch.Tensor],
    path: str | Path,
    expected: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Refuse weights a model cannot compute with: a floating tensor holding NaN or inf, or
    (given the model's own ``expected`` tensors) an integer or bool tensor where the model
    has a floating one (it would be cast silently, e.g. weights truncated to 0 and 1).

    Raises:
        ModelLoadError: one line naming the file and the first such tensor.

    Example:
        >>> check_values({"w": torch.tensor([1.0, float("nan")])}, "f.pt")
        Traceback (most recent call last):
        ...
        advsr.errors.ModelLoadError: f.pt: tensor w holds 1 NaN or infinite value of 2
    """
    for key, t in sd.items():
        own = None if expected is None else expected.get(key)
        if own is not None and own.is_floating_point() and not t.is_floating_point():
            raise ModelLoadError(
                f"{path}: tensor {key} is {str(t.dtype).removeprefix('torch.')}, the model "
                f"expects floating point ({str(own.dtype).removeprefix('torch.')})"
            )
        if (t.is_floating_point() or t.is_complex()) and t.numel():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                values = "value" if bad == 1 else "values"
                raise ModelLoadError(
                    f"{path}: tensor {key} holds {bad} NaN or infinite {values} of {t.numel()}"
                )


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    adapt: Callable[[StateDict], StateDict] | None = None,
    name: str = "model",
) -> None:
    """Load a weight file into ``model`` with strict key and shape matching.

    Raises:
        ModelLoadError: one line listing missing keys, unexpected keys and shape mismatches;
            or naming a tensor with NaN or inf values, or of an integer type where the
            model's is floating point (:func:`check_values`).
    """
    from advsr.io import load_state_dict

    sd = load_state_dict(path)
    if adapt is not None:
        sd = adapt(sd)
    own = model.state_dict()
    # BatchNorm's batch counter is absent from files saved before PyTorch 0.4.1; it plays no
    # part in evaluation, so the model's own value is kept
    for k in own:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = own[k]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} file {_shape(sd[k])} vs model {_shape(own[k])}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                more = f" +{len(items) - 3} more" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label} ({'; '.join(items[:3])}{more})")
        raise ModelLoadError(f"{path} does not fit {name}: " + ", ".join(parts))
    check_values(sd, path, own)
    model.load_state_dict(sd, strict=True)


def fits(model: nn.Module, sd: StateDict) -> bool:
    """Whether ``sd`` has exactly ``model``'s keys and shapes (batch counters aside); works
    on models built on the ``meta`` device."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    return own.keys() == theirs.keys() and all(own[k].shape == theirs[k].shape for k in own)


def is_torchscript(path: str | Path) -> bool:
    """Whether a file is a TorchScript archive (a zip holding compiled code)."""
    import zipfile

    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_torchscript(path: str | Path) -> nn.Module:
    """Load a TorchScript file on the CPU (compiled code, no pickled Python classes).

    Raises:
        ModelLoadError: missing or not a readable TorchScript file, or weights with NaN or
            inf values.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"no such TorchScript file: {p}")
    try:
        module = torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # RuntimeError for damaged or non-TorchScript files
        why = brief(exc) or f"{type(exc).__name__}: a damaged archive"
        raise ModelLoadError(f"{p} is not a TorchScript file ({why})") from None
    check_values(module.state_dict(), p)
    return module


MAX_WIDTH = 4096
"""The largest integer architecture option (a width, a depth) a model may be built with."""
DEFAULT_MAX_PARAMS = 1_000_000_000


def max_params() -> int:
    """The most parameters a model may have: ``$ADVSR_MAX_PARAMS``, default 1e9 (4 GB in
    float32), checked before any memory is allocated.

    Raises:
        InputError: ``$ADVSR_MAX_PARAMS`` is not a positive integer.
    """
    import os

    from advsr.errors import InputError

    text = os.environ.get("ADVSR_MAX_PARAMS")
    if text is None:
        return DEFAULT_MAX_PARAMS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"ADVSR_MAX_PARAMS must be a positive integer, got {text!r}")
    return value


def _bounded(annotation: Any) -> Any:
    """An option's type with bounds: ints in [1, MAX_WIDTH], floats positive and finite,
    sequences of ints as tuples of bounded ints; Optional and Literal kept."""
    from pydantic import Field

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is int:
        return Annotated[int, Field(strict=True, ge=1, le=MAX_WIDTH)]
    if annotation is float:
        return Annotated[float, Field(gt=0.0, le=1e6)]
    if origin in (types.UnionType, typing.Union):
        return typing.Union[tuple(_bounded(a) for a in args)]  # noqa: UP007
    if origin in (collections.abc.Sequence, list, tuple) and args:
        return tuple[_bounded(args[0]), ...]  # type: ignore[misc]
    return annotation


def check_arch(
    name: str, arch: Callable[..., nn.Module], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate architecture options against the architecture's declared parameters, their
    types and bounds (unknown options, wrong types, non-positive or huge widths refused).

    Returns:
        the options, normalised (sequences as tuples).

    Raises:
        InputError: one line naming the option and the problem.

    Example:
        >>> from advsr.models.sr.edsr import EDSR
        >>> check_arch("edsr", EDSR, {"n_feats": 32})
        {'n_feats': 32}
        >>> check_arch("edsr", EDSR, {"n_feats": -4})
        Traceback (most recent call last):
        ...
        advsr.errors.InputError: invalid edsr architecture option n_feats: Input should be \
greater than or equal to 1
    """
    from pydantic import ConfigDict, create_model

    from advsr.errors import InputError
    from advsr.settings import validate

    target = arch.__init__ if isinstance(arch, type) else arch  # type: ignore[misc]
    hints = typing.get_type_hints(target)
    fields: dict[str, Any] = {}
    for pname, p in inspect.signature(arch).parameters.items():
        if pname == "scale" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (_bounded(hints.get(pname, Any)), default)
    unknown = [k for k in options if k not in fields]
    if unknown:
        known = ", ".join(fields) or "none"
        raise InputError(f"{name} has no architecture option {unknown[0]!r}; options: {known}")
    model = create_model(
        f"{name}-options", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields
    )
    checked = validate(model, dict(options), f"{name} architecture option")
    return {k: getattr(checked, k) for k in options}


def build_arch(
    name: str, arch: Callable[..., nn.Module], scale: int, options: Mapping[str, Any]
) -> nn.Module:
    """Build an architecture after checking its options and, on the ``meta`` device (no
    memory), that its parameter count is within :func:`max_params`.

    Raises:
        InputError: bad options, or a model too large to build.
    """
    from advsr.errors import InputError

    opts = check_arch(name, arch, options)
    try:
        with torch.device("meta"):
            shell = arch(scale, **opts)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"{name} cannot be built with {opts}: {exc}") from None
    n = sum(p.numel() for p in shell.parameters())
    limit = max_params()
    if n > limit:
        raise InputError(
            f"{name} with {opts} would have {n:,} parameters ({4 * n / 2**30:.1f} GiB in "
            f"float32), more than the limit of {limit:,} (ADVSR_MAX_PARAMS)"
        )
    return arch(scale, **opts)
