"""Commands whose options derive from a settings model (one source for names, defaults,
types, ranges and help).

:func:`config_command` turns a function ``f(settings, **extra)`` into a Typer command whose
options are the fields of a pydantic config (``--hr-crop`` for ``hr_crop``; help from the
field's docstring; the default is the config's) plus the command's own ``extra`` options
(the store, ``--json``, grid options such as a repeatable ``--eps``). The function gets the
field values as a dict, ready for the config's validation, which checks ranges and prints
one line for a bad value.

Field types map to options as follows: scalars and ``Literal`` choices as they are; ``list``
fields as repeatable options; ``dict`` fields as repeatable ``KEY=VALUE`` options.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from advsr.cli.options import parse_options

__all__ = [
    "JSON",
    "OUTPUT",
    "REPORT",
    "SCALE_OUT",
    "STORE",
    "config_command",
    "extra_option",
    "field_options",
]

Command = Callable[..., None]


def _plain(annotation: Any) -> Any:
    """The annotation without ``Annotated`` metadata (roles)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _kind(annotation: Any) -> str:
    """``dict``, ``list`` or ``scalar`` (Optional unwrapped)."""
    ann = _plain(annotation)
    args = [a for a in get_args(ann) if a is not type(None)]
    if get_origin(ann) in (types.UnionType, typing.Union) and len(args) == 1:
        ann = args[0]
    origin = get_origin(ann) or ann
    if origin is dict:
        return "dict"
    if origin is list:
        return "list"
    return "scalar"


def _choices(annotation: Any) -> list[str]:
    """The values of a ``Literal`` (Optional unwrapped), else ``[]``."""
    ann = _plain(annotation)
    if get_origin(ann) in (types.UnionType, typing.Union):
        ann = next((a for a in get_args(ann) if a is not type(None)), ann)
    return [str(a) for a in get_args(ann)] if get_origin(ann) is typing.Literal else []


def _option_type(annotation: Any) -> Any:
    """The option's type as every supported Typer understands it: ``Optional[...]`` rather
    than ``X | None``, text for ``Literal`` choices (the config checks them), lists of text
    for dicts (``KEY=VALUE``)."""
    kind = _kind(annotation)
    ann = _plain(annotation)
    if kind == "dict":
        return typing.Optional[typing.List[str]]
    if kind == "list":
        args = [a for a in get_args(ann) if a is not type(None)]
        inner = args[0] if get_origin(ann) in (types.UnionType, typing.Union) else ann
        return typing.Optional[typing.List[get_args(inner)[0]]]  # type: ignore[misc]
    optional = get_origin(ann) in (types.UnionType, typing.Union) and type(None) in get_args(ann)
    base = next((a for a in get_args(ann) if a is not type(None)), ann) if optional else ann
    if _choices(annotation):
        base = str
    return typing.Optional[base] if optional else base


def field_options(
    config: type[BaseModel],
    *,
    skip: Sequence[str] = (),
    flags: Mapping[str, Sequence[str]] | None = None,
    helps: Mapping[str, str] | None = None,
    budgets: Sequence[str] = (),
) -> list[inspect.Parameter]:
    """One keyword parameter (a Typer option) per config field not in ``skip``; fields in
    ``budgets`` take text such as ``8/255``."""
    from advsr.attacks.budget import format_budget

    params = []
    fields = list(config.model_fields.items())
    fields.sort(key=lambda kv: kv[0] == "device")  # the running options last
    for name, info in fields:
        if name in skip:
            continue
        kind = _kind(info.annotation)
        default: Any = info.default
        if default is PydanticUndefined:
            factory = info.default_factory
            default = factory() if factory else inspect.Parameter.empty  # type: ignore[call-arg]
        if kind in ("dict", "list"):
            default = None
        help_text = (helps or {}).get(name) or (info.description or "").strip()
        if kind == "dict":
            help_text += " (KEY=VALUE, repeatable)"
        elif kind == "list":
            help_text += " (repeatable)"
        choices = _choices(info.annotation)
        if choices:
            help_text += f" [{'|'.join(choices)}]"
        decls = list((flags or {}).get(name, ())) or ["--" + name.replace("_", "-")]
        opt = typer.Option(*decls, help=help_text.strip() or None)
        ann = _option_type(info.annotation)
        if name in budgets:
            ann = typing.Optional[str]
            default = format_budget(default) if isinstance(default, float) else None
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[ann, opt],
            )
        )
    return params


def compat(annotation: Any) -> Any:
    """``X | None`` as ``Optional[X]`` (recursively), the form every supported Typer reads."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return typing.Union[tuple(compat(a) for a in args)]
    if origin is list and args:
        return typing.List[compat(args[0])]  # type: ignore[misc]
    return annotation


def extra_option(
    name: str, annotation: Any, default: Any, *decls: str, help: str = ""
) -> inspect.Parameter:
    """A command-only option (not a config field)."""
    opt = typer.Option(*decls, help=help or None) if decls or help else typer.Option()
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[compat(annotation), opt],
    )


def _given(names: set[str]) -> set[str]:
    """The options the user gave (command line or environment), not defaults: a config
    knows what was asked for (``model_fields_set``), so it can refuse an option that does
    not apply or that contradicts another instead of ignoring it."""
    import importlib

    ctx = None
    for where in ("typer._click.globals", "click.globals"):  # Typer may vendor its Click
        try:
            ctx = importlib.import_module(where).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            break
    if ctx is None:
        return set(names)

    def source(n: str) -> str:
        got = ctx.get_parameter_source(n)
        return getattr(got, "name", "")

    return {n for n in names if source(n) not in ("DEFAULT", "DEFAULT_MAP")}


def _resolve_weights(config: type[BaseModel], settings: dict[str, Any]) -> None:
    """``--weights`` of a one-model command in any form of the one grammar
    (:mod:`advsr.weight_args`): ``FILE``, ``NAME=FILE`` or ``NAME@xS=FILE`` for its model."""
    fields = config.model_fields
    given = settings.get("weights")
    if not isinstance(given, str) or "model" not in fields:
        return
    from advsr.weight_args import single_model_weights

    def value(name: str) -> Any:
        if name in settings:
            return settings[name]
        return fields[name].get_default(call_default_factory=True) if name in fields else None

    settings["weights"] = single_model_weights(given, model=value("model"), scale=value("scale"))


def config_command(
    config: type[BaseModel],
    *,
    skip: Sequence[str] = (),
    flags: Mapping[str, Sequence[str]] | None = None,
    helps: Mapping[str, str] | None = None,
    extra: Sequence[inspect.Parameter] = (),
    budgets: Sequence[str] = (),
) -> Callable[[Command], Command]:
    """Decorator: the command's options are ``config``'s fields (minus ``skip``) and
    ``extra``; the function is called as ``f(settings, **extra_values)``. Fields in
    ``budgets`` take text such as ``8/255``."""

    fields = field_options(config, skip=skip, flags=flags, helps=helps, budgets=budgets)
    kinds = {name: _kind(info.annotation) for name, info in config.model_fields.items()}

    def wrap(fn: Command) -> Command:
        names = {p.name for p in fields}

        def command(**kwargs: Any) -> None:
            if "backend" in kwargs:  # passed on to the command as one Backend
                from advsr.cli.output import use_backend

                kwargs["backend"] = use_backend(
                    kwargs.pop("backend"), kwargs.pop("address"), kwargs.pop("workers")
                )
            settings: dict[str, Any] = {}
            given = _given(names)
            for k in names:
                v = kwargs.pop(k)
                if k not in given:  # a default: the config's own, and not "set by the user"
                    continue
                if kinds[k] == "dict":
                    if v:
                        settings[k] = parse_options(v, "--" + k.replace("_", "-"))
                elif kinds[k] == "list":
                    if v:
                        settings[k] = list(v)
                else:  # budgets too: their text is parsed once, by the config
                    settings[k] = v
            _resolve_weights(config, settings)
            fn(settings, **kwargs)

        params = [*fields, *extra]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        command.__module__ = fn.__module__
        command.__wrapped_config__ = config  # type: ignore[attr-defined]
        return command

    return wrap


STORE = extra_option(
    "store",
    Path | None,
    None,
    "--store",
    help="Result store (SQLite); default $ADVSR_STORE or ./advsr-results.sqlite.",
)
REPORT = extra_option("report", Path | None, None, "--report", help="Write an HTML report here.")
JSON = extra_option("json_", bool, False, "--json", help="Print one JSON document on stdout.")
BACKEND = extra_option(
    "backend",
    str,
    "local",
    "--backend",
    help="Where cells run: local (this process) or ray (a Ray cluster; pip install 'advsr[ray]').",
)
ADDRESS = extra_option(
    "address",
    str | None,
    None,
    "--address",
    help="Ray cluster address (default $RAY_ADDRESS, else a local Ray instance).",
)
WORKERS = extra_option(
    "workers", int | None, None, "--workers", help="Ray tasks in flight (default: the CPUs)."
)
SCALE_OUT = (BACKEND, ADDRESS, WORKERS)
"""Where the cells run: :func:`config_command` turns the three options into one
``backend`` argument of the command (an :class:`~advsr.engine.backend.Backend`), which the
command passes to :func:`advsr.cli.output.run_and_show`."""
OUTPUT = (STORE, REPORT, JSON, *SCALE_OUT)
"""The options every experiment command has: the store, an HTML report, JSON output, and
where its cells run."""
