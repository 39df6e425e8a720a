"""Memory budgets for gradient passes: micro-batches whose peak memory does not grow with N.

An attack differentiates a model on a whole batch at once; the autograd graph of one image
through an SR network and a classifier at 448 px is hundreds of megabytes, so a batch of 64
needs tens of gigabytes. :func:`micro_batched` keeps the peak at one micro-batch's graph
whatever the batch size: its forward runs every micro-batch without a graph and returns the
concatenated outputs; its backward recomputes each micro-batch with a graph, takes the
vector-Jacobian product with that micro-batch's slice of the output gradient, frees the
graph, and concatenates the input gradients (gradient checkpointing along the batch). The
values and gradients are the same as one pass over the whole batch (up to the last bits of
float arithmetic) for any function whose output rows depend on their own input rows only;
one extra forward without a graph per gradient pass is the price. When the caller's
objective is a sum of per-row values of the output (an attack's loss), :func:`value_and_grad`
avoids that price: it runs forward and backward of one micro-batch after the other, each
graph freed before the next is built, so a gradient step costs one forward and one backward
within the budget. Modules that plan their passes (:class:`MicroBatched`, the defended
classifier) expose the plan as ``partition(x) -> (row function, micro-batch size)``.

The micro-batch size comes from a memory budget (:func:`max_memory`): ``--max-memory`` on
the command line, ``$ADVSR_MAX_MEMORY``, or :func:`set_max_memory`; by default 1/16 of the
machine's memory, at most 2 GiB (on a GPU, half the device's memory). The bytes one item
costs are measured once per model and input shape (:func:`graph_bytes_per_item`: the tensors
autograd saves for one item's backward, parameters and buffers excluded). A budget given by
the user that cannot hold one item is refused with one line naming the option; under the
default budget such a pass runs one item at a time while the item fits in 1/6 of the
machine's memory (:data:`ONE_ITEM_SHARE`).

Example:
    >>> import torch
    >>> f = lambda x, start: (x ** 2).sum((1, 2, 3))
    >>> x = torch.rand(5, 3, 8, 8, requires_grad=True)
    >>> (g,) = torch.autograd.grad(micro_batched(f, x, 2).sum(), x)
    >>> torch.allclose(g, 2 * x)
    True
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

from advsr.errors import InputError

__all__ = [
    "ChunkFn",
    "MicroBatched",
    "default_max_memory",
    "format_bytes",
    "graph_bytes_per_item",
    "max_memory",
    "micro_batch_size",
    "micro_batched",
    "parse_memory",
    "partition_of",
    "return_freed_memory",
    "set_max_memory",
    "trim_freed_memory",
    "value_and_grad",
]

ChunkFn = Callable[[torch.Tensor, int], torch.Tensor]
"""``(rows x[start : start + k], start) -> outputs for those rows`` (``start`` lets a random
function derive each row's randomness from its position, so micro-batching changes
nothing)."""

SAFETY = 1.5
"""Headroom over the measured graph size: backward's gradient buffers and the transient
tensors no graph keeps."""
_GIB = 2**30
_OVERRIDE: int | None = None
_ESTIMATES: OrderedDict[Hashable, int] = OrderedDict()
_UNITS = {"": _GIB, "k": 2**10, "m": 2**20, "g": _GIB, "t": 2**40}


def format_bytes(n: float) -> str:
    """``n`` bytes as text in GiB (or MiB below one GiB)."""
    return f"{n / _GIB:.2f} GiB" if n >= _GIB else f"{n / 2**20:.0f} MiB"


def _machine_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 8 * _GIB


def parse_memory(text: str | int | float) -> int:
    """A memory size in bytes: ``"3"`` or ``3`` (GiB), ``"1.5G"``, ``"512M"``, ``"2GiB"``,
    ``"800MB"``, ``"3000000B"`` (bytes), or a share of the machine's memory (``"10%"``).

    Raises:
        InputError: not a size, not positive, or more than the machine has.
    """
    machine = _machine_memory()
    s = str(text).strip().lower().replace(" ", "")
    share = re.fullmatch(r"(\d+(?:\.\d*)?)%", s)
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([kmgt]?)(i?b)?", s)
    if share:
        value = float(share.group(1)) / 100 * machine
    elif m:
        bytes_only = m.group(3) == "b" and not m.group(2)  # "800000B"
        value = float(m.group(1)) * (1 if bytes_only else _UNITS[m.group(2)])
    else:
        raise InputError(
            f"max memory must be a size such as 3, 1.5G, 512M or 10% (of the machine), got {text!r}"
        )
    if not math.isfinite(value) or value < 2**20:
        raise InputError(f"max memory must be at least 1M, got {text!r}")
    if value > machine:
        raise InputError(f"max memory {text!r} is more than this machine's {format_bytes(machine)}")
    return int(value)


def return_freed_memory() -> bool:
    """Make glibc hand large freed blocks back to the system (``mallopt``: blocks of 1 MiB
    and more are mapped on their own, the heap is trimmed above 1 MiB free).

    glibc otherwise raises its mapping threshold after the first large free and keeps
    later tensors on a heap it rarely shrinks, so a process that has freed a micro-batch's
    graph still holds its pages: measured on a defend cell (IMDN x2 + EfficientNet-Lite0),
    peak resident memory 3.13 GB without, 2.45 GB with. The command line calls this at
    start; call it in scripts that want the same. Changes nothing where the C library is
    not glibc.

    Returns:
        whether the settings were applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 2**20) and libc.mallopt(m_trim_threshold, 2**20))
    except (OSError, AttributeError):
        return False


TRIM_EVERY = 2.0
"""Seconds between two :func:`trim_freed_memory` calls that do work."""
_LAST_TRIM = [0.0]


def trim_freed_memory(every: float = TRIM_EVERY) -> bool:
    """Give the pages of freed small blocks back to the system (glibc ``malloc_trim``), at
    most once every ``every`` seconds; attack loops call it at each step.

    A long attack frees a step's activations (tens of KB each, below any mapping
    threshold) into a heap glibc only trims at its top, so without this its resident
    memory grows with the steps although nothing is kept: measured on 6,000 PGD steps
    through a micro-batched digits CNN, 262 to 816 MB resident in four runs, 256 MB in each
    after ``malloc_trim``; trimming every 2 s keeps those runs within 261-314 MB. One trim
    of a fragmented 160 MB heap took 40 ms, so the cost stays under 2% of a loop's time.
    Nothing happens where the C library is not glibc.

    Returns:
        whether memory was trimmed now.
    """
    import time

    now = time.monotonic()
    if now - _LAST_TRIM[0] < every:
        return False
    _LAST_TRIM[0] = now
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def set_max_memory(spec: str | int | float | None) -> int | None:
    """Set the process-wide budget (None: back to ``$ADVSR_MAX_MEMORY`` or the default).

    Returns:
        the budget in bytes, or None for the default.
    """
    global _OVERRIDE
    _OVERRIDE = None if spec is None else parse_memory(spec)
    return _OVERRIDE


def default_max_memory(device: torch.device | None = None) -> int:
    """1/16 of the machine's memory, at most 2 GiB; on a GPU half of the device's memory."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 2)
    return min(_machine_memory() // 16, 2 * _GIB)


ONE_ITEM_SHARE = 6
"""Under the default budget, a pass whose one item needs more than the budget still runs,
one item at a time, when that item needs at most 1/6 of the machine's memory (a 224 px
image through wavelet + IMDN x2 + EfficientNet-Lite0 needs about 2 GiB with the safety
margin, the default budget on a 24 GiB machine is 1.5 GiB); a budget the user set is a
wall."""


def _default_budget() -> bool:
    """No budget was given (--max-memory, set_max_memory, $ADVSR_MAX_MEMORY)."""
    return _OVERRIDE is None and not os.environ.get("ADVSR_MAX_MEMORY")


def max_memory(device: torch.device | None = None) -> int:
    """The budget of one gradient pass in bytes: :func:`set_max_memory`, else
    ``$ADVSR_MAX_MEMORY``, else :func:`default_max_memory`."""
    if _default_budget():
        return default_max_memory(device)
    return _OVERRIDE if _OVERRIDE is not None else parse_memory(os.environ["ADVSR_MAX_MEMORY"])


def graph_bytes_per_item(fn: ChunkFn, x: torch.Tensor, module: nn.Module | None = None) -> int:
    """Bytes autograd keeps for one item's backward through ``fn`` (measured on ``x[:1]``).

    Counts each storage that the forward pass saves for backward once, leaving out the
    parameters and buffers of ``module`` (shared by every item), plus the output.

    Shape:
        ``x``: ``(N, ...)``; only the first item is used.
    """
    fixed = set()
    if module is not None:
        fixed = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in fixed:
            seen[ptr] = s.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        xr = x[:1].detach().clone().requires_grad_(True)
        out = fn(xr, 0)
    return sum(seen.values()) + out.numel() * out.element_size()


def micro_batch_size(
    fn: ChunkFn,
    x: torch.Tensor,
    key: Hashable,
    what: str,
    module: nn.Module | None = None,
) -> int:
    """Items per micro-batch of a gradient pass through ``fn`` within :func:`max_memory`.

    Args:
        fn: the function (see :data:`ChunkFn`).
        x: the batch.
        key: identifies ``fn`` for the cache of measurements (with the item shape added).
        what: names ``fn`` in the error message.
        module: whose parameters the measurement leaves out.

    Raises:
        InputError: one item needs more than the budget.
    """
    full = (key, tuple(x.shape[1:]), x.dtype, str(x.device))
    if full not in _ESTIMATES:
        _ESTIMATES[full] = graph_bytes_per_item(fn, x, module)
        while len(_ESTIMATES) > 256:
            _ESTIMATES.popitem(last=False)
    _ESTIMATES.move_to_end(full)
    need = SAFETY * _ESTIMATES[full]
    budget = max_memory(x.device)
    if need > budget and _default_budget() and need <= _machine_memory() // ONE_ITEM_SHARE:
        return 1  # the default budget is a preference, not a wall: one item at a time
    if need > budget:
        raise InputError(
            f"a gradient pass through {what} needs about {format_bytes(need)} per image, more "
            f"than the memory budget of {format_bytes(budget)}: raise --max-memory "
            "(or ADVSR_MAX_MEMORY), or use smaller images"
        )
    return max(1, int(budget // need))


RowObjective = Callable[[torch.Tensor, slice], torch.Tensor]
"""``(outputs of rows, those rows as a slice of the batch) -> (k,)`` per-row values."""


def _part_by_part(
    fn: ChunkFn, x: torch.Tensor, size: int, of_output: RowObjective
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row values and the input gradient of their sum, micro-batch by micro-batch:
    each part's graph is built, differentiated and freed before the next (a part whose
    value does not depend on its input differentiably gets a zero gradient)."""
    values, grads = [], []
    for i in range(0, x.shape[0], size):
        with torch.enable_grad():
            xc = x[i : i + size].detach().requires_grad_(True)
            value = of_output(fn(xc, i), slice(i, i + xc.shape[0]))
            g = None
            if value.requires_grad:
                (g,) = torch.autograd.grad(value.sum(), xc, allow_unused=True)
        values.append(value.detach())
        grads.append(torch.zeros_like(xc) if g is None else g)
    return torch.cat(values), torch.cat(grads)


class _Chunked(torch.autograd.Function):
    """Forward without graphs, backward by recomputing one micro-batch at a time."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: ChunkFn, size: int) -> torch.Tensor:
        ctx.fn, ctx.size = fn, size
        ctx.save_for_backward(x)
        return torch.cat([fn(x[i : i + size], i) for i in range(0, x.shape[0], size)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors

        def dot(out: torch.Tensor, rows: slice) -> torch.Tensor:
            # its gradient is exactly the vector-Jacobian product with grad[rows]
            return (out * grad[rows]).reshape(out.shape[0], -1).sum(1)

        return _part_by_part(ctx.fn, x, ctx.size, dot)[1], None, None


def micro_batched(fn: ChunkFn, x: torch.Tensor, size: int) -> torch.Tensor:
    """``fn`` over ``x`` in micro-batches of ``size`` items, differentiable with respect to
    ``x`` at the memory of one micro-batch (see the module docstring).

    Without a gradient to take (grad mode off, or ``x`` not requiring one) the micro-batches
    simply run one after the other, so forward passes are bounded too; when the batch fits
    in one micro-batch, this is ``fn(x, 0)``.

    Shape:
        ``(N, ...)`` -> ``(N, ...)`` (rows in order).
    """
    if size >= x.shape[0]:
        return fn(x, 0)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.cat([fn(x[i : i + size], i) for i in range(0, x.shape[0], size)])
    out: torch.Tensor = _Chunked.apply(x, fn, size)
    return out


def partition_of(model: nn.Module, x: torch.Tensor) -> tuple[ChunkFn, int]:
    """How ``model`` would pass ``x``: its row function for this pass and the micro-batch
    size (a module with ``partition``, see :class:`MicroBatched`); any other module: itself
    on the whole batch."""
    plan = getattr(model, "partition", None)
    if callable(plan):
        fn, size = plan(x)
        return fn, int(size)
    return (lambda rows, start: model(rows)), max(1, x.shape[0])


def value_and_grad(
    model: nn.Module, x: torch.Tensor, of_output: RowObjective
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row values ``of_output(model(x), rows)`` and the gradient of their sum with
    respect to ``x``, one micro-batch at a time (forward, backward, graph freed).

    The same values and gradient as differentiating :func:`micro_batched` (up to float
    rounding), with one forward per micro-batch instead of two. ``of_output`` must give
    each row's value from that row's output alone. A part whose value does not depend on
    its input through a differentiable path gets a zero gradient.

    Shape:
        ``x`` ``(N, ...)`` -> values ``(N,)``, gradient like ``x``.
    """
    fn, size = partition_of(model, x)
    return _part_by_part(fn, x, size, of_output)


class MicroBatched(nn.Module):
    """A module whose passes in eval mode run in micro-batches within :func:`max_memory`.

    Passes of a module in training mode are left alone (their gradients go to the
    parameters, which the recomputing backward does not give). Attributes the wrapper
    lacks (``num_classes``, ``input_size``...) are the wrapped module's.

    Args:
        module: maps ``(N, ...)`` to ``(N, ...)``, each output row depending on its input
            row only (a classifier, an SR network).
        what: names the module in the error a too small budget gives.

    Shape:
        ``(N, ...)`` -> the module's output.
    """

    def __init__(self, module: nn.Module, what: str = "the model") -> None:
        super().__init__()
        self.module = module
        self.what = what

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)

    def _rows(self, x: torch.Tensor, start: int) -> torch.Tensor:
        out: torch.Tensor = self.module(x)
        return out

    def partition(self, x: torch.Tensor) -> tuple[ChunkFn, int]:
        """This pass's row function and micro-batch size (the whole batch in training
        mode)."""
        if self.module.training or x.shape[0] <= 1:
            return self._rows, max(1, x.shape[0])
        return self._rows, micro_batch_size(self._rows, x, id(self.module), self.what, self.module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn, size = self.partition(x)
        return micro_batched(fn, x, size)
