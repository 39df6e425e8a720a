"""Metrics: functions on [0, 1] NCHW tensors returning one value per image, shape (N,)."""

from collections.abc import Callable

import torch

from advsr.metrics.fidelity import mse, psnr, ssim, ssim_map
from advsr.registry import Registry

__all__ = ["METRICS", "mse", "psnr", "ssim", "ssim_map"]

MetricFn = Callable[..., torch.Tensor]

METRICS: Registry[MetricFn] = Registry("metric")
METRICS.register("psnr", psnr, "PSNR in dB (peak 255), BasicSR convention")
METRICS.register("ssim", ssim, "SSIM, 11x11 Gaussian window sigma 1.5, BasicSR convention")
METRICS.register("mse", mse, "mean squared error on the [0, 255] scale")
