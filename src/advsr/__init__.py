"""advsr: adversarial robustness of image super-resolution and of the classifiers it defends.

The image contract everywhere: ``float32`` tensors ``(N, 3, H, W)``, RGB, values in
``[0, 1]``, on any device. See ``DESIGN.md`` for the architecture.
"""

from advsr.errors import AdvsrError

__version__ = "0.1.0"

__all__ = ["AdvsrError", "__version__", "set_threads"]


def set_threads(spec: str | int = "auto") -> int:
    """Set torch's CPU threads by the command line's rule: ``"auto"`` (the CPUs this
    process may use, less those the 1-minute load average says are busy) or a count.

    ``import advsr`` itself changes nothing (torch's default is one thread per core, which
    on a busy machine oversubscribes it); call this once at the top of a script. The
    command line does it on every run (``--threads``, ``$ADVSR_THREADS``).

    Returns:
        the thread count set.

    Raises:
        InputError: not ``auto`` nor a whole number in ``1..CPUs``.

    Example:
        >>> import advsr
        >>> advsr.set_threads(1)
        1
    """
    from advsr.devices import set_threads as _set

    return _set(spec)
