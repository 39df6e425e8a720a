"""Device selection (``auto`` picks CUDA when present, else CPU) and the CPU thread count.

On a shared machine torch's default (one thread per core) hurts: measured here with PGD-10
on ResNet-20 (batch 64) while other work kept the 2 cores busy (load 3.2), 1 thread took
2.3 s and 2 threads 4.1 s, because each parallel region waits for its slowest thread and a
descheduled thread stalls them all. :func:`set_threads` with ``auto`` (what the CLI does,
``--threads`` / ``$ADVSR_THREADS``) uses the CPUs that are not busy when it starts; a count
is at most the CPUs this process may use (:func:`usable_cpus`): more threads never help, and
``ADVSR_THREADS=100000`` once made torch crash every command while starting its threads.
"""

from __future__ import annotations

import os

import torch

from advsr.errors import InputError

__all__ = ["auto_threads", "resolve_device", "set_threads", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; the machine's count elsewhere).

    Example:
        >>> 1 <= usable_cpus() <= (os.cpu_count() or 1)
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads() -> int:
    """The CPUs this process may use, less the ones other work keeps busy (the 1-minute load
    average, rounded), at least 1.

    Example:
        >>> 1 <= auto_threads() <= (os.cpu_count() or 1)
        True
    """
    cpus = usable_cpus()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cpus, cpus - busy))


def set_threads(spec: str | int = "auto") -> int:
    """Set torch's intra-op CPU threads: ``auto`` (:func:`auto_threads`) or a count.

    Returns:
        the thread count set.

    Raises:
        InputError: not ``auto`` nor a whole number in ``1..usable_cpus()``.
    """
    if spec == "auto":
        n = auto_threads()
    else:
        try:
            n = int(spec)
        except (TypeError, ValueError):
            raise InputError(f"threads must be auto or a whole number, got {spec!r}") from None
        if n < 1:
            raise InputError(f"threads must be >= 1, got {n}")
        cpus = usable_cpus()
        if n > cpus:
            raise InputError(
                f"threads must be at most {cpus} (the CPUs this process may use), got {n}"
            )
    torch.set_num_threads(n)
    return n


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a usable device.

    Raises:
        InputError: an unparsable name, or a device this machine does not have.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device cuda requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {spec} does not exist ({torch.cuda.device_count()} GPUs)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device mps requested but MPS is not available here")
    return dev
