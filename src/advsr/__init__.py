"""advsr: adversarial robustness of image super-resolution and of the classifiers it defends.

The image contract everywhere: ``float32`` tensors ``(N, 3, H, W)``, RGB, values in
``[0, 1]``, on any device. See ``DESIGN.md`` for the architecture.
"""

from advsr.errors import AdvsrError

__version__ = "0.1.0"

__all__ = ["AdvsrError", "__version__"]
