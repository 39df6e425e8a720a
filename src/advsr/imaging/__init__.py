"""Image operations: MATLAB-compatible resize, BT.601 colour, quantisation."""

from advsr.imaging.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from advsr.imaging.quantize import quantize
from advsr.imaging.resize import Imresize, imresize, modcrop

__all__ = [
    "Imresize",
    "imresize",
    "modcrop",
    "quantize",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]
